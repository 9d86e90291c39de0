"""One memory budget for the pixels being decoded and detected, across every stream.

Decoded images are what a burst of large frames costs: a client that sends 32 large frames
at once must not take the server past the machine's memory. Each frame reserves what its decode
needs before decoding and gives it back once detection is done; frames wait for room in turn
by stream and camera (`fair_queue.py`; oldest first within a camera), so a flood from one
stream cannot keep another camera's frame out, and after `wait_s` they get BACKPRESSURE (the
client keeps and resends them).

glibc keeps freed heap memory for reuse, so a burst would leave the process large for good:
the heap is trimmed once the budget has stayed idle for a few seconds, in a worker thread (a
trim walks the whole heap). Trimming at every idle moment between frames made the detector
fault its working memory in again for the next frame. The allocator's mmap threshold is left
alone:
pinned low, every large tensor the detector allocates per layer became an mmap, page faults and
an munmap, which halved the detector's speed on the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Final

from gpu_server.errors import BackpressureError, FrameRejectedError, RejectReason
from gpu_server.ingest.fair_queue import DEFAULT_KEY, FairKey, FairQueue

_LOGGER = logging.getLogger(__name__)

GIB: Final = 1024**3
# The default budget: an eighth of the machine's memory, at most this.
DEFAULT_BUDGET_MAX: Final = 2 * GIB
# How long the budget must stay idle before the heap is trimmed.
_QUIET_BEFORE_TRIM_S: Final = 3.0


def default_budget_bytes() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return DEFAULT_BUDGET_MAX
    return max(256 * 1024 * 1024, min(DEFAULT_BUDGET_MAX, total // 8))


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only: probe for it
    except (OSError, AttributeError):
        return None
    return libc


class DecodeBudget:
    """Bytes of decoding and detection in flight; reserve() waits for room in turn by stream
    and camera."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self._wait_s = wait_s
        self.used = 0
        self.peak = 0
        self.refused = 0
        self._waiters: FairQueue[tuple[int, asyncio.Future[None]]] = FairQueue()
        self._libc = _libc()
        self._last_taken = 0.0
        self._trim_timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def reserve(self, nbytes: int, key: FairKey = DEFAULT_KEY) -> AsyncIterator[None]:
        """Hold `nbytes` of the budget for the duration of the block; `key` (stream, camera)
        says whose turn it waits for."""
        if nbytes > self.capacity:
            raise FrameRejectedError(
                RejectReason.DECOMPRESSION_BOMB,
                f"decoding this frame needs {nbytes} bytes of memory; the budget is "
                f"{self.capacity}",
            )
        await self._acquire(nbytes, key)
        try:
            yield
        finally:
            self._release(nbytes)

    async def _acquire(self, nbytes: int, key: FairKey) -> None:
        if not self._waiters and self.used + nbytes <= self.capacity:
            self._take(nbytes)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.push(key, entry)
        try:
            await asyncio.wait_for(future, self._wait_s)
        except TimeoutError:
            self.refused += 1
            raise BackpressureError(
                f"the server is decoding {self.used} bytes of frames (budget {self.capacity}); "
                "resend the frame later"
            ) from None
        except BaseException:
            if future.done() and not future.cancelled():
                self._release(nbytes)  # granted just as the wait was cancelled
            raise
        finally:
            self._waiters.remove(key, entry)
            self._grant()

    def _take(self, nbytes: int) -> None:
        self._last_taken = time.monotonic()
        self.used += nbytes
        self.peak = max(self.peak, self.used)

    def _release(self, nbytes: int) -> None:
        self.used -= nbytes
        self._grant()
        if self.used == 0 and not self._waiters:
            self.trim()

    def _grant(self) -> None:
        """Let waiters in, in turn, while they fit: the one whose turn it is waits for room
        rather than be passed by smaller frames, so no frame waits forever."""
        while self._waiters:
            nbytes, future = self._waiters.peek()
            if future.done():
                self._waiters.pop()
                continue
            if self.used + nbytes > self.capacity:
                return
            self._waiters.pop()
            self._take(nbytes)
            future.set_result(None)

    def trim(self) -> None:
        """Give freed heap memory back to the system once the budget stays idle for a while
        (call from the event loop)."""
        if self._libc is None or self._trim_timer is not None:
            return
        self._trim_timer = asyncio.get_running_loop().call_later(
            _QUIET_BEFORE_TRIM_S, self._trim_when_quiet
        )

    def _trim_when_quiet(self) -> None:
        self._trim_timer = None
        if self.used or self._waiters or self._libc is None:
            return  # busy again: its next idle moment asks again
        quiet_for = time.monotonic() - self._last_taken
        if quiet_for < _QUIET_BEFORE_TRIM_S:
            self._trim_timer = asyncio.get_running_loop().call_later(
                _QUIET_BEFORE_TRIM_S - quiet_for, self._trim_when_quiet
            )
            return
        asyncio.get_running_loop().run_in_executor(None, self._libc.malloc_trim, 0)

    def close(self) -> None:
        """Drop a pending trim (the server is stopping)."""
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
