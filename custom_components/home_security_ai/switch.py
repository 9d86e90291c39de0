"""Switches: per camera, whether its frames are analyzed at all."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import STATE_OFF, EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity
from homeassistant.util import dt as dt_util

from .const import ATTR_RESUME_AT
from .entity import HomeSecurityAICameraEntity, async_add_per_camera
from .runtime import HomeSecurityAIConfigEntry

PARALLEL_UPDATES = 0

ANALYSIS_ENABLED = SwitchEntityDescription(
    key="analysis_enabled",
    translation_key="analysis_enabled",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the switch of every camera, now and whenever one appears."""

    @callback
    def _add(camera_id: str) -> None:
        async_add_entities([AnalysisSwitch(entry, ANALYSIS_ENABLED, camera_id)])

    async_add_per_camera(hass, entry, _add)


class AnalysisSwitch(HomeSecurityAICameraEntity, SwitchEntity, RestoreEntity):
    """Off: the camera's frames are neither collected nor sent, until it is turned on again."""

    @property
    def available(self) -> bool:
        """Return whether the camera is still known: the choice is Home Assistant's own,
        reachable sidecar or not."""
        return self.camera_id in self.cameras

    @property
    def is_on(self) -> bool:
        """Return whether the camera is analyzed."""
        return self._entry.runtime_data.arming.analysis_enabled(self.camera_id)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return when a pause for a while ends by itself."""
        resume_at = self._entry.runtime_data.arming.resume_at(self.camera_id)
        return {ATTR_RESUME_AT: resume_at.isoformat() if resume_at is not None else None}

    async def async_added_to_hass(self) -> None:
        """Take up the state from before the restart: a pause for a while that ended meanwhile
        is over, one still running goes on until its time."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_state()) is None:
            return
        arming = self._entry.runtime_data.arming
        if last.state != STATE_OFF:
            arming.async_set_analysis(self.camera_id, True)
            return
        until = dt_util.parse_datetime(str(last.attributes.get(ATTR_RESUME_AT) or ""))
        if until is not None and until <= dt_util.utcnow():
            arming.async_set_analysis(self.camera_id, True)
        else:
            arming.async_set_analysis(self.camera_id, False, until=until)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Analyze the camera's frames again."""
        self._entry.runtime_data.arming.async_set_analysis(self.camera_id, True)
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Stop collecting and sending the camera's frames."""
        self._entry.runtime_data.arming.async_set_analysis(self.camera_id, False)
        self.async_write_ha_state()
