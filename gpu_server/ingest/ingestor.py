"""The path of one frame up to its detections: check it, claim its content, decode, detect.

Content already held (in an open window, an analysis or a stored event) is not decoded again:
its ack says how it is held. Detections are remembered per content hash (dedupe), so content
taken again after its claim was released is not detected again either.

Checking and decoding run on a small pool of threads of their own (`frame_threads`), apart from
the detector's: a frame is decoded while the batches before it are detected, instead of waiting
for a thread that a detector call holds.

Where a frame waits (for a frame thread, for room in the decode budget, for the detector), it
waits in turn by stream and camera (`fair_queue.py`), so one client's flood cannot starve
another camera. Turns alone do not bound the wait, though: a decode that takes seconds (a
progressive JPEG's full-size coefficients, a large 16-bit PNG) holds its thread that long. Such
heavy decodes go one at a time (`HeavyLane`), so the other frame threads stay free for
ordinary frames whatever a client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Protocol

from gpu_server.core.coverage import Coverage, CoverageState
from gpu_server.core.detection import Detection
from gpu_server.core.frames import AcceptedFrame, DetectionResult
from gpu_server.core.images import BgrImage
from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.dedupe import Deduplicator
from gpu_server.ingest.detector import usable_cores
from gpu_server.ingest.fair_queue import FairKey
from gpu_server.ingest.fair_threads import FairThreads
from gpu_server.ingest.intake import FrameHeader, FrameIntake, validate_camera_id
from gpu_server.ingest.memory import DecodeBudget
from gpu_server.monitor.latency import LatencyTracker

# The names of the threads that check and decode frames (a number follows).
FRAME_THREAD_PREFIX: Final = "hsai-frames"
# At most this many by default: the work is short, and more threads than cores only queue.
MAX_DEFAULT_FRAME_THREADS: Final = 4
# A decode that holds more memory than this takes a second or more on a CPU (a 12-megapixel
# PNG, a progressive JPEG of 8 megapixels and up, whose coefficients are kept at full size);
# a camera's ordinary frame (a 4K JPEG, decoded scaled down) holds a fraction of it.
HEAVY_DECODE_BYTES: Final = 64 * 1024 * 1024


def frame_thread_count(configured: int = 0) -> int:
    """Threads for checking and decoding frames: as configured, else two (one decodes while
    the other hashes or decodes a large frame), or half the cores on a larger machine, at most
    MAX_DEFAULT_FRAME_THREADS."""
    if configured > 0:
        return configured
    return min(MAX_DEFAULT_FRAME_THREADS, max(2, usable_cores() // 2))


@dataclass(frozen=True, slots=True)
class StageTimings:
    # Checking and decoding, including decode_wait_ms: waiting for a thread, for room in the
    # decode budget and for the event loop to take the result back.
    decode_ms: float = 0.0
    queue_ms: float = 0.0
    # The batch's detector call, including inference_wait_ms (as for decoding).
    inference_ms: float = 0.0
    total_ms: float = 0.0
    decode_wait_ms: float = 0.0
    inference_wait_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    sha256: str
    result: DetectionResult
    duplicate: bool
    timings: StageTimings
    # For a duplicate: the sequence of the stored event covering it; 0 while it is only claimed.
    covered_sequence: int = 0


class FrameSink(Protocol):
    """Where taken frames go next (the events scheduler)."""

    async def claim(self, sha256: str) -> Coverage:
        """Claim the content for this frame, or say how it is held already."""

    def release(self, sha256: str) -> None:
        """Give up a claim for a frame that was not accepted after all."""

    def check_capacity(self) -> None:
        """Raise BackpressureError when no new frame can be taken now."""

    async def accept(self, frame: AcceptedFrame, pixels: BgrImage | None) -> None:
        """Take a claimed frame; once this returns, an event will cover it (or the process
        died). `pixels` is None for content analyzed before (no scene check)."""


class HeavyLane:
    """Lets one heavy decode run at a time; lighter ones pass at once."""

    def __init__(self, heavy_bytes: int = HEAVY_DECODE_BYTES) -> None:
        self.heavy_bytes = heavy_bytes
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def admitted(self, cost: int) -> AsyncIterator[Callable[[], None]]:
        """Hold the lane (for a heavy decode) until `done()` is called or the block ends."""
        if cost <= self.heavy_bytes:
            yield lambda: None
            return
        await self._lock.acquire()
        held = True

        def done() -> None:
            nonlocal held
            if held:
                held = False
                self._lock.release()

        try:
            yield done
        finally:
            done()


class FrameIngestor:
    def __init__(
        self,
        intake: FrameIntake,
        dedupe: Deduplicator[DetectionResult],
        batcher: DetectionBatcher,
        latency: LatencyTracker,
        sink: FrameSink | None = None,
        *,
        budget: DecodeBudget,
        frame_threads: Executor | None = None,
        heavy_lane: HeavyLane | None = None,
    ) -> None:
        """`frame_threads`: where frames are checked and decoded (None: the event loop's
        default executor)."""
        self._budget = budget
        self._heavy_lane = heavy_lane or HeavyLane()
        self._threads = FairThreads(frame_threads)
        self._intake = intake
        self._dedupe = dedupe
        self._batcher = batcher
        self._latency = latency
        self._sink = sink

    async def ingest(
        self, camera_id: str, image: bytes, declared_sha256: str, captured_at_ms: int = 0,
        *, stream: Hashable = None,
    ) -> FrameOutcome:
        """Take one encoded frame; raises FrameRejectedError for frames the server refuses.

        `stream`: the same value for every frame of one client's stream (None: streams are not
        told apart, only cameras), for taking turns with other streams."""
        started = time.perf_counter()
        validate_camera_id(camera_id)
        key: FairKey = (stream, camera_id)
        inspected = await self._threads.run(
            key, functools.partial(self._intake.inspect, image, declared_sha256)
        )
        header = inspected.value
        inspect_ms = inspected.wait_ms + inspected.work_ms
        sink = self._sink
        if sink is None:
            return await self._detect(
                key, image, header, captured_at_ms=captured_at_ms, started=started,
                inspect_wait_ms=inspected.wait_ms, inspect_work_ms=inspected.work_ms,
            )
        coverage = await sink.claim(header.sha256)
        if coverage.state is not CoverageState.NEW:
            # Covered by an event (maybe from before a restart), or in an open window or
            # analysis: the detections come from whoever took it.
            known = await self._dedupe.known(header.sha256) or DetectionResult(
                (), header.width, header.height, self._batcher.detector.name
            )
            return self._known(header.sha256, known, started, inspect_ms, coverage.sequence)
        try:
            sink.check_capacity()
            cached = self._dedupe.cache.get(header.sha256)
            if cached is None:
                return await self._detect(
                    key, image, header, captured_at_ms=captured_at_ms, started=started,
                    inspect_wait_ms=inspected.wait_ms, inspect_work_ms=inspected.work_ms,
                )
            # Analyzed before, yet nothing covered or held it (its analysis failed, its
            # covered row expired): take it again with the detections already known.
            await sink.accept(AcceptedFrame(camera_id, header.sha256, captured_at_ms, cached), None)
        except BaseException:
            sink.release(header.sha256)
            raise
        total_ms = (time.perf_counter() - started) * 1000.0
        self._latency.record("total", total_ms)
        timed = StageTimings(
            decode_ms=inspect_ms, total_ms=total_ms, decode_wait_ms=inspected.wait_ms
        )
        return FrameOutcome(header.sha256, cached, False, timed)

    async def _detect(
        self,
        key: FairKey,
        image: bytes,
        header: FrameHeader,
        *,
        captured_at_ms: int,
        started: float,
        inspect_wait_ms: float,
        inspect_work_ms: float,
    ) -> FrameOutcome:
        """Decode and detect new content, then hand it to the sink (which holds its claim)."""
        camera_id = key[1]
        timings: dict[str, float] = {}
        sink = self._sink

        async def detect_new() -> DetectionResult:
            # The pixels live from decode to the end of accept (the scene check): hold their
            # memory in the shared budget for that long.
            asked = time.perf_counter()
            cost = self._intake.decode_cost(header)
            # A heavy frame waits for the lane before it takes any budget.
            async with (
                self._heavy_lane.admitted(cost) as decoded_lane,
                self._budget.reserve(cost, key),
            ):
                budget_wait_ms = (time.perf_counter() - asked) * 1000.0
                timed = await self._threads.run(
                    key, functools.partial(self._intake.decode, image, header)
                )
                decoded_lane()  # detection costs what any frame's does
                decoded = timed.value
                timings["decode_wait_ms"] = inspect_wait_ms + budget_wait_ms + timed.wait_ms
                timings["decode_ms"] = (
                    timings["decode_wait_ms"] + inspect_work_ms + timed.work_ms
                )
                batch = await self._batcher.detect(decoded.pixels, key)
                timings["queue_ms"] = batch.queue_ms
                timings["inference_ms"] = batch.inference_ms
                timings["inference_wait_ms"] = batch.inference_wait_ms
                result = DetectionResult(
                    detections=_to_original_pixels(batch.detections, *decoded.scale),
                    width=decoded.width,
                    height=decoded.height,
                    detector=self._batcher.detector.name,
                )
                if sink is not None:
                    await sink.accept(
                        AcceptedFrame(camera_id, header.sha256, captured_at_ms, result),
                        decoded.pixels,
                    )
                return result

        result, duplicate = await self._dedupe.resolve(header.sha256, detect_new)
        total_ms = (time.perf_counter() - started) * 1000.0
        if duplicate:
            # Without a sink only: another call brought the same bytes at the same time.
            stage = StageTimings(
                decode_ms=inspect_wait_ms + inspect_work_ms, total_ms=total_ms,
                decode_wait_ms=inspect_wait_ms,
            )
        else:
            stage = StageTimings(total_ms=total_ms, **timings)
            latency = self._latency
            latency.record_split(
                "decode", stage.decode_wait_ms, stage.decode_ms - stage.decode_wait_ms
            )
            latency.record("queue", stage.queue_ms)
            latency.record_split(
                "inference", stage.inference_wait_ms, stage.inference_ms - stage.inference_wait_ms
            )
        self._latency.record("total", total_ms)
        return FrameOutcome(header.sha256, result, duplicate, stage)

    def release_memory(self) -> None:
        """A stream ended: give memory its frames used back to the system, when idle."""
        self._budget.trim()

    def _known(
        self, sha256: str, result: DetectionResult, started: float, inspect_ms: float,
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
