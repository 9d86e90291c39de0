"""Retention of the snapshots and clips: old ones deleted daily, all of them with the entry.

Every camera's media lies in one folder (media_files.py). Once a day, and when the entry sets
up, files last modified more than the retention (an option, 30 days by default) ago are
deleted and the rest counted for the *Media files* sensor. A snapshot or clip written since
runs the same pass again, at most once a minute, so the sensor follows what is on disk. With
several entries, each cleans the whole folder with its own retention, so the shortest one wins.

Removing the entry deletes its cameras' media (all of it when no other entry is left), unless
its *Keep snapshots and clips when removed* option is on. Home Assistant asks nothing on
removal, so the choice is an option made beforehand, and the outcome is logged with the count
and the folder: removal means cleaning up, as it does for the spool and the stored state, but
a household that needs the pictures as evidence can keep them by turning the option on first.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import (
    CONF_KEEP_MEDIA_ON_REMOVAL,
    CONF_MEDIA_RETENTION_DAYS,
    DEFAULT_MEDIA_RETENTION_DAYS,
    DOMAIN,
    MEDIA_CLEANUP_INTERVAL,
    MEDIA_RECOUNT_COOLDOWN,
    signal_media_updated,
)
from .media_files import MEDIA_SUFFIXES, integration_folder, safe_name

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MediaCount:
    """What one clean-up found: files deleted, and files and bytes kept."""

    deleted: int = 0
    files: int = 0
    bytes: int = 0


def _is_media(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1] in MEDIA_SUFFIXES


def delete_older_than(folder: Path, cutoff: float) -> MediaCount:
    """Delete the snapshots and clips last modified before `cutoff` (epoch seconds) and the
    folders they leave empty; count what stays (runs in the executor)."""
    deleted = files = size = 0
    if not folder.is_dir():
        return MediaCount()
    for directory, _folders, names in os.walk(folder, topdown=False):
        for name in names:
            if not _is_media(name):
                continue
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
                if info.st_mtime < cutoff:
                    os.unlink(path)
                    deleted += 1
                    continue
            except OSError as err:
                _LOGGER.debug("Cannot clean up %s: %s", path, err)
                continue
            files += 1
            size += info.st_size
        if directory != str(folder) and not os.listdir(directory):
            try:
                os.rmdir(directory)
            except OSError as err:
                _LOGGER.debug("Cannot remove the empty folder %s: %s", directory, err)
    return MediaCount(deleted=deleted, files=files, bytes=size)


def delete_folders(folder: Path, names: list[str] | None) -> int:
    """Delete the named camera folders, or the whole folder when `names` is None; return how
    many snapshots and clips went (runs in the executor)."""
    targets = [folder] if names is None else [folder / name for name in names]
    count = 0
    for target in targets:
        if not target.is_dir() or target.is_symlink():
            continue
        count += sum(
            1 for _dir, _folders, files in os.walk(target) for name in files if _is_media(name)
        )
        shutil.rmtree(target, ignore_errors=True)
    return count


class MediaRetention:
    """Deletes an entry's old snapshots and clips once a day and counts the rest."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Clean up the integration's media folder by the entry's retention option."""
        self.hass = hass
        self._entry = entry
        self.last: MediaCount | None = None
        self.last_run: datetime | None = None
        # New files are counted by a pass of their own: the first at once, then at most one
        # per cooldown however many files are written.
        self._recount = Debouncer(
            hass,
            _LOGGER,
            cooldown=MEDIA_RECOUNT_COOLDOWN,
            immediate=True,
            function=self.async_clean,
        )

    @property
    def retention_days(self) -> int:
        """Return how many days snapshots and clips are kept (read at every run)."""
        return int(
            self._entry.options.get(CONF_MEDIA_RETENTION_DAYS, DEFAULT_MEDIA_RETENTION_DAYS)
        )

    @callback
    def async_start(self) -> None:
        """Clean up now (in the background) and then once a day."""
        self._entry.async_on_unload(self._recount.async_cancel)
        self._entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_scheduled,
                MEDIA_CLEANUP_INTERVAL,
                name=f"{DOMAIN} media retention",
                cancel_on_shutdown=True,
            )
        )
        self._async_scheduled()

    @callback
    def async_media_written(self) -> None:
        """Count again: a snapshot or clip was just written."""
        self._entry.async_create_background_task(
            self.hass, self._recount.async_call(), f"{DOMAIN} media count"
        )

    @callback
    def _async_scheduled(self, _now: Any = None) -> None:
        self._entry.async_create_background_task(
            self.hass, self.async_clean(), f"{DOMAIN} media retention"
        )

    async def async_clean(self) -> MediaCount:
        """Delete what is older than the retention; return and publish the count."""
        days = self.retention_days
        count = await self.hass.async_add_executor_job(
            delete_older_than, integration_folder(self.hass), time.time() - days * 86_400
        )
        if count.deleted:
            _LOGGER.info(
                "Deleted %s snapshots and clips older than %s days; %s kept",
                count.deleted,
                days,
                count.files,
            )
        self.last = count
        self.last_run = dt_util.utcnow()
        async_dispatcher_send(self.hass, signal_media_updated(self._entry.entry_id))
        return count


def _entry_camera_folders(hass: HomeAssistant, entry: ConfigEntry) -> list[str]:
    """Return the media folders of the entry's cameras (from its camera devices)."""
    server_key = entry.unique_id or entry.entry_id
    return sorted(
        safe_name(identifier.removeprefix(f"{server_key}_"), "camera")
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        for domain, identifier in device.identifiers
        if domain == DOMAIN and identifier.startswith(f"{server_key}_")
    )


async def async_remove_media(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Delete a removed entry's snapshots and clips, unless its options say to keep them."""
    folder = integration_folder(hass)
    if entry.options.get(CONF_KEEP_MEDIA_ON_REMOVAL, False):
        _LOGGER.info(
            "Keeping the snapshots and clips of Home Security AI in %s, as the option "
            "'Keep snapshots and clips when removed' says; delete that folder to free the space",
            folder,
        )
        return
    others = [other for other in hass.config_entries.async_entries(DOMAIN) if other is not entry]
    # The last entry takes the whole folder: snapshots of cameras that lost their device too.
    names = _entry_camera_folders(hass, entry) if others else None
    count = await hass.async_add_executor_job(delete_folders, folder, names)
    _LOGGER.warning(
        "Deleted %s snapshots and clips of the removed Home Security AI entry from %s "
        "(turn on the option 'Keep snapshots and clips when removed' before removing to keep "
        "them)",
        count,
        folder,
    )
