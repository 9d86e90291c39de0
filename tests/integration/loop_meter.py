"""What work costs Home Assistant's event loop, for the tests and `bench/ha_loop_time.py`.

`LoopMeter` measures the event-loop thread two ways: its CPU time (`time.thread_time()` read on
the loop at the start and the end), and the time spent inside each callback the loop runs
(`asyncio.Handle._run` wrapped), grouped by what the callback is: a task's step is named after
the task's coroutine, any other callback after its function. It also notes every file-system
call made on the loop thread (through Python's audit hooks), which the loop must never make.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Audit events of calls that touch the file system (and so may block on the disk).
FILE_EVENTS = frozenset(
    {
        "open",
        "os.chmod",
        "os.listdir",
        "os.mkdir",
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.scandir",
        "os.truncate",
        "os.utime",
        "shutil.copyfile",
        "shutil.rmtree",
    }
)
# Opening these reads the kernel's memory, not a disk.
_HARMLESS_PREFIXES = ("/proc/", "/sys/", "/dev/")

_meters: list[LoopMeter] = []
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in FILE_EVENTS or not _meters:
        return
    ident = threading.get_ident()
    for meter in _meters:
        if ident == meter.thread_id:
            meter.note_file_call(event, args)


def _install_audit_hook() -> None:
    """Audit hooks cannot be removed: one is added per process and checks the running meters."""
    global _hook_installed  # noqa: PLW0603 - one hook per process
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True


def callback_name(handle: asyncio.Handle) -> str:
    """Name what a loop callback runs: the coroutine of a task's step, else the function."""
    callback: Any = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        return f"task {code.co_qualname if code is not None else type(coro).__qualname__}"
    while hasattr(callback, "func"):  # functools.partial
        callback = callback.func
    return str(getattr(callback, "__qualname__", type(callback).__qualname__))


@dataclass
class CallbackStats:
    """Calls of one kind of callback and the loop time they took."""

    calls: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    max_cpu_s: float = 0.0
    max_wall_s: float = 0.0


@dataclass
class GcStats:
    """The garbage collector's runs of one generation on the loop thread."""

    collections: int = 0
    cpu_s: float = 0.0
    max_cpu_s: float = 0.0


@dataclass
class LoopSample:
    """What one measured stretch cost the loop."""

    seconds: float = 0.0
    thread_cpu_s: float = 0.0
    callbacks: dict[str, CallbackStats] = field(default_factory=dict)
    file_calls: list[tuple[str, str]] = field(default_factory=list)
    # By generation; the collector runs inside whatever callback allocated, so this time is
    # part of the callbacks' time too.
    gc: dict[int, GcStats] = field(default_factory=dict)

    @property
    def gc_cpu_s(self) -> float:
        """Return the CPU time the garbage collector took on the loop thread."""
        return sum(stats.cpu_s for stats in self.gc.values())

    @property
    def callback_cpu_s(self) -> float:
        """Return the CPU time spent inside callbacks."""
        return sum(stats.cpu_s for stats in self.callbacks.values())

    @property
    def callback_calls(self) -> int:
        """Return how many callbacks ran."""
        return sum(stats.calls for stats in self.callbacks.values())

    @property
    def max_callback(self) -> tuple[str, CallbackStats]:
        """Return the kind of callback with the longest single call (CPU time)."""
        return max(self.callbacks.items(), key=lambda item: item[1].max_cpu_s)


def _measuring(
    original: Callable[[asyncio.Handle], None], sample: LoopSample, thread_id: int
) -> Callable[[asyncio.Handle], None]:
    """Wrap `Handle._run` so that every callback on the loop thread is timed and named."""
    thread_time = time.thread_time
    perf_counter = time.perf_counter

    def _measured_run(handle: asyncio.Handle) -> None:
        if threading.get_ident() != thread_id:
            original(handle)
            return
        name = callback_name(handle)
        cpu, wall = thread_time(), perf_counter()
        try:
            original(handle)
        finally:
            cpu, wall = thread_time() - cpu, perf_counter() - wall
            stats = sample.callbacks.get(name)
            if stats is None:
                stats = sample.callbacks[name] = CallbackStats()
            stats.calls += 1
            stats.cpu_s += cpu
            stats.wall_s += wall
            stats.max_cpu_s = max(stats.max_cpu_s, cpu)
            stats.max_wall_s = max(stats.max_wall_s, wall)

    return _measured_run


def _gc_timing(sample: LoopSample, thread_id: int) -> Callable[[str, dict[str, Any]], None]:
    """Return a `gc.callbacks` hook that times the collections made on the loop thread."""
    started = 0.0

    def _hook(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if threading.get_ident() != thread_id:
            return
        if phase == "start":
            started = time.thread_time()
            return
        cpu = time.thread_time() - started
        stats = sample.gc.setdefault(int(info["generation"]), GcStats())
        stats.collections += 1
        stats.cpu_s += cpu
        stats.max_cpu_s = max(stats.max_cpu_s, cpu)

    return _hook


def overhead_per_callback(rounds: int = 20_000) -> float:
    """Return the loop thread's CPU seconds the wrapping itself adds to one callback."""
    loop = asyncio.new_event_loop()
    try:
        handle = asyncio.Handle(int, (), loop)
        original = asyncio.Handle._run
        wrapped = _measuring(original, LoopSample(), threading.get_ident())
        costs = []
        for run in (original, wrapped):
            start = time.thread_time()
            for _ in range(rounds):
                run(handle)
            costs.append(time.thread_time() - start)
    finally:
        loop.close()
    return max(0.0, (costs[1] - costs[0]) / rounds)


class LoopMeter:
    """Measures the running event loop between `start()` and `stop()` (call both on it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Measure `loop`; its thread is the one that creates the meter."""
        self.loop = loop
        self.thread_id = threading.get_ident()
        self._sample: LoopSample | None = None
        self._started_cpu = 0.0
        self._started_at = 0.0
        self._original_run: Callable[[asyncio.Handle], None] | None = None
        self._gc_hook: Callable[[str, dict[str, Any]], None] | None = None

    @property
    def running(self) -> bool:
        """Return whether a stretch is being measured."""
        return self._sample is not None

    def note_file_call(self, event: str, args: tuple[Any, ...]) -> None:
        """Note a file-system call made on the loop thread."""
        if self._sample is None:
            return
        what = str(args[0]) if args else ""
        # Source files are read by asyncio's debug mode for tracebacks, not by the integration.
        if not what.startswith(_HARMLESS_PREFIXES) and not what.endswith(".py"):
            self._sample.file_calls.append((event, what))

    def start(self) -> None:
        """Start measuring (on the loop thread)."""
        assert self._sample is None, "already measuring"
        assert threading.get_ident() == self.thread_id, "start() runs on the loop thread"
        _install_audit_hook()
        sample = self._sample = LoopSample()
        original = self._original_run = asyncio.Handle._run
        wrapped = _measuring(original, sample, self.thread_id)
        asyncio.Handle._run = wrapped  # type: ignore[method-assign]
        _meters.append(self)
        self._gc_hook = _gc_timing(sample, self.thread_id)
        gc.callbacks.append(self._gc_hook)
        self._started_at = time.perf_counter()
        self._started_cpu = time.thread_time()

    def stop(self) -> LoopSample:
        """Stop measuring (on the loop thread) and return what the stretch cost."""
        cpu = time.thread_time()
        wall = time.perf_counter()
        sample, self._sample = self._sample, None
        assert sample is not None, "not measuring"
        assert threading.get_ident() == self.thread_id, "stop() runs on the loop thread"
        assert self._original_run is not None
        asyncio.Handle._run = self._original_run  # type: ignore[method-assign]
        _meters.remove(self)
        if self._gc_hook is not None:
            gc.callbacks.remove(self._gc_hook)
            self._gc_hook = None
        sample.thread_cpu_s = cpu - self._started_cpu
        sample.seconds = wall - self._started_at
        return sample
