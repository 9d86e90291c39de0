"""The path of one frame: check it, skip it if its content was seen, else decode and detect."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from gpu_server.monitor.latency import LatencyTracker
from gpu_server.pipeline.batching import DetectionBatcher
from gpu_server.pipeline.dedupe import Deduplicator
from gpu_server.pipeline.detect import Detection
from gpu_server.pipeline.intake import FrameIntake, validate_camera_id


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


class FrameAnalyzer:
    def __init__(
        self,
        intake: FrameIntake,
        dedupe: Deduplicator[AnalysisResult],
        batcher: DetectionBatcher,
        latency: LatencyTracker,
    ) -> None:
        self._intake = intake
        self._dedupe = dedupe
        self._batcher = batcher
        self._latency = latency

    async def analyze(self, camera_id: str, image: bytes, declared_sha256: str) -> FrameOutcome:
        """Analyse one encoded frame; raises FrameRejectedError for frames the server refuses."""
        started = time.perf_counter()
        validate_camera_id(camera_id)
        header = await asyncio.to_thread(self._intake.inspect, image, declared_sha256)
        inspect_ms = (time.perf_counter() - started) * 1000.0
        timings: dict[str, float] = {}

        async def analyse_new() -> AnalysisResult:
            decode_started = time.perf_counter()
            decoded = await asyncio.to_thread(self._intake.decode, image, header)
            timings["decode_ms"] = inspect_ms + (time.perf_counter() - decode_started) * 1000.0
            batch = await self._batcher.detect(decoded.pixels)
            timings["queue_ms"] = batch.queue_ms
            timings["inference_ms"] = batch.inference_ms
            return AnalysisResult(
                detections=tuple(batch.detections),
                width=decoded.width,
                height=decoded.height,
                detector=self._batcher.detector.name,
            )

        result, duplicate = await self._dedupe.resolve(header.sha256, analyse_new)
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
