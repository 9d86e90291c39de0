"""Content-addressed dedupe: a frame whose bytes were already analyzed is not analyzed again.

`ResultCache` is the storage (a bounded LRU in memory; its get/put interface is all a
persistent store would need to offer). `Deduplicator` adds the coordination: when the same
content arrives twice at once, the second caller waits for the first one's result.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ResultCache(Generic[V]):
    """A bounded least-recently-used map from content hash to analysis result."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._entries: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        if self.capacity == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


class Deduplicator(Generic[V]):
    """Runs `compute` at most once per key among concurrent and cached callers.

    Only successes are remembered: a failure is handed to the callers waiting at that moment
    and the next caller computes again.
    """

    def __init__(self, cache: ResultCache[V]) -> None:
        self.cache = cache
        self._in_flight: dict[str, asyncio.Future[V]] = {}

    async def resolve(self, key: str, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """Return (result, duplicate); duplicate is True when another call did the work."""
        while True:
            cached = self.cache.get(key)
            if cached is not None:
                return cached, True
            pending = self._in_flight.get(key)
            if pending is None:
                return await self._lead(key, compute), False
            try:
                return await asyncio.shield(pending), True
            except asyncio.CancelledError:
                # The leader was cancelled (its client went away): try again ourselves,
                # unless it is this task that is being cancelled.
                current = asyncio.current_task()
                if not pending.cancelled() or (current is not None and current.cancelling()):
                    raise

    async def _lead(self, key: str, compute: Callable[[], Awaitable[V]]) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: there may be nobody waiting
            raise
        else:
            self.cache.put(key, value)
            future.set_result(value)
            return value
        finally:
            self._in_flight.pop(key, None)

    async def known(self, key: str) -> V | None:
        """The result for this content: cached, or awaited from the call computing it now;
        None when neither (a failure of that call is raised here too)."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._in_flight.get(key)
        if pending is None:
            return None
        return await asyncio.shield(pending)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
