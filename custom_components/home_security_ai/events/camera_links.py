"""Where a user finds a camera in Home Assistant: its device, snapshot image and switch.

A notification needs them to show the event's snapshot, to open the camera and to snooze it;
the bus event and the event entity carry them so that an automation or the blueprint does not
have to search the registries in templates.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from ..cameras import CameraState
from ..const import DOMAIN

# The keys of the camera's snapshot image and analysis switch (image.py, switch.py).
SNAPSHOT_KEY = "snapshot"
ANALYSIS_SWITCH_KEY = "analysis_enabled"


def camera_unique_id(entry: ConfigEntry, camera_id: str, key: str) -> str:
    """Return the unique id of a camera's entity (as entity.py makes it)."""
    return f"{entry.unique_id or entry.entry_id}_{camera_id}_{key}"


def snapshot_url(
    hass: HomeAssistant, entry: ConfigEntry, camera_id: str
) -> str | None:
    """Return the address of the camera's last event snapshot, relative to Home Assistant.

    Clients signed in to Home Assistant (the companion apps, the frontend) fetch it as it is.
    """
    entity_id = er.async_get(hass).async_get_entity_id(
        Platform.IMAGE, DOMAIN, camera_unique_id(entry, camera_id, SNAPSHOT_KEY)
    )
    return f"/api/image_proxy/{entity_id}" if entity_id is not None else None


def camera_links(
    hass: HomeAssistant,
    entry: ConfigEntry,
    camera_id: str,
    camera: CameraState | None,
    *,
    with_snapshot: bool,
) -> dict[str, Any]:
    """Return the camera's name, device, snapshot address and analysis switch.

    `with_snapshot`: whether the event has a snapshot; without one the address would show
    an earlier event's.
    """
    identifier = (DOMAIN, f"{entry.unique_id or entry.entry_id}_{camera_id}")
    # By the entry's devices: looking one up by identifier differs between releases.
    device = next(
        (
            device
            for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
            if identifier in device.identifiers
        ),
        None,
    )
    switch = er.async_get(hass).async_get_entity_id(
        Platform.SWITCH, DOMAIN, camera_unique_id(entry, camera_id, ANALYSIS_SWITCH_KEY)
    )
    return {
        "camera_name": camera.name if camera is not None else camera_id,
        "device_id": device.id if device is not None else None,
        "snapshot_url": snapshot_url(hass, entry, camera_id) if with_snapshot else None,
        "analysis_switch": switch,
    }
