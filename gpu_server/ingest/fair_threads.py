"""Blocking calls on a pool of threads, started in turn by stream and camera.

A thread pool starts its work first come, first served: a flood of frames that are slow to
decode would hold another camera's frame behind every one of them. Here each call queues its
work under its (stream, camera) key (`fair_queue.py`) and hands the pool a runner; whichever
runner a thread starts takes the work whose turn it is. The pool's own order only decides when
a thread is free, not whose work it runs. There is one runner per piece of work, so each
piece is run by some runner; a runner that never starts (the pool shut down) fails one
waiting piece instead, so nobody waits forever.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Generic, TypeVar

from gpu_server.errors import ShuttingDownError, SidecarError
from gpu_server.ingest.fair_queue import FairKey, FairQueue
from gpu_server.monitor.latency import Timed

T = TypeVar("T")


def _ran() -> Any:
    raise RuntimeError("this work already ran")


class _Work(Generic[T]):
    __slots__ = ("call", "future", "work_ms")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.future: Future[T] = Future()
        self.work_ms = 0.0

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return  # its caller gave up
        begun = time.perf_counter()
        # A failed call's error travels on to the caller, who may keep it in a reference cycle
        # until a garbage collection: neither this frame (in its traceback) nor the call's own
        # frames may keep the call's arguments (a frame's bytes) alive.
        call, self.call = self.call, _ran
        try:
            value = call()
        except BaseException as exc:
            self.work_ms = (time.perf_counter() - begun) * 1000.0
            del call
            # The traceback's frames lead back (f_back) to this one, which holds `self`, whose
            # future will hold the error: a reference cycle that would keep every frame the
            # error then passes through on its way to the caller (a frame's bytes among their
            # locals) until a garbage collection. The error travels without its thread-side
            # traceback; a bug's keeps it as text.
            if not isinstance(exc, SidecarError):
                exc.add_note("".join(traceback.format_tb(exc.__traceback__)))
            self.future.set_exception(exc.with_traceback(None))
        else:
            del call
            self.work_ms = (time.perf_counter() - begun) * 1000.0
            self.future.set_result(value)


class FairThreads:
    def __init__(self, executor: Executor | None) -> None:
        """`executor`: the pool (None: the event loop's default executor)."""
        self._executor = executor
        self._lock = threading.Lock()  # runners take work on the pool's threads
        self._waiting: FairQueue[_Work[Any]] = FairQueue()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def run(self, key: FairKey, call: Callable[[], T]) -> Timed[T]:
        """Run `call` on the pool when its key's turn comes; its time waiting (for its turn, a
        thread and the event loop) and working, as run_timed reports them."""
        work = _Work(call)
        del call  # only `work` holds it, and lets go once it ran
        submitted = time.perf_counter()
        with self._lock:
            self._waiting.push(key, work)
        loop = asyncio.get_running_loop()
        try:
            runner = loop.run_in_executor(self._executor, self._run_next)
        except RuntimeError as exc:  # the pool is shut down
            self._runner_lost(key, work, exc)
            raise
        runner.add_done_callback(functools.partial(self._runner_done, key=key, work=work))
        try:
            value = await asyncio.wrap_future(work.future)
        except asyncio.CancelledError:
            with self._lock:
                self._waiting.remove(key, work)  # its runner finds other work, or none
            raise
        finally:
            work_ms = work.work_ms
            # A failed call's error holds this frame in its traceback, and `work` holds the
            # error in its future: a reference cycle that would keep the call's arguments
            # (a frame's bytes) until the next garbage collection.
            del work
        wait_ms = max(0.0, (time.perf_counter() - submitted) * 1000.0 - work_ms)
        return Timed(value, wait_ms, work_ms)

    def _run_next(self) -> None:
        """On a pool thread: run the work whose turn it is (none when its caller gave up)."""
        with self._lock:
            if not self._waiting:
                return
            work = self._waiting.pop()
        work.run()

    def _runner_done(
        self, runner: asyncio.Future[None], *, key: FairKey, work: _Work[Any]
    ) -> None:
        if runner.cancelled():
            self._runner_lost(key, work, ShuttingDownError("server is shutting down"))
        elif (error := runner.exception()) is not None:
            self._runner_lost(key, work, error)

    def _runner_lost(self, key: FairKey, work: _Work[Any], error: BaseException) -> None:
        """A runner that never ran leaves one piece of work without one: fail the caller's own
        piece if it still waits, else the next in turn."""
        with self._lock:
            if not self._waiting.remove(key, work):
                if not self._waiting:
                    return
                work = self._waiting.pop()
        if work.future.set_running_or_notify_cancel():
            work.future.set_exception(error)
