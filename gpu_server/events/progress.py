"""Live analysis progress for WatchAnalysis: a broadcast hub with bounded queues.

Progress notes are a courtesy, not data: a subscriber that falls behind loses notes rather than
slowing the analysis. Events never travel here; they go through the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

QUEUE_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class ProgressNote:
    camera_id: str
    window_id: str
    text: str


class _Subscriber:
    def __init__(self, camera_id: str, size: int) -> None:
        self.camera_id = camera_id
        self.queue: asyncio.Queue[ProgressNote] = asyncio.Queue(maxsize=size)
        self.dropped = 0


class ProgressHub:
    """Use from the event loop; worker threads hand notes over with call_soon_threadsafe."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, note: ProgressNote) -> None:
        for sub in self._subscribers:
            if sub.camera_id and sub.camera_id != note.camera_id:
                continue
            try:
                sub.queue.put_nowait(note)
            except asyncio.QueueFull:
                sub.dropped += 1

    async def watch(self, camera_id: str = "") -> AsyncIterator[ProgressNote]:
        """Notes for one camera (all when empty) until the caller stops iterating."""
        sub = _Subscriber(camera_id, self._queue_size)
        self._subscribers.add(sub)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self._subscribers.discard(sub)
