"""An incident's clip, made when the incident ends and again when it is played stale.

The clip (clips.py) lies next to the incident's snapshots on each of its cameras; one with a
single snapshot gets none. Encoding runs in the executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Event, HomeAssistant, callback

from ..const import EVENT_INCIDENT_ENDED
from .clips import ClipError, make_clip
from .media_files import (
    CLIP_NAME,
    Incident,
    find_incidents,
    integration_folder,
    list_incident,
    safe_name,
)

_LOGGER = logging.getLogger(__name__)


def clip_due(incident: Incident) -> bool:
    """Return whether an incident needs its clip made or made again."""
    if len(incident.snapshots) < 2:
        return False
    return incident.clip is None or incident.clip.mtime < incident.snapshots[-1].mtime


async def async_make_incident_clip(hass: HomeAssistant, folder: Path, incident: Incident) -> bool:
    """Encode an incident's clip in the executor; a failure is logged, not raised. Return
    whether a clip was written."""
    target = folder / incident.relative / CLIP_NAME
    snapshots = [folder / snapshot.relative for snapshot in incident.snapshots]
    try:
        frames = await hass.async_add_executor_job(make_clip, snapshots, target)
    except ClipError as err:
        _LOGGER.warning("Cannot make the clip of incident %s: %s", incident.relative, err)
        return False
    _LOGGER.debug("Made the clip of incident %s: %s frames", incident.relative, frames)
    return True


def _due_incidents(folder: Path, camera_ids: list[str], incident_id: str) -> list[Incident]:
    """Return the incident's folders on its cameras that need a clip (runs in the executor)."""
    return [
        incident
        for camera in camera_ids
        for relative in find_incidents(folder, safe_name(camera, "camera"), incident_id)
        if clip_due(incident := list_incident(folder, relative))
    ]


@callback
def async_make_clips_when_incidents_end(
    hass: HomeAssistant, entry: ConfigEntry, media_written: Callable[[], None]
) -> None:
    """Make the clips of the entry's incidents as they end; `media_written` hears of each."""

    async def _async_ended(event: Event) -> None:
        if event.data.get("entry_id") != entry.entry_id:
            return
        incident_id = str(event.data.get("incident_id") or "")
        if not incident_id:
            return
        folder = integration_folder(hass)
        cameras = [str(camera) for camera in event.data.get("camera_ids") or []]
        made = [
            await async_make_incident_clip(hass, folder, incident)
            for incident in await hass.async_add_executor_job(
                _due_incidents, folder, cameras, incident_id
            )
        ]
        if any(made):
            media_written()

    entry.async_on_unload(hass.bus.async_listen(EVENT_INCIDENT_ENDED, _async_ended))
