"""Where event snapshots and incident clips lie in the media folder, and how to list them.

Layout (docs/media.md)::

    <media>/home_security_ai/<camera id>/<day>/<incident id>/<event id>.jpg
    <media>/home_security_ai/<camera id>/<day>/<incident id>/clip.mp4
    <media>/home_security_ai/<camera id>/<day>/<event id>.jpg      (an event of no incident)
    <media>/home_security_ai/<camera id>/<event id>.jpg            (saved by earlier versions)

``<day>`` is the local date the incident started, so an incident past midnight stays in one
folder. Files saved by earlier versions stay where they are, so the ``media_content_id`` of
every bus event fired before keeps resolving; they are listed under the day of their mtime.

Everything here touches the disk: call it from the executor.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from ..const import SNAPSHOT_FOLDER

SNAPSHOT_SUFFIX = ".jpg"
CLIP_NAME = "clip.mp4"
MEDIA_SUFFIXES = frozenset({SNAPSHOT_SUFFIX, ".mp4"})

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def safe_name(text: str, fallback: str) -> str:
    """Return `text` as one file name of letters, digits, '_', '.' and '-' (never '.' or '..')."""
    name = _SAFE_NAME.sub("_", text).strip(".")
    return name or fallback


def media_root(hass: HomeAssistant) -> Path:
    """Return Home Assistant's local media folder."""
    return Path(hass.config.media_dirs.get("local") or hass.config.path("media"))


def integration_folder(hass: HomeAssistant) -> Path:
    """Return the folder of every snapshot and clip of the integration."""
    return media_root(hass) / SNAPSHOT_FOLDER


def snapshot_path(
    folder: Path, camera_id: str, event_id: str, day: date, incident_id: str | None
) -> Path:
    """Return where an event's annotated snapshot is saved."""
    place = folder / safe_name(camera_id, "camera") / day.isoformat()
    if incident_id:
        place = place / safe_name(incident_id, "incident")
    return place / f"{safe_name(event_id, 'event')}{SNAPSHOT_SUFFIX}"


def local_day(timestamp_ms: int) -> date:
    """Return the local date of a time in ms since the epoch (today when it is 0)."""
    if timestamp_ms <= 0:
        return dt_util.now().date()
    return dt_util.as_local(dt_util.utc_from_timestamp(timestamp_ms / 1000)).date()


def is_day(name: str) -> bool:
    """Return whether a folder name is a day of the layout."""
    return _DAY.match(name) is not None


@dataclass(frozen=True, kw_only=True)
class MediaFile:
    """A snapshot or clip: its path relative to the integration's folder, and its mtime."""

    relative: str
    mtime: float

    @property
    def name(self) -> str:
        """Return the file's name."""
        return PurePosixPath(self.relative).name

    @property
    def local_time(self) -> datetime:
        """Return the file's mtime in local time."""
        return dt_util.as_local(dt_util.utc_from_timestamp(self.mtime))


@dataclass(frozen=True, kw_only=True)
class Incident:
    """An incident's folder under a day: its snapshots (oldest first) and its clip if made."""

    relative: str
    snapshots: tuple[MediaFile, ...]
    clip: MediaFile | None

    @property
    def incident_id(self) -> str:
        """Return the incident's id (its folder's name)."""
        return PurePosixPath(self.relative).name


@dataclass(frozen=True, kw_only=True)
class Day:
    """One camera's day: its incidents and the events outside any incident."""

    incidents: tuple[Incident, ...]
    snapshots: tuple[MediaFile, ...]


def _media_files(folder: Path, relative: PurePosixPath) -> list[MediaFile]:
    """Return the snapshots and clips directly in a folder, oldest first."""
    found: list[MediaFile] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or Path(entry.name).suffix not in MEDIA_SUFFIXES:
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                found.append(
                    MediaFile(
                        relative=(relative / entry.name).as_posix(),
                        mtime=entry.stat(follow_symlinks=False).st_mtime,
                    )
                )
    except OSError:
        return []
    return sorted(found, key=lambda item: (item.mtime, item.name))


def _folders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(
                entry.name
                for entry in entries
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
            )
    except OSError:
        return []


def list_cameras(folder: Path) -> list[str]:
    """Return the camera folders."""
    return _folders(folder)


def _legacy_snapshots(folder: Path, camera: str) -> list[MediaFile]:
    """Return a camera's snapshots saved by earlier versions, straight in its folder."""
    return [
        item
        for item in _media_files(folder / camera, PurePosixPath(camera))
        if item.name.endswith(SNAPSHOT_SUFFIX)
    ]


def list_days(folder: Path, camera: str) -> list[str]:
    """Return a camera's days with media, newest first."""
    days = {name for name in _folders(folder / camera) if is_day(name)}
    days.update(item.local_time.date().isoformat() for item in _legacy_snapshots(folder, camera))
    return sorted(days, reverse=True)


def _incident(folder: Path, relative: PurePosixPath) -> Incident:
    files = _media_files(folder / relative, relative)
    return Incident(
        relative=relative.as_posix(),
        snapshots=tuple(item for item in files if item.name.endswith(SNAPSHOT_SUFFIX)),
        clip=next((item for item in files if item.name == CLIP_NAME), None),
    )


def list_day(folder: Path, camera: str, day: str) -> Day:
    """Return a camera's incidents and lone snapshots of one day, oldest first."""
    relative = PurePosixPath(camera, day)
    incidents = [
        _incident(folder, relative / name) for name in _folders(folder / camera / day)
    ]
    lone = [
        item
        for item in _media_files(folder / camera / day, relative)
        if item.name.endswith(SNAPSHOT_SUFFIX)
    ]
    lone += [
        item
        for item in _legacy_snapshots(folder, camera)
        if item.local_time.date().isoformat() == day
    ]
    return Day(
        incidents=tuple(
            sorted(
                (incident for incident in incidents if incident.snapshots),
                key=lambda incident: incident.snapshots[0].mtime,
            )
        ),
        snapshots=tuple(sorted(lone, key=lambda item: item.mtime)),
    )


def list_incident(folder: Path, relative: str) -> Incident:
    """Return one incident's snapshots and clip."""
    return _incident(folder, PurePosixPath(relative))


def find_incidents(folder: Path, camera: str, incident_id: str) -> list[str]:
    """Return the relative folders of an incident on a camera (one per day it started on)."""
    name = safe_name(incident_id, "incident")
    return [
        PurePosixPath(camera, day, name).as_posix()
        for day in _folders(folder / camera)
        if is_day(day) and (folder / camera / day / name).is_dir()
    ]


def valid_relative(relative: str) -> bool:
    """Return whether a relative path names something inside the folder (no '..', no hidden
    names); it does not look at the disk."""
    parts = PurePosixPath(relative).parts
    return bool(parts) and not any(
        part in {"", ".", "..", "/"} or part.startswith(".") for part in parts
    )


def existing_file(folder: Path, relative: str) -> Path | None:
    """Return the snapshot or clip a relative path names, or None when there is none.

    Links are not followed out of the folder: the real path must stay inside it.
    """
    if not valid_relative(relative) or PurePosixPath(relative).suffix not in MEDIA_SUFFIXES:
        return None
    path = folder.joinpath(*PurePosixPath(relative).parts)
    real_folder = os.path.realpath(folder)
    if os.path.commonpath([real_folder, os.path.realpath(path)]) != real_folder:
        return None
    return path if path.is_file() else None
