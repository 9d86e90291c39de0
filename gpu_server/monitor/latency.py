"""Rolling per-stage latency statistics and frame counters.

A stage that runs on a worker thread is reported three ways: the stage as a whole (`decode`,
`inference`), and split into `<stage>_wait` (waiting: for room in the decode memory budget, for
a free thread, and for the event loop to take the result back) and `<stage>_work` (the time the
thread spent on it). Wait and work add up to the stage. `queue` is waiting only (for a micro-batch
and a free copy of the detector); `total` is a frame from its arrival to its ack.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

STAGES = (
    "decode",
    "decode_wait",
    "decode_work",
    "queue",
    "inference",
    "inference_wait",
    "inference_work",
    "total",
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int  # samples ever recorded, not just those in the window
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Timed(Generic[T]):
    """What a call on a worker thread returned, and how its time split."""

    value: T
    wait_ms: float  # until a thread started it, and from its end until the caller resumed
    work_ms: float  # inside the thread


async def run_timed(executor: Executor | None, call: Callable[[], T]) -> Timed[T]:
    """Run a blocking call on `executor` (None: the loop's default) and time its parts."""

    def timed_call() -> tuple[T, float, float]:
        begun = time.perf_counter()
        value = call()
        return value, begun, time.perf_counter()

    submitted = time.perf_counter()
    value, begun, ended = await asyncio.get_running_loop().run_in_executor(executor, timed_call)
    work_ms = (ended - begun) * 1000.0
    wait_ms = max(0.0, (time.perf_counter() - submitted) * 1000.0 - work_ms)
    return Timed(value, wait_ms, work_ms)


def _percentile(ordered: list[float], fraction: float) -> float:
    # Nearest-rank: always a value that was actually observed.
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class LatencyWindow:
    """The last `size` samples of one stage; mean and percentiles are over that window."""

    def __init__(self, size: int) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self.count = 0

    def record(self, ms: float) -> None:
        self._samples.append(ms)
        self.count += 1

    def summary(self) -> LatencySummary:
        if not self._samples:
            return LatencySummary(self.count, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(self._samples)
        return LatencySummary(
            count=self.count,
            mean_ms=sum(ordered) / len(ordered),
            p50_ms=_percentile(ordered, 0.50),
            p95_ms=_percentile(ordered, 0.95),
            max_ms=ordered[-1],
        )


class LatencyTracker:
    def __init__(self, window: int = 1024) -> None:
        self._stages = {stage: LatencyWindow(window) for stage in STAGES}

    def record(self, stage: str, ms: float) -> None:
        self._stages[stage].record(ms)

    def record_split(self, stage: str, wait_ms: float, work_ms: float) -> None:
        """A stage run on a worker thread: as a whole, and its wait and work apart."""
        self.record(stage, wait_ms + work_ms)
        self.record(f"{stage}_wait", wait_ms)
        self.record(f"{stage}_work", work_ms)

    def summaries(self) -> dict[str, LatencySummary]:
        return {stage: window.summary() for stage, window in self._stages.items()}


@dataclass(slots=True)
class FrameCounters:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
