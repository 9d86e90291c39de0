"""A durable, bounded spool of frames on disk: the first step of delivery (docs/delivery.md).

Layout: one folder per config entry holding ``<key>.img`` (the encoded image) and
``<key>.json`` (what the frame is). Both are written atomically (`files.write_atomic`), the
image before its metadata, so a crash leaves either a whole frame or an orphan that the next
load removes. Every file operation runs in the executor, one at a time.

The spool is bounded in bytes and in age. When a new frame does not fit, the oldest frames of
the least value go first: acked frames without detections, then frames not acked yet, then
acked frames with detections. Every eviction is logged and counted, and a repair issue says
that the spool is full; a frame refused because the disk is full raises a repair issue too.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_send

from ..client import FrameIn, FrameSource
from ..const import DOMAIN, signal_spool_updated
from ..files import TMP_SUFFIX, write_atomic

_LOGGER = logging.getLogger(__name__)

SPOOL_FOLDER: Final = "home_security_ai_spool"
_IMAGE: Final = ".img"
_META: Final = ".json"
# The repair issue about a full spool goes away once usage falls below this share.
_FULL_CLEAR_RATIO: Final = 0.75


def spool_directory(hass: HomeAssistant, entry_id: str) -> Path:
    """Return the spool folder of a config entry."""
    return Path(hass.config.path(".storage", SPOOL_FOLDER, entry_id))


@dataclass(kw_only=True, slots=True)
class SpooledFrame:
    """What the spool knows about one frame; the image itself stays on disk."""

    key: str
    camera_id: str
    sha256: str
    captured_at_ms: int
    source: int
    source_ref: str
    size: int
    stored_at: float
    # Not persisted: after a restart every frame is sent (and acked) again.
    acked: bool = False
    detections: int = 0

    @property
    def value(self) -> int:
        """Eviction rank: lower goes first."""
        if not self.acked:
            return 1
        return 2 if self.detections else 0

    def to_frame(self, image: bytes) -> FrameIn:
        """Return the frame to send, with the spool key as its client reference."""
        try:
            source = FrameSource(self.source)
        except ValueError:
            source = FrameSource.UNSPECIFIED
        return FrameIn(
            camera_id=self.camera_id,
            image=image,
            client_ref=self.key,
            captured_at_ms=self.captured_at_ms,
            source=source,
            source_ref=self.source_ref,
            content_sha256=self.sha256,
        )

    def metadata(self) -> dict[str, Any]:
        """Return what is persisted next to the image."""
        data = asdict(self)
        del data["acked"], data["detections"]
        return data


@dataclass(kw_only=True)
class SpoolStats:
    """Counters of the spool since the entry was set up."""

    written: int = 0
    released: int = 0
    removed: int = 0
    evicted: int = 0
    expired: int = 0
    refused: int = 0
    loaded: int = 0


def _write_frame(folder: Path, frame: SpooledFrame, image: bytes) -> None:
    """Write the image, then its metadata (runs in the executor)."""
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / f"{frame.key}{_IMAGE}"
    try:
        write_atomic(image_path, image)
        write_atomic(folder / f"{frame.key}{_META}", json.dumps(frame.metadata()).encode("utf-8"))
    except BaseException:
        image_path.unlink(missing_ok=True)
        raise


def _delete_frames(folder: Path, keys: Iterable[str]) -> None:
    """Remove frames, metadata first (runs in the executor)."""
    for key in keys:
        for suffix in (_META, _IMAGE):
            try:
                (folder / f"{key}{suffix}").unlink(missing_ok=True)
            except OSError as err:
                _LOGGER.warning("Cannot remove %s%s from the frame spool: %s", key, suffix, err)


def remove_spool(folder: Path) -> None:
    """Delete a spool folder and everything in it (runs in the executor)."""
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        folder.rmdir()


def _read_image(folder: Path, key: str) -> bytes | None:
    try:
        return (folder / f"{key}{_IMAGE}").read_bytes()
    except OSError as err:
        _LOGGER.warning("Cannot read spooled frame %s: %s", key, err)
        return None


def _parse(meta: dict[str, Any]) -> SpooledFrame:
    return SpooledFrame(
        key=str(meta["key"]),
        camera_id=str(meta["camera_id"]),
        sha256=str(meta["sha256"]),
        captured_at_ms=int(meta["captured_at_ms"]),
        source=int(meta["source"]),
        source_ref=str(meta["source_ref"]),
        size=int(meta["size"]),
        stored_at=float(meta["stored_at"]),
    )


def _load_folder(folder: Path) -> list[SpooledFrame]:
    """Read every whole frame; remove orphans and leftovers (runs in the executor)."""
    if not folder.is_dir():
        return []
    frames: list[SpooledFrame] = []
    images: set[str] = set()
    metas: list[Path] = []
    for path in folder.iterdir():
        name = path.name
        if name.endswith(TMP_SUFFIX):
            path.unlink(missing_ok=True)
        elif name.endswith(_IMAGE):
            images.add(name.removesuffix(_IMAGE))
        elif name.endswith(_META):
            metas.append(path)
    with_meta: set[str] = set()
    for path in metas:
        key = path.name.removesuffix(_META)
        try:
            frame = _parse(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("Dropping unreadable spooled frame %s: %s", key, err)
            _delete_frames(folder, [key])
            continue
        if key not in images or frame.key != key:
            path.unlink(missing_ok=True)
            continue
        with_meta.add(key)
        frames.append(frame)
    for key in images - with_meta:
        (folder / f"{key}{_IMAGE}").unlink(missing_ok=True)
    frames.sort(key=lambda frame: frame.stored_at)
    return frames


class FrameSpool:
    """Frames on disk until an event covers them."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        folder: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        on_evict: Callable[[SpooledFrame], None] | None = None,
    ) -> None:
        """Set up an empty spool; `async_load` reads what is on disk."""
        self.hass = hass
        self._entry_id = entry_id
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.on_evict = on_evict
        self._frames: OrderedDict[str, SpooledFrame] = OrderedDict()
        self._bytes = 0
        self._io_lock = asyncio.Lock()
        self.stats = SpoolStats()
        self.evictions_by_camera: Counter[str] = Counter()
        self.last_error: str | None = None
        self._refuse_condition: tuple[bool, str] | None = None

    # ---- State -------------------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        """Return how many frames are spooled."""
        return len(self._frames)

    @property
    def used_bytes(self) -> int:
        """Return the bytes the spooled images take."""
        return self._bytes

    @property
    def usage_percent(self) -> float:
        """Return how full the spool is."""
        return round(100 * self._bytes / self.max_bytes, 1) if self.max_bytes else 0.0

    @property
    def unacked_count(self) -> int:
        """Return how many spooled frames the sidecar has not acked (in this session)."""
        return sum(1 for frame in self._frames.values() if not frame.acked)

    def get(self, key: str) -> SpooledFrame | None:
        """Return a spooled frame by key."""
        return self._frames.get(key)

    def frames(self) -> list[SpooledFrame]:
        """Return every spooled frame, oldest first."""
        return list(self._frames.values())

    def keys(self) -> list[str]:
        """Return every spooled key, oldest first."""
        return list(self._frames)

    def hashes(self) -> set[str]:
        """Return the content hashes of every spooled frame."""
        return {frame.sha256 for frame in self._frames.values()}

    def as_dict(self) -> dict[str, Any]:
        """Return the spool's state for diagnostics."""
        return {
            "frames": self.frame_count,
            "unacked": self.unacked_count,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "usage_percent": self.usage_percent,
            "max_age_s": self.max_age_s,
            "last_error": self.last_error,
            **asdict(self.stats),
            "evictions_by_camera": dict(self.evictions_by_camera),
        }

    # ---- Loading and writing -----------------------------------------------------------------

    async def async_load(self) -> None:
        """Read what a previous run left behind, then apply the age bound."""
        async with self._io_lock:
            frames = await self.hass.async_add_executor_job(_load_folder, self.folder)
        for frame in frames:
            self._frames[frame.key] = frame
            self._bytes += frame.size
        self.stats.loaded = len(frames)
        if frames:
            _LOGGER.info("Reloaded %s spooled frames to send again", len(frames))
        await self.async_expire()
        if victims := self._async_evict_for(0):
            async with self._io_lock:
                await self.hass.async_add_executor_job(_delete_frames, self.folder, victims)
        self._async_changed()

    async def async_add(self, frame: FrameIn) -> SpooledFrame | None:
        """Write a frame to the spool; return its entry, or None when it was refused."""
        size = len(frame.image)
        if size > self.max_bytes:
            self._async_refuse(frame, "the frame is larger than the whole spool may hold")
            return None
        entry = SpooledFrame(
            key=uuid.uuid4().hex,
            camera_id=frame.camera_id,
            sha256=frame.content_sha256,
            captured_at_ms=frame.captured_at_ms,
            source=int(frame.source),
            source_ref=frame.source_ref,
            size=size,
            stored_at=time.time(),
        )
        # Room is made and the frame counted before anything awaits, so that concurrent adds
        # respect the bound.
        victims = self._async_evict_for(size)
        self._frames[entry.key] = entry
        self._bytes += size
        try:
            async with self._io_lock:
                if victims:
                    await self.hass.async_add_executor_job(_delete_frames, self.folder, victims)
                await self.hass.async_add_executor_job(
                    _write_frame, self.folder, entry, frame.image
                )
        except OSError as err:
            self._forget(entry.key)
            # Without the temporary file's name, so that the same condition reads the same.
            reason = f"[Errno {err.errno}] {err.strerror}" if err.strerror else str(err)
            self._async_refuse(frame, reason, disk_full=err.errno == errno.ENOSPC)
            self._async_changed()
            return None
        self.stats.written += 1
        self._refuse_condition = None
        if self.last_error is not None:
            self.last_error = None
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id("spool_disk_full"))
        self._async_changed()
        return entry

    async def async_read(self, key: str) -> FrameIn | None:
        """Return a spooled frame with its image, or None when it is gone."""
        if (entry := self._frames.get(key)) is None:
            return None
        async with self._io_lock:
            if key not in self._frames:
                return None
            image = await self.hass.async_add_executor_job(_read_image, self.folder, key)
        if image is None:
            await self.async_remove([key])
            return None
        return entry.to_frame(image)

    async def async_read_hash(self, sha256: str) -> bytes | None:
        """Return the image of a spooled frame with this content, or None."""
        for key, frame in list(self._frames.items()):
            if frame.sha256 == sha256 and (found := await self.async_read(key)) is not None:
                return found.image
        return None

    @callback
    def async_mark_acked(self, key: str, detections: int) -> None:
        """Note that the sidecar took the frame and how much it found."""
        if (entry := self._frames.get(key)) is not None:
            entry.acked = True
            entry.detections = detections

    # ---- Removing ----------------------------------------------------------------------------

    async def async_release(self, hashes: Iterable[str]) -> int:
        """Remove every frame an event covers; return how many went."""
        wanted = set(hashes)
        keys = [key for key, frame in self._frames.items() if frame.sha256 in wanted]
        return await self.async_release_keys(keys)

    async def async_release_keys(self, keys: Iterable[str]) -> int:
        """Remove frames a stored event covers, by key; return how many went."""
        keys = [key for key in keys if key in self._frames]
        await self._async_delete(keys)
        self.stats.released += len(keys)
        return len(keys)

    async def async_remove(self, keys: Iterable[str]) -> None:
        """Remove frames no event will cover (rejected by the sidecar)."""
        keys = [key for key in keys if key in self._frames]
        await self._async_delete(keys)
        self.stats.removed += len(keys)

    async def async_expire(self) -> None:
        """Remove frames older than the age bound, each one logged and counted."""
        cutoff = time.time() - self.max_age_s
        expired = [frame for frame in self._frames.values() if frame.stored_at < cutoff]
        for frame in expired:
            _LOGGER.warning(
                "Frame %s of camera %s waited longer than %s s for its event; removed it "
                "from the spool",
                frame.source_ref or frame.key,
                frame.camera_id,
                int(self.max_age_s),
            )
            self._count_eviction(frame)
        self.stats.expired += len(expired)
        await self._async_delete([frame.key for frame in expired])

    @callback
    def _async_evict_for(self, size: int) -> list[str]:
        """Forget the frames that must go for `size` more bytes; return their keys."""
        victims: list[SpooledFrame] = []
        if self._bytes + size > self.max_bytes:
            # Oldest first within each rank, lowest rank first.
            ranked = sorted(self._frames.values(), key=lambda frame: frame.value)
            freed = 0
            for frame in ranked:
                if self._bytes - freed + size <= self.max_bytes:
                    break
                victims.append(frame)
                freed += frame.size
        if not victims:
            return []
        for frame in victims:
            _LOGGER.warning(
                "The frame spool is full (%s bytes); evicted %s frame %s of camera %s",
                self.max_bytes,
                ("acked" if frame.acked else "unacked")
                + (" with detections" if frame.detections else ""),
                frame.source_ref or frame.key,
                frame.camera_id,
            )
            self._count_eviction(frame)
        self.stats.evicted += len(victims)
        keys = [frame.key for frame in victims]
        for key in keys:
            self._forget(key)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id("spool_full"),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="spool_full",
            translation_placeholders={
                "max_mb": str(round(self.max_bytes / 1_048_576)),
                "evicted": str(self.stats.evicted + self.stats.expired),
            },
        )
        return keys

    async def _async_delete(self, keys: list[str]) -> None:
        if not keys:
            return
        for key in keys:
            self._forget(key)
        if self.usage_percent < 100 * _FULL_CLEAR_RATIO:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id("spool_full"))
        self._async_changed()
        async with self._io_lock:
            await self.hass.async_add_executor_job(_delete_frames, self.folder, keys)

    def _forget(self, key: str) -> None:
        if (frame := self._frames.pop(key, None)) is not None:
            self._bytes -= frame.size

    def _count_eviction(self, frame: SpooledFrame) -> None:
        self.evictions_by_camera[frame.camera_id] += 1
        if self.on_evict is not None:
            self.on_evict(frame)

    @callback
    def _async_refuse(self, frame: FrameIn, reason: str, *, disk_full: bool = False) -> None:
        self.stats.refused += 1
        # Logged once per condition: again only after a write worked or the condition changed.
        condition = (disk_full, reason)
        level = logging.DEBUG if condition == self._refuse_condition else logging.ERROR
        self._refuse_condition = condition
        self.last_error = reason
        _LOGGER.log(
            level,
            "Cannot spool frame %s of camera %s; it is not sent: %s",
            frame.source_ref or frame.client_ref,
            frame.camera_id,
            reason,
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id("spool_disk_full"),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="spool_disk_full" if disk_full else "spool_write_failed",
            translation_placeholders={"folder": str(self.folder), "error": reason},
        )

    def _issue_id(self, kind: str) -> str:
        return f"{kind}_{self._entry_id}"

    @callback
    def _async_changed(self) -> None:
        async_dispatcher_send(self.hass, signal_spool_updated(self._entry_id))
