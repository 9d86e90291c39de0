"""Heavy decodes go one at a time, so a flood of them leaves frame threads for other cameras.

Fair turns decide who is next; they cannot shorten a decode that is already running. With two
frame threads and a flood of slow, heavy decodes, the other camera's frame is decoded on the
second thread while the first heavy decode still runs.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from testlib.waiting import wait_until

from gpu_server.config import LimitsConfig
from gpu_server.core.detection import Detection
from gpu_server.core.frames import DetectionResult
from gpu_server.core.images import BgrImage
from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.dedupe import Deduplicator, ResultCache
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.ingestor import FrameIngestor, HeavyLane
from gpu_server.ingest.intake import DecodedFrame, FrameHeader, FrameIntake
from gpu_server.ingest.memory import DecodeBudget
from gpu_server.monitor.latency import LatencyTracker

HEAVY_WIDTH, NORMAL_WIDTH = 400, 40


class NoDetections(Detector):
    backend, device, weights, name = "test", "cpu", "", "none"

    def warmup(self) -> None:
        """Nothing to warm up."""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        return [[] for _ in images]


def png(width: int, shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, 300), (shade, shade, shade)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def two_threads() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-frames")
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def heavy_bytes() -> int:
    """A lane limit between the two test frames' decode costs."""
    intake = FrameIntake(LimitsConfig())
    costs = [intake.decode_cost(intake.inspect(png(w, 0))) for w in (NORMAL_WIDTH, HEAVY_WIDTH)]
    assert costs[0] < costs[1]
    return (costs[0] + costs[1]) // 2


async def test_a_flood_of_heavy_decodes_leaves_a_thread_for_another_camera(
    monkeypatch: pytest.MonkeyPatch, two_threads: ThreadPoolExecutor
) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    running_heavy, most_heavy_at_once, normal_decoded = [0], [0], threading.Event()
    decode = FrameIntake.decode

    def slow_heavy(self: FrameIntake, data: bytes, header: FrameHeader) -> DecodedFrame:
        if header.width != HEAVY_WIDTH:
            normal_decoded.set()
            return decode(self, data, header)
        with lock:
            running_heavy[0] += 1
            most_heavy_at_once[0] = max(most_heavy_at_once[0], running_heavy[0])
        try:
            assert gate.wait(30), "the test never opened the gate"
            return decode(self, data, header)
        finally:
            with lock:
                running_heavy[0] -= 1

    monkeypatch.setattr(FrameIntake, "decode", slow_heavy)
    batcher = DetectionBatcher(NoDetections(), max_batch_size=4, max_wait_ms=0)
    ingestor = FrameIngestor(
        FrameIntake(LimitsConfig()),
        Deduplicator[DetectionResult](ResultCache(64)),
        batcher,
        LatencyTracker(64),
        budget=DecodeBudget(512 * 1024 * 1024, wait_s=30),
        frame_threads=two_threads,
        heavy_lane=HeavyLane(heavy_bytes()),
    )
    batcher.start()
    try:
        flood = [
            asyncio.create_task(
                ingestor.ingest("driveway", png(HEAVY_WIDTH, i), "", stream="attacker")
            )
            for i in range(8)
        ]
        await wait_until(lambda: running_heavy[0] >= 1)
        normal = asyncio.create_task(
            ingestor.ingest("front_door", png(NORMAL_WIDTH, 0), "", stream="camera")
        )
        # Decoded while the first heavy decode still holds its thread: without the lane, the
        # flood would hold both threads and this would wait for the gate.
        decoded_early = await asyncio.to_thread(normal_decoded.wait, 10)
        gate.set()
        results = await asyncio.gather(*flood, normal)
    finally:
        gate.set()
        await batcher.stop()
    assert decoded_early, "the other camera's frame waited for the heavy decodes"
    assert most_heavy_at_once[0] == 1
    assert [r.result.width for r in results] == [HEAVY_WIDTH] * 8 + [NORMAL_WIDTH]


async def test_the_lane_passes_light_decodes_and_is_freed_on_errors() -> None:
    lane = HeavyLane(100)
    async with lane.admitted(50) as done, lane.admitted(60):
        done()  # two light ones at once, and done() on a light one is harmless
    with pytest.raises(RuntimeError):
        async with lane.admitted(500):
            raise RuntimeError("decode failed")
    async with lane.admitted(500) as done:
        done()
        done()  # once only
    async with asyncio.timeout(1), lane.admitted(500):
        pass
