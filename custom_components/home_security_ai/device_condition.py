"""Device conditions: a camera's threat is active or its analysis is on; a vehicle or an animal
is in its last analysed frame; its last security event showed an unknown person, loitering or
someone in a given zone; the home is armed in a given mode (on the server device).

Each reads the state (or attributes) of the entity that shows it, found by unique id when the
condition is checked, so a renamed entity keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import voluptuous as vol
from homeassistant.const import (
    CONF_CONDITION,
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_TYPE,
    CONF_ZONE,
    STATE_ON,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.condition import ConditionCheckerType
from homeassistant.helpers.config_validation import DEVICE_CONDITION_BASE_SCHEMA
from homeassistant.helpers.typing import ConfigType, TemplateVarsType

from .alerts.alerting import ArmedMode
from .const import DOMAIN
from .device_trigger import zone_field
from .entity import camera_of_device
from .vocabulary import ANIMAL_LABELS, VEHICLE_LABELS

THREAT_ACTIVE: Final = "threat_active"
ANALYSIS_ENABLED: Final = "analysis_enabled"
# What the camera's last analysed frame holds (its Objects sensor).
VEHICLE_IN_VIEW: Final = "vehicle_in_view"
ANIMAL_IN_VIEW: Final = "animal_in_view"
# What the camera's last security event showed (its event entity).
UNKNOWN_PERSON: Final = "unknown_person"
LOITERING: Final = "loitering"
IN_ZONE: Final = "in_zone"
# "armed_<mode>": the Armed select of the server device is in that mode.
ARMED_PREFIX: Final = "armed_"
CAMERA_CONDITIONS: Final = (
    THREAT_ACTIVE, ANALYSIS_ENABLED, VEHICLE_IN_VIEW, ANIMAL_IN_VIEW, UNKNOWN_PERSON, LOITERING,
    IN_ZONE,
)
SERVER_CONDITIONS: Final = tuple(f"{ARMED_PREFIX}{mode.value}" for mode in ArmedMode)
# The entity each condition reads: platform and the key of its unique id.
_ENTITIES: Final = {
    THREAT_ACTIVE: ("binary_sensor", "threat_active"),
    ANALYSIS_ENABLED: ("switch", "analysis_enabled"),
    VEHICLE_IN_VIEW: ("sensor", "objects"),
    ANIMAL_IN_VIEW: ("sensor", "objects"),
    UNKNOWN_PERSON: ("event", "security_event"),
    LOITERING: ("event", "security_event"),
    IN_ZONE: ("event", "security_event"),
}


def _counts_any(labels: tuple[str, ...]) -> Any:
    """A test of the Objects sensor's attributes (label -> count) for one of `labels`."""
    return lambda attributes, _config: any(
        isinstance(count, int) and count > 0 and str(label).lower() in labels
        for label, count in attributes.items()
    )


# How each condition reads its entity's attributes; the others compare the state.
_ATTRIBUTE_TESTS: Final = {
    VEHICLE_IN_VIEW: _counts_any(VEHICLE_LABELS),
    ANIMAL_IN_VIEW: _counts_any(ANIMAL_LABELS),
    UNKNOWN_PERSON: lambda attributes, _config: attributes.get("unknown_person") is True,
    LOITERING: lambda attributes, _config: attributes.get("loitering") is True,
    IN_ZONE: lambda attributes, config: config.get(CONF_ZONE) in attributes.get("zones", ()),
}


def _needs_zone(config: dict[str, Any]) -> dict[str, Any]:
    if config[CONF_TYPE] == IN_ZONE and not config.get(CONF_ZONE):
        raise vol.Invalid("an in_zone condition needs the zone's name", path=[CONF_ZONE])
    return config


CONDITION_SCHEMA = vol.All(
    DEVICE_CONDITION_BASE_SCHEMA.extend(
        {
            vol.Required(CONF_TYPE): vol.In(CAMERA_CONDITIONS + SERVER_CONDITIONS),
            vol.Optional(CONF_ZONE): vol.All(str, vol.Strip),
        }
    ),
    _needs_zone,
)


async def async_get_condition_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """The in_zone condition asks for a zone: one of the camera's zones where it has any."""
    if config.get(CONF_TYPE) != IN_ZONE:
        return {}
    return {"extra_fields": zone_field(hass, config[CONF_DEVICE_ID])}


def _server_of_device(hass: HomeAssistant, device_id: str) -> str | None:
    """Return the server key (its unique ids' prefix) of a server device, else None."""
    registry = dr.async_get(hass)
    device = registry.async_get(device_id)
    if device is None:
        return None
    for entry in hass.config_entries.async_entries(DOMAIN):
        key = entry.unique_id or entry.entry_id
        if (DOMAIN, key) in device.identifiers:
            return key
    return None


async def async_get_conditions(hass: HomeAssistant, device_id: str) -> list[dict[str, str]]:
    """List the conditions of a camera device or of the server device."""
    if camera_of_device(hass, device_id) is not None:
        types: tuple[str, ...] = CAMERA_CONDITIONS
    elif _server_of_device(hass, device_id) is not None:
        types = SERVER_CONDITIONS
    else:
        return []
    return [
        {
            CONF_CONDITION: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: condition_type,
        }
        for condition_type in types
    ]


def _unique_id(hass: HomeAssistant, device_id: str, condition_type: str) -> tuple[str, str]:
    """The platform and unique id of the entity a condition reads."""
    if condition_type in SERVER_CONDITIONS:
        server = _server_of_device(hass, device_id)
        return "select", f"{server}_server_armed"
    camera = camera_of_device(hass, device_id)
    platform, key = _ENTITIES[condition_type]
    if camera is None:
        return platform, ""
    entry = hass.config_entries.async_get_entry(camera[0])
    server = (entry.unique_id or entry.entry_id) if entry is not None else ""
    return platform, f"{server}_{camera[1]}_{key}"


@callback
def async_condition_from_config(hass: HomeAssistant, config: ConfigType) -> ConditionCheckerType:
    """Check the state of the entity behind the condition at the time it is asked."""
    condition_type: str = config[CONF_TYPE]
    platform, unique_id = _unique_id(hass, config[CONF_DEVICE_ID], condition_type)
    wanted = (
        condition_type.removeprefix(ARMED_PREFIX)
        if condition_type in SERVER_CONDITIONS
        else STATE_ON
    )

    reads_attributes = _ATTRIBUTE_TESTS.get(condition_type)

    @callback
    def _check(hass: HomeAssistant, variables: TemplateVarsType = None) -> bool:
        entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
        state = hass.states.get(entity_id) if entity_id is not None else None
        if state is None:
            return False
        if reads_attributes is not None:
            attributes: Mapping[str, Any] = state.attributes
            return bool(reads_attributes(attributes, config))
        return state.state == wanted

    return _check
