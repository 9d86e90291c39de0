"""Device triggers of a camera: alerts from a risk level up, security events from a level up
whatever the alert rules say, a person, a vehicle, an animal, an unknown person, someone in a
chosen zone, loitering, tampering, and the end of an incident.

They listen to the bus events of events/event_stream.py, so `trigger.event.data` holds the whole
event, including the level after the household's rules and whether to alert (alerts/arming.py). The
alert triggers come first, as the one to pick: they fire on the same condition as the
notification blueprint (`alert` true, `risk_level` from the chosen one up), so an automation
made from the device page does not page during an incident's updates, a cooldown, quiet hours
or while disarmed. The triggers for what was seen fire on every security event that shows it,
whatever the alert decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_PLATFORM,
    CONF_TYPE,
    CONF_ZONE,
)
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .alerts.alerting import level_at_least
from .const import CONF_ZONES, DOMAIN, EVENT_INCIDENT_ENDED, EVENT_SECURITY
from .entity import camera_of_device
from .vocabulary import ANIMAL_LABELS, PERSON_LABELS, RISK_LEVELS, VEHICLE_LABELS

# "alert_<level>": a security event that alerts, at that level or higher (after escalation).
ALERT_PREFIX: Final = "alert_"
# "security_event_<level>": any security event at that level or higher, alert or not.
SECURITY_EVENT_PREFIX: Final = "security_event_"
PERSON_DETECTED: Final = "person_detected"
VEHICLE_DETECTED: Final = "vehicle_detected"
ANIMAL_DETECTED: Final = "animal_detected"
UNKNOWN_PERSON: Final = "unknown_person"
# A detection of the event stands in the zone named by the trigger's extra field `zone`.
ZONE_ENTERED: Final = "zone_entered"
# A person has stayed in an entry or sensitive zone longer than the sidecar's loitering time.
LOITERING: Final = "loitering"
CAMERA_TAMPERED: Final = "camera_tampered"
INCIDENT_ENDED: Final = "incident_ended"
TRIGGER_TYPES: Final = (
    *(f"{ALERT_PREFIX}{level}" for level in RISK_LEVELS),
    *(f"{SECURITY_EVENT_PREFIX}{level}" for level in RISK_LEVELS),
    PERSON_DETECTED,
    VEHICLE_DETECTED,
    ANIMAL_DETECTED,
    UNKNOWN_PERSON,
    ZONE_ENTERED,
    LOITERING,
    CAMERA_TAMPERED,
    INCIDENT_ENDED,
)
# The labels each "detected" trigger looks for.
_LABELS: Final = {
    PERSON_DETECTED: frozenset(PERSON_LABELS),
    VEHICLE_DETECTED: frozenset(VEHICLE_LABELS),
    ANIMAL_DETECTED: frozenset(ANIMAL_LABELS),
}


def _zone_named_for_zone_entered(config: ConfigType) -> ConfigType:
    if config[CONF_TYPE] == ZONE_ENTERED and not config.get(CONF_ZONE):
        raise vol.Invalid("a zone_entered trigger needs the zone's name", path=[CONF_ZONE])
    return config


TRIGGER_SCHEMA = vol.All(
    DEVICE_TRIGGER_BASE_SCHEMA.extend(
        {
            vol.Required(CONF_TYPE): vol.In(TRIGGER_TYPES),
            vol.Optional(CONF_ZONE): vol.All(cv.string, vol.Strip),
        }
    ),
    _zone_named_for_zone_entered,
)


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


async def async_get_trigger_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """The zone_entered trigger asks for a zone: one of the camera's zones where it has any."""
    if config.get(CONF_TYPE) != ZONE_ENTERED:
        return {}
    return {"extra_fields": zone_field(hass, config[CONF_DEVICE_ID])}


def zone_field(hass: HomeAssistant, device_id: str) -> vol.Schema:
    """The form field for one of a camera's zones: a list of its zones, or free text."""
    names: list[str] = []
    if (camera := camera_of_device(hass, device_id)) is not None:
        entry = hass.config_entries.async_get_entry(camera[0])
        zones = entry.options.get(CONF_ZONES, {}) if entry is not None else {}
        names = [str(zone["name"]) for zone in zones.get(camera[1], [])]
    return vol.Schema({vol.Required(CONF_ZONE): vol.In(names) if names else cv.string})


def _labels_seen(data: Any) -> set[str]:
    """Return the labels of a bus event's detections, in lower case."""
    return {
        str(detection.get("label", "")).strip().lower()
        for detection in data.get("detections", ())
    }


def _from_level(data: Any, minimum: str) -> bool:
    """Return whether a security event's level (after the household's rules) is `minimum` up."""
    level = data.get("risk_level")
    return level in RISK_LEVELS and level_at_least(level, minimum)


def _shows(trigger_type: str, zone: str | None) -> Callable[[Any], bool]:
    """Return what a camera's own security event must show to fire `trigger_type`."""
    if (labels := _LABELS.get(trigger_type)) is not None:
        return lambda data: not labels.isdisjoint(_labels_seen(data))
    if trigger_type.startswith(ALERT_PREFIX):
        minimum = trigger_type.removeprefix(ALERT_PREFIX)
        return lambda data: data.get("alert") is True and _from_level(data, minimum)
    if trigger_type.startswith(SECURITY_EVENT_PREFIX):
        minimum = trigger_type.removeprefix(SECURITY_EVENT_PREFIX)
        return lambda data: _from_level(data, minimum)
    tests: dict[str, Callable[[Any], bool]] = {
        UNKNOWN_PERSON: lambda data: data.get("unknown_person") is True,
        ZONE_ENTERED: lambda data: zone in data.get("zones", ()),
        LOITERING: lambda data: data.get("loitering") is True,
        CAMERA_TAMPERED: lambda data: data.get("scene_change") not in (None, "none"),
    }
    return tests[trigger_type]


def _matches(
    trigger_type: str, entry_id: str, camera_id: str, zone: str | None = None
) -> Callable[[Any], bool]:
    """Return the test a bus event's data must pass to fire `trigger_type` (`zone`: the zone
    of a zone_entered trigger)."""
    if trigger_type == INCIDENT_ENDED:
        return lambda data: bool(
            data.get("entry_id") == entry_id and camera_id in data.get("camera_ids", ())
        )
    shows = _shows(trigger_type, zone)
    return lambda data: bool(
        data.get("entry_id") == entry_id
        and data.get("camera_id") == camera_id
        and data.get("kind") == "security"
        and shows(data)
    )


def _description(trigger_type: str, camera_id: str, zone: str | None = None) -> str:
    """Return how a run of the trigger reads in the automation's trace."""
    if trigger_type == ZONE_ENTERED:
        what = f"zone {zone} entered"
    elif trigger_type.startswith(ALERT_PREFIX):
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
    zone: str | None = config.get(CONF_ZONE)
    matches = _matches(trigger_type, *camera, zone)
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
                    "description": _description(trigger_type, camera[1], zone),
                }
            },
            event.context,
        )

    @callback
    def _filter(data: Any) -> bool:
        return matches(data)

    event_type = EVENT_INCIDENT_ENDED if trigger_type == INCIDENT_ENDED else EVENT_SECURITY
    return hass.bus.async_listen(event_type, _fire, event_filter=_filter)
