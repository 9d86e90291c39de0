"""Device conditions: a camera's threat is active or its analysis is on; the home is armed in a
given mode (on the server device).

Each reads the state of the entity that shows it, found by unique id when the condition is
checked, so a renamed entity keeps working.
"""

from __future__ import annotations

from typing import Final

import voluptuous as vol
from homeassistant.const import CONF_CONDITION, CONF_DEVICE_ID, CONF_DOMAIN, CONF_TYPE, STATE_ON
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.condition import ConditionCheckerType
from homeassistant.helpers.config_validation import DEVICE_CONDITION_BASE_SCHEMA
from homeassistant.helpers.typing import ConfigType, TemplateVarsType

from .alerting import ArmedMode
from .const import DOMAIN
from .entity import camera_of_device

THREAT_ACTIVE: Final = "threat_active"
ANALYSIS_ENABLED: Final = "analysis_enabled"
# "armed_<mode>": the Armed select of the server device is in that mode.
ARMED_PREFIX: Final = "armed_"
CAMERA_CONDITIONS: Final = (THREAT_ACTIVE, ANALYSIS_ENABLED)
SERVER_CONDITIONS: Final = tuple(f"{ARMED_PREFIX}{mode.value}" for mode in ArmedMode)
# The entity each condition reads: platform and the key of its unique id.
_ENTITIES: Final = {
    THREAT_ACTIVE: ("binary_sensor", "threat_active"),
    ANALYSIS_ENABLED: ("switch", "analysis_enabled"),
}

CONDITION_SCHEMA = DEVICE_CONDITION_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In(CAMERA_CONDITIONS + SERVER_CONDITIONS)}
)


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

    @callback
    def _check(hass: HomeAssistant, variables: TemplateVarsType = None) -> bool:
        entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
        state = hass.states.get(entity_id) if entity_id is not None else None
        return state is not None and state.state == wanted

    return _check
