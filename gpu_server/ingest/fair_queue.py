"""Waiting frames served in turn by stream and camera, so that one client's flood waits its own
turn instead of everyone else's.

Items wait in one queue per (stream, camera). Streams take turns, and within a stream its
cameras take turns; a camera's own items keep their arrival order. A camera with a thousand
frames waiting is served once per round like one with a single frame, so another camera's next
frame waits behind at most one frame of each other busy camera, whatever those frames cost.
A key that comes back after its queue emptied joins the end of the round.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from typing import Final, Generic, TypeVar

T = TypeVar("T")

# (stream, camera id): the stream is any hashable that stays the same for one client's stream.
FairKey = tuple[Hashable, str]
# For callers that name no stream or camera: they share one turn.
DEFAULT_KEY: Final[FairKey] = (None, "")


class FairQueue(Generic[T]):
    """Round-robin across streams, then across a stream's cameras; oldest first per camera."""

    def __init__(self) -> None:
        # The order of the dicts is the order of the turns: the first key is served next.
        self._streams: dict[Hashable, dict[str, deque[T]]] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def key_count(self) -> int:
        """How many (stream, camera) keys have items waiting."""
        return sum(len(cameras) for cameras in self._streams.values())

    def __iter__(self) -> Iterator[T]:
        """Every waiting item (not in service order)."""
        for cameras in self._streams.values():
            for items in cameras.values():
                yield from items

    def push(self, key: FairKey, item: T) -> None:
        stream, camera = key
        self._streams.setdefault(stream, {}).setdefault(camera, deque()).append(item)
        self._len += 1

    def peek(self) -> T:
        """The item whose turn it is; IndexError when empty."""
        if not self._streams:
            raise IndexError("peek from an empty FairQueue")
        cameras = next(iter(self._streams.values()))
        return next(iter(cameras.values()))[0]

    def pop(self) -> T:
        """Take the item whose turn it is and pass the turn on; IndexError when empty."""
        if not self._streams:
            raise IndexError("pop from an empty FairQueue")
        stream, cameras = next(iter(self._streams.items()))
        camera, items = next(iter(cameras.items()))
        item = items.popleft()
        self._len -= 1
        # Served: to the end of the round (or out of it when nothing more waits).
        del cameras[camera]
        if items:
            cameras[camera] = items
        del self._streams[stream]
        if cameras:
            self._streams[stream] = cameras
        return item

    def remove(self, key: FairKey, item: T) -> bool:
        """Take `item` out wherever it waits (its caller gave up); the turns stay as they are."""
        stream, camera = key
        cameras = self._streams.get(stream)
        items = cameras.get(camera) if cameras is not None else None
        if cameras is None or items is None:
            return False
        for index, waiting in enumerate(items):
            if waiting is item:
                del items[index]
                break
        else:
            return False
        self._len -= 1
        if not items:
            del cameras[camera]
            if not cameras:
                del self._streams[stream]
        return True

    def clear(self) -> None:
        self._streams.clear()
        self._len = 0
