"""Buttons: per camera, accept its current view as the usual one (after a deliberate re-aim)."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .entity import HomeSecurityAICameraEntity, async_add_per_camera
from .runtime import HomeSecurityAIConfigEntry
from .services import async_reset_scene

PARALLEL_UPDATES = 1

RESET_SCENE = ButtonEntityDescription(
    key="reset_scene",
    translation_key="reset_scene",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the button of every camera, now and whenever one appears."""

    @callback
    def _add(camera_id: str) -> None:
        async_add_entities([ResetSceneButton(entry, RESET_SCENE, camera_id)])

    async_add_per_camera(hass, entry, _add)


class ResetSceneButton(HomeSecurityAICameraEntity, ButtonEntity):
    """Tells the sidecar that the camera's current view is its usual one."""

    def __init__(
        self, entry: HomeSecurityAIConfigEntry, description: ButtonEntityDescription, camera_id: str
    ) -> None:
        super().__init__(entry, description, camera_id)
        self._entry = entry

    async def async_press(self) -> None:
        if not await async_reset_scene(self._entry, self.camera_id):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="no_frame_yet",
                translation_placeholders={"camera": self.camera_state.name},
            )
