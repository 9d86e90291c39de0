"""Upload folders: images and videos dropped into watched folders, each sent once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypedDict

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    HomeAssistant,
    callback,
)
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import (
    async_call_later,
    async_track_time_interval,
)
from homeassistant.helpers.storage import Store

from ..cameras import Cameras
from ..client import FrameIn, FrameSource
from ..const import (
    DOMAIN,
    STORAGE_VERSION,
    UPLOAD_CHANGE_DELAY,
    UPLOAD_EXTENSIONS,
    UPLOAD_MAX_FILE_BYTES,
    UPLOAD_MAX_VIDEO_BYTES,
    UPLOAD_RESCAN_INTERVAL,
    UPLOAD_SETTLE_SECONDS,
    UPLOAD_VIDEO_EXTENSIONS,
)
from ..delivery.frame_stream import FrameStream
from .camera_ids import CameraIds, is_hashed_camera_id
from .folder_events import FolderEvents
from .frames import new_client_ref, sha256_hex
from .video_frames import SampleEnd, VideoError, VideoSample, sample_video

_LOGGER = logging.getLogger(__name__)

_MAX_DEPTH = 8
_SAVE_DELAY = 60
# After the spool refused an upload, it is tried again after this long, doubling up to the max.
UPLOAD_RETRY_INITIAL = 30.0
UPLOAD_RETRY_MAX = 600.0


@dataclass(frozen=True, kw_only=True, slots=True)
class _FoundFile:
    root: str
    folder: str  # the top-level folder's name: the camera
    relative: str
    size: int
    mtime_ns: int


@dataclass(kw_only=True, slots=True)
class _ScanResult:
    folders: set[str]  # names of the top-level folders: one camera each
    files: dict[str, _FoundFile]
    failed_roots: set[str]
    # Upload folders that could not be opened at all, with why.
    unreadable_roots: dict[str, str] = field(default_factory=dict)


class _StoredUploads(TypedDict):
    sent: dict[str, list[int]]


def _acceptable_name(name: str) -> bool:
    """Return whether a directory entry may be looked at."""
    if not name or name.startswith(".") or name in {".", ".."}:
        return False
    if any(ord(char) < 32 or ord(char) == 127 for char in name) or "/" in name or "\\" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the file name
        return False
    return True


def _scan_roots(roots: list[str]) -> _ScanResult:
    """Walk the upload folders (runs in the executor)."""
    result = _ScanResult(folders=set(), files={}, failed_roots=set())
    for root in roots:
        try:
            with os.scandir(root) as entries:
                tops = [
                    entry
                    for entry in entries
                    if _acceptable_name(entry.name) and entry.is_dir(follow_symlinks=False)
                ]
        except OSError as err:
            _LOGGER.debug("Cannot read upload folder %s: %s", root, err)
            result.failed_roots.add(root)
            result.unreadable_roots[root] = err.strerror or type(err).__name__
            continue
        for top in tops:
            result.folders.add(top.name)
            _walk(root, top.path, top.name, 0, result)
    return result


def _walk(root: str, path: str, folder: str, depth: int, result: _ScanResult) -> None:
    if depth > _MAX_DEPTH:
        return
    try:
        with os.scandir(path) as entries:
            children = list(entries)
    except OSError as err:
        _LOGGER.debug("Cannot read %s: %s", path, err)
        result.failed_roots.add(root)
        return
    for entry in children:
        if not _acceptable_name(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            _walk(root, entry.path, folder, depth + 1, result)
        elif stat.S_ISREG(info.st_mode) and Path(entry.name).suffix.lower() in _UPLOAD_SUFFIXES:
            relative = PurePosixPath(*Path(os.path.relpath(entry.path, root)).parts).as_posix()
            result.files[entry.path] = _FoundFile(
                root=root,
                folder=folder,
                relative=relative,
                size=info.st_size,
                mtime_ns=info.st_mtime_ns,
            )


_UPLOAD_SUFFIXES = UPLOAD_EXTENSIONS | UPLOAD_VIDEO_EXTENSIONS


def _is_video(path: str) -> bool:
    return Path(path).suffix.lower() in UPLOAD_VIDEO_EXTENSIONS


class OutsideRootError(Exception):
    """The upload resolves to a place outside its upload folder."""


def _check_inside(path: str, root: str) -> None:
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise OutsideRootError(path)


def _sample_upload(path: str, root: str) -> VideoSample:
    """Sample a settled video upload (runs in the executor); raises VideoError or
    OutsideRootError."""
    _check_inside(path, root)
    return sample_video(path)


def _read_file(path: str, root: str, size: int) -> tuple[bytes, str] | None:
    """Read a settled upload and hash it (runs in the executor).

    Returns None when it cannot be read now; raises OutsideRootError for a file never to read.
    """
    _check_inside(path, root)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as file:
            data = file.read(UPLOAD_MAX_FILE_BYTES + 1)
    except OSError as err:
        _LOGGER.debug("Cannot read %s: %s", path, err)
        return None
    if len(data) != size:
        return None
    return data, sha256_hex(data)


class UploadFolderWatcher:
    """Watches upload folders (camera FTP drops) and sends settled images.

    Layout: ``<root>/<Camera Name>/.../*.jpg``; the top-level folder names the camera.
    A file-system event starts a scan shortly after the change; files still being written
    are scanned again until they settle. A slow periodic re-scan catches what no event
    reports (network shares do not report changes made by other machines).

    What was sent is remembered per path (size and mtime) only within the retention window
    (the spool's age bound): a file last modified before that window is never sent, whether
    it was sent long ago and forgotten or appears for the first time (e.g. old files in a
    folder added to the options). Files that are too big or lie outside their folder are
    skipped until they change. Uploads pause while the spool is nearly full, and a file the
    spool refused (e.g. a full disk) waits a growing delay before it is tried again.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        frames: FrameStream,
        cameras: Cameras,
        camera_ids: CameraIds,
        *,
        roots: list[str],
    ) -> None:
        """Remember the folders; `async_start` begins polling."""
        self.hass = hass
        self._entry = entry
        self._camera_ids = camera_ids
        self._frames = frames
        self._camera_states = cameras
        self.roots = list(roots)
        self._store: Store[_StoredUploads] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.uploads"
        )
        self._sent: dict[str, tuple[int, int]] = {}
        self._observed: dict[str, tuple[int, int]] = {}
        self._in_flight: set[str] = set()
        self._skipped: set[tuple[str, int, int]] = set()
        # Path -> (monotonic time of the next try, current delay) after the spool refused it.
        self._refused: dict[str, tuple[float, float]] = {}
        self._hashed_names: set[str] = set()
        self._paused = False
        self._pause_until = 0.0
        self._lock = asyncio.Lock()
        self.retention_s = frames.spool.max_age_s
        self.files_sent = 0
        # Camera ids of the top-level folders found by the last scan.
        self.cameras: set[str] = set()
        self._events = FolderEvents(self._changed_in_thread)
        self._follow_up: CALLBACK_TYPE | None = None
        self._scan_again = False
        self._running = False  # follow-up scans only while started

    @property
    def sent_paths(self) -> set[str]:
        """Return the files sent within the retention window (and not changed since)."""
        return set(self._sent)

    @property
    def skipped_paths(self) -> set[str]:
        """Return the files skipped until they change (too large, or outside their folder)."""
        return {path for path, _size, _mtime in self._skipped}

    @property
    def scanning(self) -> bool:
        """Return whether a scan of the folders is running."""
        return self._lock.locked()

    @property
    def follow_up_pending(self) -> bool:
        """Return whether a scan is due soon after a change."""
        return self._follow_up is not None

    async def async_start(self) -> None:
        """Load what was sent before and start polling."""
        if not self.roots:
            return
        stored = await self._store.async_load()
        if stored is not None:
            self._sent = {
                path: (int(value[0]), int(value[1]))
                for path, value in stored.get("sent", {}).items()
                if isinstance(value, list) and len(value) == 2
            }
        self._entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_rescan,
                UPLOAD_RESCAN_INTERVAL,
                name=f"{DOMAIN} upload folders",
                cancel_on_shutdown=True,
            )
        )
        self._running = True
        self._entry.async_on_unload(self._async_cancel_follow_up)
        self._entry.async_on_unload(self._async_stop_events)
        self._entry.async_on_unload(
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self._async_stop_events)
        )
        await self.hass.async_add_executor_job(self._events.watch, self.roots)
        self._async_schedule_poll()

    async def async_stop(self) -> None:
        """Write what was sent to storage now; the folders' issues go (a new start rescans)."""
        self.async_clear_issues()
        if self.roots:
            await self._store.async_save(self._data_to_store())

    async def _async_stop_events(self, _event: Event | None = None) -> None:
        await self.hass.async_add_executor_job(self._events.stop)

    def _changed_in_thread(self) -> None:
        """Called by the file-system watcher's thread."""
        with contextlib.suppress(RuntimeError):  # the loop closed while shutting down
            self.hass.loop.call_soon_threadsafe(self._async_follow_up, UPLOAD_CHANGE_DELAY)

    @callback
    def _async_follow_up(self, delay: float) -> None:
        """Scan once after `delay` seconds, unless a scan is already due."""
        if self._running and self._follow_up is None:
            self._follow_up = async_call_later(self.hass, delay, self._async_follow_up_due)

    @callback
    def _async_follow_up_due(self, _now: Any) -> None:
        self._follow_up = None
        self._async_schedule_poll()

    @callback
    def _async_cancel_follow_up(self) -> None:
        self._running = False
        if self._follow_up is not None:
            self._follow_up()
            self._follow_up = None

    @callback
    def _async_rescan(self, _now: Any = None) -> None:
        """The safety net: watch folders that could not be watched before, and scan."""
        self._entry.async_create_background_task(
            self.hass, self._async_watch_and_scan(), f"{DOMAIN} upload folder re-scan"
        )

    async def _async_watch_and_scan(self) -> None:
        await self.hass.async_add_executor_job(self._events.watch, self.roots)
        self._async_schedule_poll()

    @callback
    def _data_to_store(self) -> _StoredUploads:
        return {"sent": {path: list(value) for path, value in self._sent.items()}}

    @callback
    def _async_schedule_poll(self, _now: Any = None) -> None:
        if self._lock.locked():
            self._scan_again = True  # a change during a scan may have been missed by it
            return
        self._entry.async_create_background_task(
            self.hass, self.async_poll(), f"{DOMAIN} upload folder poll"
        )

    async def async_poll(self) -> None:
        """Scan the folders once and send the files that have settled."""
        async with self._lock:
            self._scan_again = False
            scan = await self.hass.async_add_executor_job(_scan_roots, self.roots)
            # Sorted, so folders that would share a camera id are told apart the same way on
            # every machine: the first name keeps the plain id.
            named = {name: self._camera_ids.for_folder(name) for name in sorted(scan.folders)}
            self.cameras = set(named.values())
            for name, camera_id in named.items():
                if camera_id not in self._hashed_names and is_hashed_camera_id(name):
                    self._hashed_names.add(camera_id)
                    _LOGGER.info(
                        "Upload folder %r has no letters or digits for a camera id; "
                        "its camera id is %s",
                        name,
                        camera_id,
                    )
                self._camera_states.async_register(camera_id, name)
            now = time.time()
            oldest_ns = int((now - self.retention_s) * 1e9)
            ready: list[tuple[str, _FoundFile]] = []
            observed: dict[str, tuple[int, int]] = {}
            settling = False
            for path, found in scan.files.items():
                if found.mtime_ns < oldest_ns:
                    continue  # outside the retention window: never sent (again)
                key = (found.size, found.mtime_ns)
                observed[path] = key
                if self._sent.get(path) == key or path in self._in_flight:
                    continue
                if (path, *key) in self._skipped:
                    continue
                if (
                    self._observed.get(path) == key
                    and found.size > 0
                    and now - found.mtime_ns / 1e9 >= UPLOAD_SETTLE_SECONDS
                ):
                    ready.append((path, found))
                elif found.size > 0 and (
                    self._observed.get(path) != key or abs(now - found.mtime_ns / 1e9) < 60
                ):
                    # New, changed or just written: look again soon. (A file dated far in the
                    # future by a camera's wrong clock waits for the periodic re-scan instead.)
                    settling = True
            self._observed = observed
            self._async_report_unreadable(scan.unreadable_roots)
            if not scan.failed_roots:
                self._prune(scan.files, oldest_ns)
            for path, found in ready:
                if not await self._async_send(path, found):
                    # No room in the spool: look again later rather than wait for a change.
                    self._async_follow_up(UPLOAD_RETRY_INITIAL)
                    break
            if settling or self._scan_again:
                self._async_follow_up(UPLOAD_CHANGE_DELAY)

    def _issue_id(self, root: str) -> str:
        digest = hashlib.sha256(root.encode()).hexdigest()[:12]
        return f"upload_folder_unreadable_{self._entry.entry_id}_{digest}"

    @callback
    def _async_report_unreadable(self, unreadable: dict[str, str]) -> None:
        """A repair issue per upload folder that cannot be opened (gone, unmounted, denied)."""
        for root in self.roots:
            issue_id = self._issue_id(root)
            if root not in unreadable:
                ir.async_delete_issue(self.hass, DOMAIN, issue_id)
                continue
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                is_persistent=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="upload_folder_unreadable",
                translation_placeholders={"folder": root, "error": unreadable[root]},
            )

    @callback
    def async_clear_issues(self) -> None:
        """The folders are no longer watched (unload): their issues go with them."""
        for root in self.roots:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(root))

    def _prune(self, files: dict[str, _FoundFile], oldest_ns: int) -> None:
        """Forget files that are gone or older than the retention window."""
        gone = [
            path
            for path, (_size, mtime_ns) in self._sent.items()
            if (found := files.get(path)) is None or min(mtime_ns, found.mtime_ns) < oldest_ns
        ]
        for path in gone:
            del self._sent[path]
        self._skipped = {
            item
            for item in self._skipped
            if (found := files.get(item[0])) is not None
            and (found.size, found.mtime_ns) == item[1:]
        }
        for path in [path for path in self._refused if path not in files]:
            del self._refused[path]
        if gone:
            self._store.async_delay_save(self._data_to_store, _SAVE_DELAY)

    def _skip_for_now(self, path: str, found: _FoundFile) -> bool:
        """Return whether a settled file is too big, or waits after the spool refused it."""
        limit = UPLOAD_MAX_VIDEO_BYTES if _is_video(path) else UPLOAD_MAX_FILE_BYTES
        if found.size > limit:
            self._skipped.add((path, found.size, found.mtime_ns))
            _LOGGER.warning(
                "Ignoring %s: %s bytes is more than the %s allowed",
                found.relative,
                found.size,
                limit,
            )
            return True
        refused = self._refused.get(path)
        return refused is not None and time.monotonic() < refused[0]

    def _may_spool(self, size: int) -> bool:
        """Return whether uploads may go into the spool now."""
        if time.monotonic() < self._pause_until:
            return False  # the spool refused a file lately: wait before reading more
        if not self._frames.has_room(size):
            if not self._paused:
                self._paused = True
                _LOGGER.info("The frame spool is nearly full; uploads wait until it has room")
            return False
        if self._paused:
            self._paused = False
            _LOGGER.info("The frame spool has room again; sending uploads")
        return True

    async def _async_send(self, path: str, found: _FoundFile) -> bool:
        """Spool one settled file; return False when no more should be sent this poll."""
        if self._skip_for_now(path, found):
            return True
        if _is_video(path):
            return await self._async_send_video(path, found)
        return await self._async_send_image(path, found)

    async def _async_send_image(self, path: str, found: _FoundFile) -> bool:
        """Spool one settled image; return False when no more should be sent this poll."""
        key = (found.size, found.mtime_ns)
        if not self._may_spool(found.size):
            return False
        try:
            read = await self.hass.async_add_executor_job(_read_file, path, found.root, found.size)
        except OutsideRootError:
            self._skipped.add((path, *key))
            _LOGGER.warning("Ignoring %s: it lies outside its upload folder", found.relative)
            return True
        if read is None:
            return True
        data, digest = read
        self._in_flight.add(path)
        try:
            spooled = await self._frames.async_submit(
                FrameIn(
                    camera_id=self._camera_ids.for_folder(found.folder),
                    image=data,
                    client_ref=new_client_ref(),
                    captured_at_ms=found.mtime_ns // 1_000_000,
                    source=FrameSource.UPLOAD,
                    source_ref=found.relative,
                    content_sha256=digest,
                )
            )
        finally:
            self._in_flight.discard(path)
        if not spooled:
            # Too large to send (logged and counted), or the spool refused it (logged once
            # per condition): try again after a growing delay, and nothing more this poll.
            self._async_refused(path)
            return False
        self._async_handled(path, found)
        return True

    @callback
    def _async_refused(self, path: str) -> None:
        """The spool refused a frame of the file: try it again after a growing delay."""
        refused = self._refused.get(path)
        delay = min(2 * refused[1], UPLOAD_RETRY_MAX) if refused else UPLOAD_RETRY_INITIAL
        self._refused[path] = (time.monotonic() + delay, delay)
        self._pause_until = time.monotonic() + delay

    @callback
    def _async_handled(self, path: str, found: _FoundFile) -> None:
        """Remember a file as done until it changes: its frames are spooled (or it has none)."""
        self._refused.pop(path, None)
        # The spool keeps its frames until an event covers them, across restarts too.
        self._sent[path] = (found.size, found.mtime_ns)
        self.files_sent += 1
        self._store.async_delay_save(self._data_to_store, _SAVE_DELAY)

    async def _async_send_video(self, path: str, found: _FoundFile) -> bool:
        """Spool the frames sampled from a settled video; False when no more should be sent.

        A video that cannot be decoded is logged and counts as handled (it has no frames), so
        it is neither retried every poll nor left half-done in the spool.
        """
        if not self._may_spool(0):
            return False
        try:
            sample = await self.hass.async_add_executor_job(_sample_upload, path, found.root)
        except OutsideRootError:
            self._skipped.add((path, found.size, found.mtime_ns))
            _LOGGER.warning("Ignoring %s: it lies outside its upload folder", found.relative)
            return True
        except VideoError as err:
            _LOGGER.warning("Ignoring video %s: it cannot be decoded (%s)", found.relative, err)
            self._async_handled(path, found)
            return True
        if not self._may_spool(sum(len(frame.jpeg) for frame in sample.frames)):
            return False  # sampled again once the spool has room
        _log_sample(found.relative, sample)
        # The file was written when the recording ended: its frames were taken before that.
        started_ms = found.mtime_ns // 1_000_000 - round((sample.duration_s or 0) * 1000)
        camera_id = self._camera_ids.for_folder(found.folder)
        # Frames spooled before the spool refused one, in an earlier try, are not added twice.
        waiting = self._frames.spool.hashes()
        self._in_flight.add(path)
        try:
            for frame in sample.frames:
                digest = sha256_hex(frame.jpeg)
                if digest in waiting:
                    continue
                spooled = await self._frames.async_submit(
                    FrameIn(
                        camera_id=camera_id,
                        image=frame.jpeg,
                        client_ref=new_client_ref(),
                        captured_at_ms=started_ms + round(frame.offset_s * 1000),
                        source=FrameSource.VIDEO,
                        source_ref=f"{found.relative}#t={frame.offset_s:.1f}",
                        content_sha256=digest,
                    )
                )
                if not spooled:
                    self._async_refused(path)
                    return False
        finally:
            self._in_flight.discard(path)
        self._async_handled(path, found)
        return True


def _log_sample(relative: str, sample: VideoSample) -> None:
    """Say when a video was sampled only in part."""
    frames = len(sample.frames)
    if sample.end is SampleEnd.DAMAGED:
        _LOGGER.warning(
            "Video %s is damaged or cut short (%s); sending the %s frames before that",
            relative,
            sample.detail,
            frames,
        )
    elif sample.end is not SampleEnd.END:
        _LOGGER.info(
            "Video %s is long (%s): sending %s frames from its first %.0f s",
            relative,
            sample.end.value.replace("_", " "),
            frames,
            sample.frames[-1].offset_s + 1,
        )
