"""Per-camera batch windows: every accepted frame joins its camera's one open batch.

A batch closes `window_s` after it opened, or `idle_s` after its last detection (after it
opened when it has none yet), or when forced (AnalyzeNow). Timing uses the injected clock's
monotonic time of arrival, not the frames' capture times, so resent old frames batch normally.
This module only keeps state; the caller turns closed batches into events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from gpu_server.events.clock import Clock
from gpu_server.ingest.detect import Detection


@dataclass(frozen=True, slots=True)
class BatchFrame:
    """One accepted frame as the events pipeline sees it."""

    sha256: str
    captured_at: datetime  # timezone-aware
    width: int
    height: int
    detections: tuple[Detection, ...] = ()


@dataclass(frozen=True, slots=True)
class WindowSettings:
    window_s: float
    idle_s: float


@dataclass(slots=True)
class _OpenBatch:
    batch_id: str
    camera_id: str
    opened_at: float
    last_detection_at: float | None
    frames: list[BatchFrame] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClosedBatch:
    batch_id: str
    camera_id: str
    frames: tuple[BatchFrame, ...]
    reason: str  # "window", "idle", "forced"

    @property
    def has_detections(self) -> bool:
        return any(frame.detections for frame in self.frames)


def new_batch_id() -> str:
    return uuid.uuid4().hex


class BatchWindows:
    """Open batches by camera. Not thread-safe: use it from the event loop only."""

    def __init__(self, defaults: WindowSettings, clock: Clock) -> None:
        self._defaults = defaults
        self._clock = clock
        self._overrides: dict[str, WindowSettings] = {}
        self._open: dict[str, _OpenBatch] = {}

    def settings_for(self, camera_id: str) -> WindowSettings:
        return self._overrides.get(camera_id, self._defaults)

    def configure(self, camera_id: str, window_s: float | None, idle_s: float | None) -> None:
        """Per-camera windows; None keeps the server default for that value."""
        if window_s is None and idle_s is None:
            self._overrides.pop(camera_id, None)
            return
        self._overrides[camera_id] = WindowSettings(
            window_s if window_s is not None else self._defaults.window_s,
            idle_s if idle_s is not None else self._defaults.idle_s,
        )

    def add(self, camera_id: str, frame: BatchFrame) -> str:
        """Put a frame in the camera's open batch, opening one if needed; returns its id."""
        now = self._clock.monotonic()
        batch = self._open.get(camera_id)
        if batch is None:
            batch = _OpenBatch(new_batch_id(), camera_id, now, None)
            self._open[camera_id] = batch
        batch.frames.append(frame)
        if frame.detections:
            batch.last_detection_at = now
        return batch.batch_id

    def due(self) -> list[ClosedBatch]:
        """Close and return every batch whose window or idle time has run out."""
        now = self._clock.monotonic()
        closed: list[ClosedBatch] = []
        for camera_id, batch in list(self._open.items()):
            settings = self.settings_for(camera_id)
            quiet_since = (
                batch.last_detection_at if batch.last_detection_at is not None
                else batch.opened_at
            )
            if now - batch.opened_at >= settings.window_s:
                closed.append(self._close(camera_id, "window"))
            elif now - quiet_since >= settings.idle_s:
                closed.append(self._close(camera_id, "idle"))
        return closed

    def close(self, camera_id: str) -> ClosedBatch | None:
        """Force a camera's open batch closed (AnalyzeNow); None when it had none."""
        if camera_id not in self._open:
            return None
        return self._close(camera_id, "forced")

    def _close(self, camera_id: str, reason: str) -> ClosedBatch:
        batch = self._open.pop(camera_id)
        return ClosedBatch(batch.batch_id, camera_id, tuple(batch.frames), reason)

    def open_batch_id(self, camera_id: str) -> str | None:
        batch = self._open.get(camera_id)
        return batch.batch_id if batch is not None else None

    @property
    def open_count(self) -> int:
        return len(self._open)
