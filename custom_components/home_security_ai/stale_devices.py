"""Devices of cameras that the options no longer name: removed when the options change.

A camera entity taken out of the options, or an upload folder whose root was taken out (and
that no remaining root holds), is gone for good: its device, and with it its entities, go
too. A camera whose frames still wait in the spool keeps its device until they are analysed
(their events need it); it can then be deleted by hand. A root that cannot be read now keeps
every folder camera: an unreachable share is not proof that a camera is gone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .const import CONF_CAMERAS, CONF_UPLOAD_FOLDERS, DOMAIN
from .runtime import HomeSecurityAIConfigEntry
from .sources.camera_ids import normalize_camera_id


def _folder_names(roots: list[str]) -> set[str] | None:
    """Return the top-level folder names of the roots; None when a root cannot be read."""
    names: set[str] = set()
    for root in roots:
        try:
            with os.scandir(root) as entries:
                names |= {entry.name for entry in entries if entry.is_dir(follow_symlinks=False)}
        except OSError:
            return None
    return names


async def async_remove_devices_of_removed_cameras(
    hass: HomeAssistant, entry: HomeSecurityAIConfigEntry, before: Mapping[str, Any]
) -> set[str]:
    """Remove the devices of the cameras that `before` fed and the entry's options do not;
    return their camera ids. Runs with the runtime data of the options `before`."""
    data = entry.runtime_data
    after = entry.options
    entity_cameras = data.camera_source.camera_ids
    gone = {
        entity_cameras[entity_id]
        for entity_id in set(before.get(CONF_CAMERAS, [])) - set(after.get(CONF_CAMERAS, []))
        if entity_id in entity_cameras
    }
    roots_before = set(before.get(CONF_UPLOAD_FOLDERS, []))
    roots_after = list(after.get(CONF_UPLOAD_FOLDERS, []))
    if roots_before - set(roots_after):
        names = await hass.async_add_executor_job(_folder_names, roots_after)
        if names is not None:
            # A folder's camera is known by its name, or by its id where the spool named it.
            kept = names | {normalize_camera_id(name) for name in names}
            gone |= {
                camera_id
                for camera_id in data.upload_watcher.cameras
                if camera_id not in kept
                and ((state := data.cameras.get(camera_id)) is None or state.name not in kept)
            }
    gone -= {frame.camera_id for frame in data.spool.frames()}

    registry = dr.async_get(hass)
    server_key = entry.unique_id or entry.entry_id
    wanted = {(DOMAIN, f"{server_key}_{camera_id}"): camera_id for camera_id in gone}
    removed: set[str] = set()
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        camera_ids = {wanted[key] for key in device.identifiers if key in wanted}
        if not camera_ids:
            continue
        registry.async_update_device(device.id, remove_config_entry_id=entry.entry_id)
        for camera_id in camera_ids:
            data.cameras.async_remove(camera_id)
        removed |= camera_ids
    return removed
