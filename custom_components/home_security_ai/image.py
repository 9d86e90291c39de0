"""Image entities: per camera, the annotated snapshot of its last security event.

The bytes are the JPEG that media/snapshots.py saved for the event, read from disk in the executor;
this is what the notification blueprint attaches (its address is the event's `snapshot_url`).
After a restart the camera's newest snapshot comes from the event history.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .const import SNAPSHOT_FOLDER
from .entity import HomeSecurityAICameraEntity, async_add_per_camera
from .events.camera_links import SNAPSHOT_KEY
from .media.snapshots import media_root
from .runtime import HomeSecurityAIConfigEntry

PARALLEL_UPDATES = 0

DESCRIPTION = ImageEntityDescription(key=SNAPSHOT_KEY, translation_key=SNAPSHOT_KEY)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a snapshot image per camera, now and whenever one appears."""

    @callback
    def _add(camera_id: str) -> None:
        async_add_entities([EventSnapshotImage(hass, entry, camera_id)])

    async_add_per_camera(hass, entry, _add)


def _read(path: str, folder: Path) -> bytes | None:
    """Return the snapshot's bytes; only files in the snapshot folder are served."""
    try:
        file = Path(path).resolve()
        if not file.is_relative_to(folder.resolve()):
            # The path comes from a bus event, which anyone allowed to fire events can forge.
            return None
        return file.read_bytes()
    except OSError:
        return None  # removed by media retention, or never written


class EventSnapshotImage(HomeSecurityAICameraEntity, ImageEntity):
    """The last security event of a camera, with its detections drawn."""

    _attr_content_type = "image/jpeg"

    def __init__(
        self, hass: HomeAssistant, entry: HomeSecurityAIConfigEntry, camera_id: str
    ) -> None:
        """Start from the camera's newest snapshot in the history, if it has one."""
        ImageEntity.__init__(self, hass)
        HomeSecurityAICameraEntity.__init__(self, entry, DESCRIPTION, camera_id)
        self._path: str | None = None
        if (last := entry.runtime_data.history.last_snapshot(camera_id)) is not None:
            self._path, self._attr_image_last_updated = last

    @property
    def available(self) -> bool:
        """Return whether the camera is still known: the snapshot is on Home Assistant's disk,
        reachable sidecar or not."""
        return self.camera_id in self.cameras

    @callback
    def _handle_event(self, _event: object) -> None:
        state = self.camera_state
        if state.last_snapshot is not None:
            self._path = state.last_snapshot
            when: datetime = state.last_event_at or dt_util.utcnow()
            self._attr_image_last_updated = when
        self.async_write_ha_state()

    async def async_image(self) -> bytes | None:
        """Return the snapshot's JPEG."""
        if self._path is None:
            return None
        folder = media_root(self.hass) / SNAPSHOT_FOLDER
        return await self.hass.async_add_executor_job(_read, self._path, folder)
