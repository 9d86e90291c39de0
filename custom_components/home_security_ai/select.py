"""The select of the server device: how the household is armed (home, away, night, disarmed)."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .alerts.alerting import ArmedMode
from .entity import HomeSecurityAIEntity, server_device_info
from .runtime import HomeSecurityAIConfigEntry

PARALLEL_UPDATES = 0

ARMED = SelectEntityDescription(
    key="armed",
    translation_key="armed",
    options=[mode.value for mode in ArmedMode],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the armed mode select."""
    async_add_entities([ArmedModeSelect(entry, ARMED)])


class ArmedModeSelect(HomeSecurityAIEntity, SelectEntity, RestoreEntity):
    """Away escalates events one level; disarmed records them without alerting (see
    alerts/alerting.py)."""

    def __init__(
        self, entry: HomeSecurityAIConfigEntry, description: SelectEntityDescription
    ) -> None:
        """Attach the select to the server device."""
        super().__init__(entry, description, "server")
        self._attr_device_info = server_device_info(entry)

    @property
    def current_option(self) -> str:
        """Return the armed mode."""
        return self._entry.runtime_data.arming.mode.value

    async def async_added_to_hass(self) -> None:
        """Take up the mode from before the restart."""
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state in {mode.value for mode in ArmedMode}:
            self._entry.runtime_data.arming.mode = ArmedMode(last.state)

    async def async_select_option(self, option: str) -> None:
        """Arm or disarm."""
        self._entry.runtime_data.arming.mode = ArmedMode(option)
        self.async_write_ha_state()
