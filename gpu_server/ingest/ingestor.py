"""The path of one frame: check it, skip it if its content was seen, else decode and detect."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.dedupe import Deduplicator
from gpu_server.ingest.detect import Detection
from gpu_server.ingest.intake import BgrImage, FrameIntake, validate_camera_id
from gpu_server.ingest.memory import DecodeBudget
from gpu_server.monitor.latency import LatencyTracker


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What dedupe remembers per content hash."""

    detections: tuple[Detection, ...]
    width: int
    height: int
    detector: str


@dataclass(frozen=True, slots=True)
class StageTimings:
    decode_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    sha256: str
    result: AnalysisResult
    duplicate: bool
    timings: StageTimings
    # For a duplicate: the sequence of the stored event covering it; 0 while it is only claimed.
    covered_sequence: int = 0


@dataclass(frozen=True, slots=True)
class AcceptedFrame:
    """A newly analysed frame, handed to the sink before its ack goes out."""

    camera_id: str
    sha256: str
    captured_at_ms: int  # client clock; 0 when the client did not say
    result: AnalysisResult


class FrameSink(Protocol):
    """Where accepted frames go next (the events pipeline)."""

    async def coverage(self, sha256: str) -> int | None:
        """The covering event's sequence, 0 while the frame waits in a batch or an analysis,
        None when nothing holds it."""

    def check_capacity(self) -> None:
        """Raise BackpressureError when no new frame can be taken now."""

    async def accept(self, frame: AcceptedFrame, pixels: BgrImage | None) -> int | None:
        """Take the frame; once this returns None, an event will cover it (or the process died).

        A twin taken meanwhile is not taken again; its coverage comes back instead. `pixels` is
        None for content analysed before (no scene check)."""


class FrameAnalyzer:
    def __init__(
        self,
        intake: FrameIntake,
        dedupe: Deduplicator[AnalysisResult],
        batcher: DetectionBatcher,
        latency: LatencyTracker,
        sink: FrameSink | None = None,
        *,
        budget: DecodeBudget,
    ) -> None:
        self._budget = budget
        self._intake = intake
        self._dedupe = dedupe
        self._batcher = batcher
        self._latency = latency
        self._sink = sink

    async def analyze(
        self, camera_id: str, image: bytes, declared_sha256: str, captured_at_ms: int = 0
    ) -> FrameOutcome:
        """Analyse one encoded frame; raises FrameRejectedError for frames the server refuses."""
        started = time.perf_counter()
        validate_camera_id(camera_id)
        header = await asyncio.to_thread(self._intake.inspect, image, declared_sha256)
        inspect_ms = (time.perf_counter() - started) * 1000.0
        timings: dict[str, float] = {}
        sink = self._sink
        if sink is not None:
            covering = await sink.coverage(header.sha256)
            if covering is not None:
                # Covered by an event (maybe from before a restart) or in an open batch.
                known = self._dedupe.cache.get(header.sha256) or AnalysisResult(
                    (), header.width, header.height, self._batcher.detector.name
                )
                return self._known(header.sha256, known, started, inspect_ms, covering)
            sink.check_capacity()
            cached = self._dedupe.cache.get(header.sha256)
            if cached is not None:
                # Analysed before, yet nothing covers or holds it (its analysis failed, its
                # covered row expired): take it again with the detections already known.
                twin = await sink.accept(
                    AcceptedFrame(camera_id, header.sha256, captured_at_ms, cached), None
                )
                if twin is not None:
                    return self._known(header.sha256, cached, started, inspect_ms, twin)
                total_ms = (time.perf_counter() - started) * 1000.0
                self._latency.record("total", total_ms)
                timed = StageTimings(decode_ms=inspect_ms, total_ms=total_ms)
                return FrameOutcome(header.sha256, cached, False, timed)
        twins: list[int] = []

        async def analyse_new() -> AnalysisResult:
            # The pixels live from decode to the end of accept (the scene check): hold their
            # memory in the shared budget for that long.
            async with self._budget.reserve(self._intake.decode_cost(header)):
                decode_started = time.perf_counter()
                decoded = await asyncio.to_thread(self._intake.decode, image, header)
                timings["decode_ms"] = (
                    inspect_ms + (time.perf_counter() - decode_started) * 1000.0
                )
                batch = await self._batcher.detect(decoded.pixels)
                timings["queue_ms"] = batch.queue_ms
                timings["inference_ms"] = batch.inference_ms
                result = AnalysisResult(
                    detections=_to_original_pixels(batch.detections, *decoded.scale),
                    width=decoded.width,
                    height=decoded.height,
                    detector=self._batcher.detector.name,
                )
                if sink is not None:
                    # Inside the dedupe leader: only one copy of concurrent identical frames
                    # joins.
                    twin = await sink.accept(
                        AcceptedFrame(camera_id, header.sha256, captured_at_ms, result),
                        decoded.pixels,
                    )
                    if twin is not None:
                        twins.append(twin)
                return result

        result, duplicate = await self._dedupe.resolve(header.sha256, analyse_new)
        if sink is not None and (duplicate or twins):
            # Another call took this content: say which event covers it, if one does yet.
            covering = await sink.coverage(header.sha256)
            return self._known(header.sha256, result, started, inspect_ms, covering or 0)
        total_ms = (time.perf_counter() - started) * 1000.0
        if duplicate:
            stage = StageTimings(decode_ms=inspect_ms, total_ms=total_ms)
        else:
            stage = StageTimings(total_ms=total_ms, **timings)
            self._latency.record("decode", stage.decode_ms)
            self._latency.record("queue", stage.queue_ms)
            self._latency.record("inference", stage.inference_ms)
        self._latency.record("total", total_ms)
        return FrameOutcome(header.sha256, result, duplicate, stage)

    def release_memory(self) -> None:
        """A stream ended: give memory its frames used back to the system, when idle."""
        self._budget.trim()

    def _known(
        self, sha256: str, result: AnalysisResult, started: float, inspect_ms: float,
        covered_sequence: int,
    ) -> FrameOutcome:
        """The outcome for content another frame brought first."""
        total_ms = (time.perf_counter() - started) * 1000.0
        self._latency.record("total", total_ms)
        timed = StageTimings(decode_ms=inspect_ms, total_ms=total_ms)
        return FrameOutcome(sha256, result, True, timed, covered_sequence)


def _to_original_pixels(
    detections: Iterable[Detection], scale_x: float, scale_y: float
) -> tuple[Detection, ...]:
    """Boxes found on a scaled-down decode, in pixels of the original image."""
    if scale_x == 1.0 and scale_y == 1.0:
        return tuple(detections)
    return tuple(
        dataclasses.replace(
            det, x1=det.x1 * scale_x, y1=det.y1 * scale_y, x2=det.x2 * scale_x,
            y2=det.y2 * scale_y,
        )
        for det in detections
    )
