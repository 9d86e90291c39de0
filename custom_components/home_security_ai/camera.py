"""Camera entities: the last analyzed frame of each camera, with its detections drawn."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.components.camera import Camera, CameraEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .entity import HomeSecurityAICameraEntity, async_add_per_camera
from .media.snapshots import annotate_jpeg
from .runtime import HomeSecurityAIConfigEntry

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

DESCRIPTION = CameraEntityDescription(key="camera", name=None)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a camera entity per monitored camera, now and whenever one appears."""

    @callback
    def _add(camera_id: str) -> None:
        async_add_entities([HomeSecurityAICamera(entry, camera_id)])

    async_add_per_camera(hass, entry, _add)


class HomeSecurityAICamera(HomeSecurityAICameraEntity, Camera):
    """The last frame of a camera with boxes around what was detected."""

    _attr_is_streaming = False

    def __init__(self, entry: HomeSecurityAIConfigEntry, camera_id: str) -> None:
        """Create the camera entity."""
        Camera.__init__(self)
        HomeSecurityAICameraEntity.__init__(self, entry, DESCRIPTION, camera_id)
        self.content_type = "image/jpeg"
        self._annotated: bytes | None = None
        self._annotated_ref: str | None = None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The camera's open cooldowns (kind of finding -> until when) and last incident."""
        state = self.camera_state
        now = dt_util.utcnow()
        event = state.last_event
        return {
            "cooldowns": {
                kind: until.isoformat()
                for kind, until in sorted(state.cooldowns_until.items())
                if until > now
            },
            "incident_id": (
                event.incident.incident_id
                if event is not None and event.incident is not None
                else None
            ),
        }

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return the last analyzed frame with its detections drawn."""
        state = self.camera_state
        if state.last_image is None:
            return None
        if self._annotated_ref != state.last_image_ref:
            image, ref, detections = state.last_image, state.last_image_ref, state.detections
            # Always a JPEG, as the content type says, even for a frame that cannot be decoded.
            self._annotated = await self.hass.async_add_executor_job(
                annotate_jpeg, image, detections
            )
            self._annotated_ref = ref
        return self._annotated
