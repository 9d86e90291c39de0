"""The ingest parts on their own: intake checks, dedupe, batching, latency windows."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image
from sidecar_testlib import encode_jpeg, png_header

from gpu_server.config import LimitsConfig
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.errors import FrameRejectedError, RejectReason
from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.dedupe import Deduplicator, ResultCache
from gpu_server.ingest.detect import HogPeopleDetector
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.intake import FrameIntake
from gpu_server.monitor.gpu import GpuMonitor
from gpu_server.monitor.latency import LatencyTracker


def reason_of(intake: FrameIntake, data: bytes, sha: str = "") -> RejectReason:
    with pytest.raises(FrameRejectedError) as raised:
        intake.decode(data, intake.inspect(data, sha))
    return raised.value.reason


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the size in a baseline JPEG's SOF0 header."""
    at = data.index(b"\xff\xc0")
    patched = bytearray(data)
    patched[at + 5 : at + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(patched)


def test_intake_reads_sizes_from_headers_and_decodes_to_bgr(bus_image: Image.Image) -> None:
    intake = FrameIntake(LimitsConfig())
    red = Image.new("RGB", (40, 30), (255, 0, 0))
    for data in (encode_jpeg(red, 95), png_bytes(red)):
        header = intake.inspect(data)
        assert (header.width, header.height) == (40, 30)
        decoded = intake.decode(data, header)
        assert decoded.pixels.shape == (30, 40, 3)
        blue, green, red_channel = decoded.pixels[15, 20]
        assert (red_channel > 200, blue < 50, green < 50) == (True, True, True)
    assert intake.inspect(encode_jpeg(bus_image)).format == "JPEG"


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_intake_limits_come_from_the_header_before_decoding(bus_jpeg: bytes) -> None:
    intake = FrameIntake(LimitsConfig(max_width=4000, max_height=4000, max_pixels=2_000_000))
    too_large, bomb_reason = RejectReason.DIMENSIONS_TOO_LARGE, RejectReason.DECOMPRESSION_BOMB
    assert reason_of(intake, with_jpeg_size(bus_jpeg, 60000, 100)) == too_large
    assert reason_of(intake, with_jpeg_size(bus_jpeg, 3000, 3000)) == bomb_reason
    assert reason_of(intake, png_header(5000, 10)) == too_large
    # A real bomb: a few kilobytes that would inflate to 4 million pixels.
    bomb = png_bytes(Image.new("1", (2000, 2000)))
    assert len(bomb) < 20_000
    assert reason_of(intake, bomb) == bomb_reason


def test_intake_detects_truncated_and_corrupt_data(bus_jpeg: bytes) -> None:
    intake = FrameIntake(LimitsConfig())
    png = png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))
    cases = {
        "jpeg cut in the scan": bus_jpeg[: len(bus_jpeg) - 2000],
        "jpeg cut in the header": bus_jpeg[:40],
        "jpeg magic only": b"\xff\xd8\xff",
        "png cut in the data": png[: len(png) - 20],
        "png magic only": png[:8],
        "png without pixels": png_header(64, 64),
    }
    for name, data in cases.items():
        assert reason_of(intake, data) == RejectReason.TRUNCATED, name


def test_intake_checks_the_declared_hash(bus_jpeg: bytes) -> None:
    import hashlib

    intake = FrameIntake(LimitsConfig())
    digest = hashlib.sha256(bus_jpeg).hexdigest()
    assert intake.inspect(bus_jpeg, digest.upper()).sha256 == digest
    assert reason_of(intake, bus_jpeg, "f" * 64) == RejectReason.HASH_MISMATCH
    assert reason_of(intake, bus_jpeg, "not-hex") == RejectReason.HASH_MISMATCH


def test_result_cache_is_a_bounded_lru() -> None:
    cache: ResultCache[int] = ResultCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert len(cache) == 2
    disabled: ResultCache[int] = ResultCache(0)
    disabled.put("a", 1)
    assert disabled.get("a") is None


async def test_concurrent_callers_share_one_computation() -> None:
    dedupe: Deduplicator[str] = Deduplicator(ResultCache(8))
    release = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "result"

    tasks = [asyncio.create_task(dedupe.resolve("key", compute)) for _ in range(3)]
    await asyncio.sleep(0)
    assert dedupe.in_flight == 1
    release.set()
    results = await asyncio.gather(*tasks)

    assert calls == 1
    assert sorted(results) == [("result", False), ("result", True), ("result", True)]
    assert await dedupe.resolve("key", compute) == ("result", True)
    assert calls == 1


async def test_failures_are_shared_but_not_remembered() -> None:
    dedupe: Deduplicator[str] = Deduplicator(ResultCache(8))
    release = asyncio.Event()

    async def failing() -> str:
        await release.wait()
        raise ValueError("bad content")

    tasks = [asyncio.create_task(dedupe.resolve("key", failing)) for _ in range(2)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)

    async def working() -> str:
        return "fine"

    assert await dedupe.resolve("key", working) == ("fine", False)


async def test_a_waiter_takes_over_when_the_first_caller_is_cancelled() -> None:
    dedupe: Deduplicator[str] = Deduplicator(ResultCache(8))
    never = asyncio.Event()

    async def stuck() -> str:
        await never.wait()
        return "never"

    async def quick() -> str:
        return "second"

    leader = asyncio.create_task(dedupe.resolve("key", stuck))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(dedupe.resolve("key", quick))
    await asyncio.sleep(0)
    leader.cancel()
    assert await waiter == ("second", False)


class RecordingDetector(Detector):
    """Wraps a real detector and records the batch sizes it was called with."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name, self.backend, self.device, self.weights = "recording", "test", "cpu", ""
        self.calls: list[int] = []

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        self.calls.append(len(images))
        return self.inner.detect_batch(images)


async def test_batcher_splits_a_burst_into_full_batches(hog_detector: HogPeopleDetector) -> None:
    detector = RecordingDetector(hog_detector)
    batcher = DetectionBatcher(detector, max_batch_size=3, max_wait_ms=10_000)
    batcher.start()
    try:
        images = [np.zeros((64 + i, 64, 3), np.uint8) for i in range(6)]
        results = await asyncio.gather(*(batcher.detect(image) for image in images))
    finally:
        await batcher.stop()
    assert detector.calls == [3, 3]
    assert [r.batch_size for r in results] == [3] * 6
    assert batcher.queue_depth == 0


async def test_stopping_the_batcher_fails_waiting_frames(hog_detector: HogPeopleDetector) -> None:
    batcher = DetectionBatcher(hog_detector, max_batch_size=4, max_wait_ms=10_000)
    batcher.start()
    waiting = asyncio.create_task(batcher.detect(np.zeros((64, 64, 3), np.uint8)))
    await asyncio.sleep(0)
    assert batcher.queue_depth == 1
    await batcher.stop()
    with pytest.raises(Exception, match="shutting down"):
        await waiting


def test_latency_window_statistics() -> None:
    tracker = LatencyTracker(window=100)
    for ms in range(1, 201):  # only the last 100 (101..200) stay in the window
        tracker.record("total", float(ms))
    total = tracker.summaries()["total"]
    assert total.count == 200
    assert (total.p50_ms, total.p95_ms, total.max_ms) == (150.0, 195.0, 200.0)
    assert total.mean_ms == pytest.approx(150.5)
    assert tracker.summaries()["decode"].count == 0


def test_gpu_monitor_never_raises() -> None:
    monitor = GpuMonitor()
    snapshot = monitor.read()
    assert snapshot.available == bool(snapshot.devices)
    assert snapshot.available or snapshot.reason
    monitor.close()


def test_hog_confidence_mapping() -> None:
    assert HogPeopleDetector.svm_confidence(-1.0) == 0.0
    assert 0.6 < HogPeopleDetector.svm_confidence(1.0) < 0.7
    assert HogPeopleDetector.svm_confidence(50.0) <= 1.0
