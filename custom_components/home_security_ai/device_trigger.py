"""Device triggers of a camera: alerts from a risk level up, security events from a level up
whatever the alert rules say, a person, tampering, and the end of an incident.

They listen to the bus events of event_stream.py, so `trigger.event.data` holds the whole
event, including the level after the household's rules and whether to alert (arming.py). The
alert triggers come first, as the one to pick: they fire on the same condition as the
notification blueprint (`alert` true, `risk_level` from the chosen one up), so an automation
made from the device page does not page during an incident's updates, a cooldown, quiet hours
or while disarmed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_PLATFORM, CONF_TYPE
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .alerting import level_at_least
from .const import DOMAIN, EVENT_INCIDENT_ENDED, EVENT_SECURITY
from .entity import camera_of_device
from .vocabulary import PERSON_LABELS, RISK_LEVELS

# "alert_<level>": a security event that alerts, at that level or higher (after escalation).
ALERT_PREFIX: Final = "alert_"
# "security_event_<level>": any security event at that level or higher, alert or not.
SECURITY_EVENT_PREFIX: Final = "security_event_"
PERSON_DETECTED: Final = "person_detected"
CAMERA_TAMPERED: Final = "camera_tampered"
INCIDENT_ENDED: Final = "incident_ended"
TRIGGER_TYPES: Final = (
    *(f"{ALERT_PREFIX}{level}" for level in RISK_LEVELS),
    *(f"{SECURITY_EVENT_PREFIX}{level}" for level in RISK_LEVELS),
    PERSON_DETECTED,
    CAMERA_TAMPERED,
    INCIDENT_ENDED,
)

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend({vol.Required(CONF_TYPE): vol.In(TRIGGER_TYPES)})


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, str]]:
    """List the triggers of a camera device; the server device has none."""
    if camera_of_device(hass, device_id) is None:
        return []
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: trigger_type,
        }
        for trigger_type in TRIGGER_TYPES
    ]


def _from_level(data: Any, minimum: str) -> bool:
    """Return whether a security event's level (after the household's rules) is `minimum` up."""
    level = data.get("risk_level")
    return level in RISK_LEVELS and level_at_least(level, minimum)


def _matches(trigger_type: str, entry_id: str, camera_id: str) -> Callable[[Any], bool]:
    """Return the test a bus event's data must pass to fire `trigger_type`."""

    def _own_security_event(data: Any) -> bool:
        return bool(
            data.get("entry_id") == entry_id
            and data.get("camera_id") == camera_id
            and data.get("kind") == "security"
        )

    if trigger_type == INCIDENT_ENDED:
        return lambda data: bool(
            data.get("entry_id") == entry_id and camera_id in data.get("camera_ids", ())
        )
    if trigger_type == PERSON_DETECTED:
        return lambda data: (
            _own_security_event(data)
            and any(
                detection.get("label") in PERSON_LABELS for detection in data.get("detections", ())
            )
        )
    if trigger_type == CAMERA_TAMPERED:
        return lambda data: (
            _own_security_event(data)
            and data.get("scene_change")
            not in (
                None,
                "none",
            )
        )
    if trigger_type.startswith(ALERT_PREFIX):
        minimum = trigger_type.removeprefix(ALERT_PREFIX)
        return lambda data: (
            _own_security_event(data) and data.get("alert") is True and _from_level(data, minimum)
        )
    minimum = trigger_type.removeprefix(SECURITY_EVENT_PREFIX)
    return lambda data: _own_security_event(data) and _from_level(data, minimum)


def _description(trigger_type: str, camera_id: str) -> str:
    """Return how a run of the trigger reads in the automation's trace."""
    if trigger_type.startswith(ALERT_PREFIX):
        what = f"alert from {trigger_type.removeprefix(ALERT_PREFIX)} up"
    elif trigger_type.startswith(SECURITY_EVENT_PREFIX):
        what = f"security event from {trigger_type.removeprefix(SECURITY_EVENT_PREFIX)} up"
    else:
        what = trigger_type.replace("_", " ")
    return f"{what} on {camera_id}"


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Run `action` for every matching bus event of the device's camera."""
    trigger_type: str = config[CONF_TYPE]
    device_id: str = config[CONF_DEVICE_ID]
    camera = camera_of_device(hass, device_id)
    if camera is None:
        # The device is gone; the automation stays valid but never fires.
        return lambda: None
    matches = _matches(trigger_type, *camera)
    job = HassJob(action, f"{DOMAIN} device trigger {trigger_type}")
    trigger_data = trigger_info["trigger_data"]

    @callback
    def _fire(event: Event) -> None:
        hass.async_run_hass_job(
            job,
            {
                "trigger": {
                    **trigger_data,
                    CONF_PLATFORM: "device",
                    CONF_DOMAIN: DOMAIN,
                    CONF_DEVICE_ID: device_id,
                    CONF_TYPE: trigger_type,
                    "event": event,
                    "description": _description(trigger_type, camera[1]),
                }
            },
            event.context,
        )

    @callback
    def _filter(data: Any) -> bool:
        return matches(data)

    event_type = EVENT_INCIDENT_ENDED if trigger_type == INCIDENT_ENDED else EVENT_SECURITY
    return hass.bus.async_listen(event_type, _fire, event_filter=_filter)
