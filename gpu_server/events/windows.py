"""Per-camera windows: every accepted frame joins its camera's one open window.

A window closes `window_s` after it opened, or `idle_s` after its last detection (after it
opened when it has none yet), or when forced (AnalyzeNow), or once it holds `max_detections`
detections: the next frame then opens a new window, so one busy camera never outgrows a prompt.
Timing uses the injected clock's monotonic time of arrival, not the frames' capture times, so
resent old frames join windows normally.
This module only keeps state; the caller turns closed windows into events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from gpu_server.core.clock import Clock
from gpu_server.core.detection import Detection
from gpu_server.enrich.pipeline import Crop


@dataclass(frozen=True, slots=True)
class WindowFrame:
    """One accepted frame as its window holds it."""

    sha256: str
    captured_at: datetime  # timezone-aware
    width: int
    height: int
    detections: tuple[Detection, ...] = ()
    # Person boxes and plate regions cut out for the window's enrichment (see enrich/).
    crops: tuple[Crop, ...] = field(default=(), compare=False, repr=False)
    # The frame with its detections drawn (JPEG), kept only for a model that can look.
    key_frame: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WindowSettings:
    window_s: float
    idle_s: float


@dataclass(slots=True)
class _OpenWindow:
    window_id: str
    camera_id: str
    opened_at: float
    last_detection_at: float | None
    frames: list[WindowFrame] = field(default_factory=list)
    detections: int = 0


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    window_id: str
    camera_id: str
    frames: tuple[WindowFrame, ...]
    reason: str  # "window", "idle", "forced", "full"


def new_window_id() -> str:
    return uuid.uuid4().hex


class CameraWindows:
    """Open windows by camera. Not thread-safe: use it from the event loop only."""

    def __init__(
        self, defaults: WindowSettings, clock: Clock, max_detections: int | None = None
    ) -> None:
        self._defaults = defaults
        self._clock = clock
        self._max_detections = max_detections
        self._overrides: dict[str, WindowSettings] = {}
        self._open: dict[str, _OpenWindow] = {}
        # Windows that filled up, waiting for the next `due()` to hand them out.
        self._full: list[ClosedWindow] = []

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

    def add(self, camera_id: str, frame: WindowFrame) -> str:
        """Put a frame in the camera's open window, opening one if needed; returns its id."""
        now = self._clock.monotonic()
        window = self._open.get(camera_id)
        if window is None:
            window = _OpenWindow(new_window_id(), camera_id, now, None)
            self._open[camera_id] = window
        window.frames.append(frame)
        if frame.detections:
            window.last_detection_at = now
            window.detections += len(frame.detections)
        limit = self._max_detections
        if limit is not None and window.detections >= limit:
            self._full.append(self._close(camera_id, "full"))
        return window.window_id

    def due(self) -> list[ClosedWindow]:
        """Close and return every window whose time or idle time has run out."""
        now = self._clock.monotonic()
        closed, self._full = self._full, []
        for camera_id, window in list(self._open.items()):
            settings = self.settings_for(camera_id)
            quiet_since = (
                window.last_detection_at if window.last_detection_at is not None
                else window.opened_at
            )
            if now - window.opened_at >= settings.window_s:
                closed.append(self._close(camera_id, "window"))
            elif now - quiet_since >= settings.idle_s:
                closed.append(self._close(camera_id, "idle"))
        return closed

    def close(self, camera_id: str) -> ClosedWindow | None:
        """Force a camera's open window closed (AnalyzeNow); None when it had none."""
        if camera_id not in self._open:
            return None
        return self._close(camera_id, "forced")

    def _close(self, camera_id: str, reason: str) -> ClosedWindow:
        window = self._open.pop(camera_id)
        return ClosedWindow(window.window_id, camera_id, tuple(window.frames), reason)

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def full_count(self) -> int:
        """Windows that filled up and have not been handed out by `due()` yet."""
        return len(self._full)
