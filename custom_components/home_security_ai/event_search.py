"""The `get_events` action: recent security events for scripts and Assist, from the history.

Filtered by camera (its id or its device), a time range and a minimum risk level; newest first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, cast

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .history.store import MAX_EVENTS
from .runtime import HomeSecurityAIConfigEntry
from .vocabulary import RISK_LEVELS

SERVICE_GET_EVENTS: Final = "get_events"
ATTR_CAMERA_ID: Final = "camera_id"
ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_MIN_LEVEL: Final = "min_level"
ATTR_LIMIT: Final = "limit"
DEFAULT_LIMIT: Final = 50

GET_EVENTS_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CAMERA_ID): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_DEVICE_ID): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_START): cv.datetime,
        vol.Optional(ATTR_END): cv.datetime,
        vol.Optional(ATTR_MIN_LEVEL): vol.In(RISK_LEVELS),
        vol.Optional(ATTR_LIMIT, default=DEFAULT_LIMIT): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=MAX_EVENTS)
        ),
    }
)


def _cameras_of_devices(
    hass: HomeAssistant, entry: HomeSecurityAIConfigEntry, device_ids: list[str]
) -> set[str]:
    prefix = f"{entry.unique_id or entry.entry_id}_"
    registry = dr.async_get(hass)
    cameras: set[str] = set()
    for device_id in device_ids:
        if (device := registry.async_get(device_id)) is None:
            continue
        cameras.update(
            identifier.removeprefix(prefix)
            for domain, identifier in device.identifiers
            if domain == DOMAIN and identifier.startswith(prefix)
        )
    return cameras


def _utc(value: datetime | None) -> datetime | None:
    # A time without a zone is Home Assistant's local time.
    return dt_util.as_utc(value) if value is not None else None


async def async_get_events(call: ServiceCall) -> ServiceResponse:
    """Return the matching recent events of every loaded entry, newest first."""
    entries: list[HomeSecurityAIConfigEntry] = [
        entry
        for entry in call.hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    start, end = _utc(call.data.get(ATTR_START)), _utc(call.data.get(ATTR_END))
    found: list[dict[str, Any]] = []
    for entry in entries:
        cameras: set[str] | None = None
        if ATTR_CAMERA_ID in call.data or ATTR_DEVICE_ID in call.data:
            cameras = set(call.data.get(ATTR_CAMERA_ID, [])) | _cameras_of_devices(
                call.hass, entry, call.data.get(ATTR_DEVICE_ID, [])
            )
        found.extend(
            entry.runtime_data.history.events(
                camera_ids=cameras,
                start=start,
                end=end,
                min_level=call.data.get(ATTR_MIN_LEVEL),
            )
        )
    found.sort(key=lambda record: str(record.get("started_at") or ""), reverse=True)
    limit: int = call.data[ATTR_LIMIT]
    # The records hold JSON types only (they come from bus events).
    return cast(ServiceResponse, {"events": found[:limit], "more": len(found) > limit})
