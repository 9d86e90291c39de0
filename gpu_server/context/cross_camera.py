"""Recent activity on other cameras, so one camera's analysis can say what happened nearby.

A person seen on the driveway camera 40 s before someone appears at the back door is a story;
either event alone may not be. The log is bounded in both time and size.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gpu_server.core.clock import require_aware


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    camera_id: str
    when: datetime
    labels: tuple[str, ...]
    zones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CrossCameraNote:
    """The latest activity of one other camera around an analysis window."""

    camera_id: str
    camera_name: str  # user text: data, not instructions
    labels: dict[str, int]  # label -> in how many logged windows it was seen
    zones: tuple[str, ...]
    # Seconds from the other camera's latest event to the start of the window; negative when
    # the event happened inside the window, after it started.
    seconds_before: float


class CrossCameraLog:
    """A time-windowed, size-bounded log of detections across cameras. Thread-safe."""

    def __init__(
        self,
        window: timedelta = timedelta(minutes=5),
        *,
        max_events: int = 2000,
        clock: Callable[[], datetime] = _utc_now,
        camera_names: Mapping[str, str] | None = None,
    ) -> None:
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        self._window = window
        self._clock = clock
        self._events: deque[ActivityEvent] = deque(maxlen=max(1, max_events))
        self._names: dict[str, str] = dict(camera_names or {})
        self._lock = threading.Lock()

    @property
    def window(self) -> timedelta:
        return self._window

    def set_camera_name(self, camera_id: str, name: str | None) -> None:
        with self._lock:
            if name:
                self._names[camera_id] = name
            else:
                self._names.pop(camera_id, None)

    def add(
        self,
        camera_id: str,
        when: datetime,
        labels: Iterable[str],
        zones: Iterable[str] = (),
    ) -> None:
        require_aware(when)
        label_tuple = tuple(labels)
        if not label_tuple:
            return  # nothing seen is not activity
        event = ActivityEvent(camera_id, when, label_tuple, tuple(dict.fromkeys(zones)))
        with self._lock:
            self._prune_locked()
            self._events.append(event)

    def _prune_locked(self) -> None:
        cutoff = self._clock() - self._window
        # Events arrive roughly in time order; drop from the old end, and filter stragglers.
        while self._events and self._events[0].when < cutoff:
            self._events.popleft()
        if any(event.when < cutoff for event in self._events):
            kept = [event for event in self._events if event.when >= cutoff]
            self._events.clear()
            self._events.extend(kept)

    def __len__(self) -> int:
        with self._lock:
            self._prune_locked()
            return len(self._events)

    def recent(
        self,
        exclude_camera: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[ActivityEvent]:
        """Unexpired events on other cameras between `start - window` and `end`, oldest first."""
        with self._lock:
            self._prune_locked()
            events = list(self._events)
        lower = start - self._window if start is not None else None
        selected = [
            event
            for event in events
            if event.camera_id != exclude_camera
            and (lower is None or event.when >= lower)
            and (end is None or event.when <= end)
        ]
        selected.sort(key=lambda event: event.when)
        return selected

    def summarize(
        self, camera_id: str, start: datetime, end: datetime | None = None, *, limit: int = 5
    ) -> list[CrossCameraNote]:
        """One note per other camera active shortly before or during the window, latest first."""
        require_aware(start)
        end = end if end is not None else start
        by_camera: dict[str, list[ActivityEvent]] = {}
        for event in self.recent(exclude_camera=camera_id, start=start, end=end):
            by_camera.setdefault(event.camera_id, []).append(event)
        with self._lock:
            names = dict(self._names)
        notes: list[CrossCameraNote] = []
        for other, events in by_camera.items():
            labels: Counter[str] = Counter()
            zones: dict[str, None] = {}
            for event in events:
                labels.update(dict.fromkeys(event.labels, 1))
                zones.update(dict.fromkeys(event.zones))
            latest = events[-1].when
            notes.append(
                CrossCameraNote(
                    camera_id=other,
                    camera_name=names.get(other, other),
                    labels=dict(labels.most_common()),
                    zones=tuple(zones),
                    seconds_before=(start - latest).total_seconds(),
                )
            )
        notes.sort(key=lambda note: note.seconds_before)
        return notes[:limit]
