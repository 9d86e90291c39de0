"""Camera entities: a snapshot of each watched camera on a timer and on motion."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from homeassistant.components import camera
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_state_change_event, async_track_time_interval
from homeassistant.util import dt as dt_util

from ..cameras import Cameras
from ..client import FrameIn, FrameSource
from ..const import DOMAIN
from ..delivery.frame_stream import FrameStream
from .camera_ids import CameraIds
from .frames import new_client_ref, sha256_hex

_LOGGER = logging.getLogger(__name__)


class CameraEntitySource:
    """Snapshots Home Assistant camera entities on a timer and on motion."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        frames: FrameStream,
        camera_states: Cameras,
        camera_ids: CameraIds,
        *,
        cameras: list[str],
        interval: int,
        motion_sensors: dict[str, str],
        analysis_enabled: Callable[[str], bool],
    ) -> None:
        """Remember what to watch; `async_start` begins watching."""
        self.hass = hass
        self._entry = entry
        self._frames = frames
        self._camera_states = camera_states
        self._cameras = {entity_id: camera_ids.for_entity(entity_id) for entity_id in cameras}
        self._interval = interval
        self._analysis_enabled = analysis_enabled
        # One motion sensor may trigger several cameras.
        self._motion: dict[str, list[str]] = {}
        for entity_id, sensor in motion_sensors.items():
            if entity_id in self._cameras and sensor:
                self._motion.setdefault(sensor, []).append(entity_id)
        self._busy: set[str] = set()
        self._failing: set[str] = set()

    @property
    def camera_ids(self) -> dict[str, str]:
        """Return the watched camera entities and their camera ids."""
        return dict(self._cameras)

    @callback
    def async_start(self) -> None:
        """Register cameras and start the snapshot timer and motion listeners."""
        for entity_id, camera_id in self._cameras.items():
            if not camera_id:
                continue
            state = self.hass.states.get(entity_id)
            name = state.name if state is not None else entity_id
            self._camera_states.async_register(camera_id, name)
        if self._cameras and self._interval > 0:
            self._entry.async_on_unload(
                async_track_time_interval(
                    self.hass,
                    self._async_snapshot_all,
                    timedelta(seconds=self._interval),
                    name=f"{DOMAIN} camera snapshots",
                    cancel_on_shutdown=True,
                )
            )
        if self._motion:
            self._entry.async_on_unload(
                async_track_state_change_event(
                    self.hass, list(self._motion), self._async_motion_changed
                )
            )

    @callback
    def _async_snapshot_all(self, _now: Any = None) -> None:
        for entity_id in self._cameras:
            self._async_schedule_snapshot(entity_id)

    @callback
    def _async_motion_changed(self, event: Event[EventStateChangedData]) -> None:
        new_state = event.data["new_state"]
        old_state = event.data["old_state"]
        if new_state is None or new_state.state != STATE_ON:
            return
        if old_state is not None and old_state.state == STATE_ON:
            return
        for entity_id in self._motion.get(event.data["entity_id"], []):
            self._async_schedule_snapshot(entity_id)

    @callback
    def _async_schedule_snapshot(self, entity_id: str) -> None:
        if entity_id in self._busy or not self._cameras.get(entity_id):
            return
        self._busy.add(entity_id)
        self._entry.async_create_background_task(
            self.hass, self.async_snapshot(entity_id), f"{DOMAIN} snapshot {entity_id}"
        )

    async def async_snapshot(self, entity_id: str) -> None:
        """Fetch one still image from a camera entity and queue it."""
        camera_id = self._cameras[entity_id]
        if not self._analysis_enabled(camera_id):
            self._busy.discard(entity_id)
            return  # paused: not even fetched
        try:
            image = await camera.async_get_image(self.hass, entity_id)
        except HomeAssistantError as err:
            if entity_id not in self._failing:
                self._failing.add(entity_id)
                _LOGGER.warning("Cannot get a snapshot from %s: %s", entity_id, err)
            return
        finally:
            self._busy.discard(entity_id)
        if entity_id in self._failing:
            self._failing.discard(entity_id)
            _LOGGER.info("Snapshots from %s work again", entity_id)
        digest = await self.hass.async_add_executor_job(sha256_hex, image.content)
        await self._frames.async_submit(
            FrameIn(
                camera_id=camera_id,
                image=image.content,
                client_ref=new_client_ref(),
                captured_at_ms=int(dt_util.utcnow().timestamp() * 1000),
                source=FrameSource.CAMERA_ENTITY,
                source_ref=entity_id,
                content_sha256=digest,
            )
        )
