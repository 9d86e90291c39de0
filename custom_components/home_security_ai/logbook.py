"""Logbook lines for the security events and ended incidents on the bus, on the camera.

A security event's line says its level (after the household's rules) and their decision: that
it alerted, or why not, as the bus event carries it (alerts/arming.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from .const import DOMAIN, EVENT_INCIDENT_ENDED, EVENT_SECURITY

# The key of a camera's event entity (event.py): the line shows under it and its device.
EVENT_ENTITY_KEY = "security_event"
# Why an event did not alert (alerting.HoldBackReason), in words; "incident" is said apart.
_HELD_BACK = {
    "disarmed": "disarmed",
    "household": "only household members",
    "below_minimum_level": "below the camera's minimum level",
    "quiet_hours": "quiet hours",
}


def _decision(data: Any) -> tuple[str, str]:
    """Return what follows the level and what follows the summary: the alert decision."""
    alert = data.get("alert")
    if alert is True:
        return " and alerted", ""
    if alert is False:
        reason = str(data.get("alert_reason") or "")
        if reason == "incident":
            # The sidecar's own decision: an update of its incident, or a new one in cooldown.
            words = "incident update" if data.get("incident_update") else "cooldown"
        else:
            words = _HELD_BACK.get(reason, reason.replace("_", " "))
        return "", f" (no alert: {words})" if words else " (no alert)"
    return "", ""  # not decided (an event of an older release)


def _event_entity(hass: HomeAssistant, entry_id: str, camera_id: str) -> str | None:
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None:
        return None
    unique_id = f"{entry.unique_id or entry.entry_id}_{camera_id}_{EVENT_ENTITY_KEY}"
    return er.async_get(hass).async_get_entity_id(Platform.EVENT, DOMAIN, unique_id)


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, Any]]], None],
) -> None:
    """Describe the integration's bus events."""

    @callback
    def _security_event(event: Event) -> dict[str, Any]:
        data = event.data
        camera_id = str(data.get("camera_id") or "")
        level = data.get("risk_level") or "unknown"
        alerted, held_back = _decision(data)
        article = "an" if str(level).startswith(("a", "e", "i", "o", "u")) else "a"
        message = f"reported {article} {level} risk event{alerted}"
        if summary := data.get("summary"):
            message += f": {summary}"
        message += held_back
        described: dict[str, Any] = {
            LOGBOOK_ENTRY_NAME: data.get("camera_name") or camera_id,
            LOGBOOK_ENTRY_MESSAGE: message,
        }
        entity_id = _event_entity(hass, str(data.get("entry_id")), camera_id)
        if entity_id is not None:
            described[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
        return described

    @callback
    def _incident_ended(event: Event) -> dict[str, Any]:
        cameras = ", ".join(event.data.get("camera_ids") or [])
        return {
            LOGBOOK_ENTRY_NAME: cameras or "Home Security AI",
            LOGBOOK_ENTRY_MESSAGE: "incident ended",
        }

    async_describe_event(DOMAIN, EVENT_SECURITY, _security_event)
    async_describe_event(DOMAIN, EVENT_INCIDENT_ENDED, _incident_ended)
