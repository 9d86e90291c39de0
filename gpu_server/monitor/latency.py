"""Rolling per-stage latency statistics and frame counters."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

STAGES = ("decode", "queue", "inference", "total")


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int  # samples ever recorded, not just those in the window
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


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

    def summaries(self) -> dict[str, LatencySummary]:
        return {stage: window.summary() for stage, window in self._stages.items()}


@dataclass(slots=True)
class FrameCounters:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
