"""Each stage's waiting and working reported apart, and decoding on threads of its own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from sidecar_testlib import AUTH, StartServer, encode_jpeg, frame
from testlib.waiting import wait_until

from gpu_server._generated import frames_pb2
from gpu_server.config import load_config
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.ingest import ingestor
from gpu_server.ingest.batching import DETECTOR_THREAD_PREFIX
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.ingestor import FRAME_THREAD_PREFIX, frame_thread_count
from gpu_server.ingest.intake import DecodedFrame, FrameHeader, FrameIntake
from gpu_server.monitor.latency import STAGES, LatencyTracker, run_timed

ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
SPLIT = ("decode", "inference")


class ThreadRecordingDetector(Detector):
    """HOG, noting the thread each batch ran on; `gate` (when set up) holds batches."""

    backend, device, weights = "test", "cpu", ""

    def __init__(self, inner: Detector, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = gate
        self.inside = threading.Semaphore(0)
        self.threads: list[str] = []

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        self.threads.append(threading.current_thread().name)
        self.inside.release()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.detect_batch(images)

    def replicate(self) -> Detector | None:
        return None  # one copy: the test knows which thread is the detector's


@pytest.fixture
def decode_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads frames were decoded on, in order."""
    names: list[str] = []
    decode = FrameIntake.decode

    def recording(self: FrameIntake, data: bytes, header: FrameHeader) -> DecodedFrame:
        names.append(threading.current_thread().name)
        return decode(self, data, header)

    monkeypatch.setattr(FrameIntake, "decode", recording)
    return names


def distinct_jpegs(image: Image.Image, count: int) -> list[bytes]:
    """`count` different small views of the photo: new content each."""
    return [
        encode_jpeg(image.crop((i * 7, i * 5, 400 + i * 7, 300 + i * 5)), quality=80 + i)
        for i in range(count)
    ]


async def test_the_status_reports_waiting_and_working_for_every_frame(
    start_server: StartServer, hog_detector: HogPeopleDetector, bus_image: Image.Image
) -> None:
    running = await start_server(DetectorSelection(hog_detector))
    jpegs = distinct_jpegs(bus_image, 5)

    acks = await running.submit(
        [frame(data, f"f{i}", camera=f"camera_{i % 2}") for i, data in enumerate(jpegs)]
    )
    assert [ack.status for ack in acks] == [ACCEPTED] * 5
    # The same content again: a duplicate is timed as a whole only.
    [again] = await running.submit([frame(jpegs[0], "again", camera="camera_0")])
    assert again.status == frames_pb2.ACK_STATUS_DUPLICATE
    stages = (await running.status()).stage_latency

    assert set(stages) == set(STAGES)
    for stage in SPLIT:
        for name in (stage, f"{stage}_wait", f"{stage}_work"):
            stats = stages[name]
            assert stats.count == 5, name
            assert 0 <= stats.p50_ms <= stats.p95_ms <= stats.max_ms, name
            assert stats.mean_ms >= 0, name
        # Waiting and working add up to the stage (float32 on the wire).
        whole = stages[stage].mean_ms
        parts = stages[f"{stage}_wait"].mean_ms + stages[f"{stage}_work"].mean_ms
        assert parts == pytest.approx(whole, rel=1e-3, abs=1e-3), stage
    assert stages["decode_work"].max_ms > 0  # decoding a JPEG takes time
    assert stages["inference_work"].max_ms > 0  # and so does HOG
    assert stages["queue"].count == 5
    assert stages["total"].count == 6
    # Each frame's ack still carries its stages as a whole.
    for ack in acks:
        timings = ack.timings
        assert timings.decode_ms > 0
        assert timings.total_ms >= timings.decode_ms + timings.queue_ms + timings.inference_ms


async def test_decoding_never_runs_on_the_detectors_threads(
    start_server: StartServer,
    hog_detector: HogPeopleDetector,
    bus_image: Image.Image,
    decode_threads: list[str],
) -> None:
    detector = ThreadRecordingDetector(hog_detector)
    running = await start_server(DetectorSelection(detector))

    acks = await running.submit(
        [frame(data, f"f{i}") for i, data in enumerate(distinct_jpegs(bus_image, 6))]
    )

    assert [ack.status for ack in acks] == [ACCEPTED] * 6
    assert len(decode_threads) == 6
    assert all(name.startswith(FRAME_THREAD_PREFIX) for name in decode_threads), decode_threads
    # The warm-up at start ran on a thread of the start-up; every batch since on the detector's.
    batches = detector.threads[1:]
    assert batches
    assert all(name.startswith(DETECTOR_THREAD_PREFIX) for name in batches), batches
    assert not set(decode_threads) & set(batches)


async def test_frames_are_decoded_while_a_batch_holds_the_detector(
    start_server: StartServer,
    hog_detector: HogPeopleDetector,
    bus_image: Image.Image,
    decode_threads: list[str],
) -> None:
    gate = threading.Event()
    detector = ThreadRecordingDetector(hog_detector, gate)
    detector.gate = None  # the warm-up at start runs freely
    running = await start_server(DetectorSelection(detector), batching__max_wait_ms=0)
    detector.gate = gate
    first, *more = distinct_jpegs(bus_image, 5)
    call = running.stub.SubmitFrames(metadata=AUTH)
    try:
        await call.write(frame(first, "first"))
        assert await asyncio.to_thread(detector.inside.acquire, True, 30)
        # The detector's only thread is busy with the first frame; the next ones still decode.
        for i, data in enumerate(more):
            await call.write(frame(data, f"more{i}"))
        await wait_until(lambda: len(decode_threads) == 5, 30)
        assert not gate.is_set()
    finally:
        gate.set()
    await call.done_writing()
    acks = [ack async for ack in call]
    assert [ack.status for ack in acks] == [ACCEPTED] * 5


def test_frame_threads_stay_few_whatever_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, expected in ((1, 2), (2, 2), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr(ingestor, "usable_cores", lambda cores=cores: cores)
        assert frame_thread_count() == expected, cores
    assert frame_thread_count(3) == 3  # configured
    assert load_config(env={}).limits.decode_threads == 0
    config = load_config(env={"HSAI_DECODE_THREADS": "3"})
    assert config.limits.decode_threads == 3


async def test_a_timed_call_splits_into_waiting_and_working() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = threading.Event()
        blocker = asyncio.get_running_loop().run_in_executor(pool, busy.wait, 10)

        def work() -> str:
            time.sleep(0.05)
            return "done"

        waiting = asyncio.create_task(run_timed(pool, work))
        await asyncio.sleep(0.1)  # the call waits for the pool's only thread meanwhile
        busy.set()
        await blocker
        timed = await waiting
    assert timed.value == "done"
    assert timed.work_ms >= 45
    assert timed.wait_ms >= 50

    tracker = LatencyTracker()
    tracker.record_split("decode", 3.0, 2.0)
    summaries = tracker.summaries()
    assert (summaries["decode"].mean_ms, summaries["decode_wait"].mean_ms) == (5.0, 3.0)
    assert summaries["decode_work"].mean_ms == 2.0
    assert summaries["inference"].count == 0
