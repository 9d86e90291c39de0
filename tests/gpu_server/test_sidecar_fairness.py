"""Fair turns across streams and cameras: a flood from one cannot starve another camera.

Every test counts what was served before the other camera's frame; none measures time.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from sidecar_testlib import StartServer, frame
from testlib.waiting import wait_until

from gpu_server._generated import frames_pb2
from gpu_server.config import LimitsConfig
from gpu_server.core.detection import Detection
from gpu_server.core.frames import DetectionResult
from gpu_server.core.images import BgrImage
from gpu_server.errors import ShuttingDownError
from gpu_server.ingest.batching import BatchResult, DetectionBatcher
from gpu_server.ingest.dedupe import Deduplicator, ResultCache
from gpu_server.ingest.detect import DetectorSelection
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.fair_queue import FairKey, FairQueue
from gpu_server.ingest.fair_threads import FairThreads
from gpu_server.ingest.ingestor import FrameIngestor
from gpu_server.ingest.intake import DecodedFrame, FrameHeader, FrameIntake
from gpu_server.ingest.memory import DecodeBudget
from gpu_server.monitor.latency import LatencyTracker

FLOOD: FairKey = ("stream-1", "driveway")
NORMAL: FairKey = ("stream-2", "front_door")
# The detector tells the cameras' frames apart by their width.
FLOOD_WIDTH, NORMAL_WIDTH = 40, 80


def served(queue: FairQueue[str]) -> list[str]:
    return [queue.pop() for _ in range(len(queue))]


def test_a_flooding_camera_takes_turns_with_a_normal_one() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(100):
        queue.push(FLOOD, f"flood-{i}")
    queue.push(NORMAL, "normal")
    order = served(queue)
    # One flood frame had the turn already; the normal frame comes right after it.
    assert order.index("normal") == 1
    # The flood itself keeps its order.
    assert [item for item in order if item != "normal"] == [f"flood-{i}" for i in range(100)]


def test_many_cameras_on_one_stream_share_that_streams_turn() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(50):  # one client inventing a camera per frame
        queue.push(("stream-1", f"camera-{i}"), f"flood-{i}")
    queue.push(NORMAL, "normal")
    assert served(queue).index("normal") == 1


def test_cameras_of_one_stream_take_turns() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.push((None, "a"), f"a{i}")
    queue.push((None, "b"), "b0")
    queue.push((None, "c"), "c0")
    queue.push((None, "b"), "b1")
    assert served(queue) == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_a_camera_that_comes_back_joins_the_end_of_the_round() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push(FLOOD, "f0")
    queue.push(FLOOD, "f1")
    queue.push(NORMAL, "n0")
    assert queue.pop() == "f0"
    assert queue.pop() == "n0"  # the normal camera's queue is empty now
    queue.push(NORMAL, "n1")
    queue.push(("stream-3", "garden"), "g0")
    assert served(queue) == ["f1", "n1", "g0"]


def test_peek_remove_and_clear() -> None:
    queue: FairQueue[str] = FairQueue()
    with pytest.raises(IndexError):
        queue.peek()
    with pytest.raises(IndexError):
        queue.pop()
    first, gone, last = "first", "gone", "last"
    queue.push(FLOOD, first)
    queue.push(NORMAL, gone)
    queue.push(NORMAL, last)
    assert queue.peek() is first
    assert len(queue) == 3
    assert queue.remove(NORMAL, gone)
    assert not queue.remove(NORMAL, gone)
    assert not queue.remove(("stream-9", "x"), first)
    assert sorted(queue) == ["first", "last"]
    assert served(queue) == ["first", "last"]
    assert not queue
    queue.push(FLOOD, first)
    queue.clear()
    assert len(queue) == 0
    assert list(queue) == []


async def test_the_decode_budget_lets_another_camera_in_before_the_rest_of_a_flood() -> None:
    budget = DecodeBudget(capacity=100, wait_s=30)
    granted: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, key: FairKey) -> None:
        async with budget.reserve(60, key):  # one frame fits at a time
            granted.append(name)
            await release.wait()

    async def next_turn(expected: list[str]) -> None:
        nonlocal release
        await wait_until(lambda: granted == expected)
        release.set()
        release = asyncio.Event()

    async with budget.reserve(100, FLOOD):  # the budget is full
        flood = [asyncio.create_task(hold(f"flood-{i}", FLOOD)) for i in range(10)]
        await wait_until(lambda: budget.waiting == 10)
        normal = asyncio.create_task(hold("normal", NORMAL))
        await wait_until(lambda: budget.waiting == 11)
    # The flood's oldest frame had the turn; the other camera's frame comes right after it.
    await next_turn(["flood-0"])
    await next_turn(["flood-0", "normal"])
    await next_turn(["flood-0", "normal", "flood-1"])
    release.set()
    await asyncio.gather(*flood, normal)
    assert granted == ["flood-0", "normal", *(f"flood-{i}" for i in range(1, 10))]
    assert budget.used == 0
    assert budget.waiting == 0


async def test_a_waiter_that_gives_up_passes_its_turn_on() -> None:
    budget = DecodeBudget(capacity=100, wait_s=30)
    entered: list[str] = []

    async def take(name: str, key: FairKey) -> None:
        async with budget.reserve(60, key):
            entered.append(name)

    async with budget.reserve(100, FLOOD):
        gives_up = asyncio.create_task(take("normal", NORMAL))
        await wait_until(lambda: budget.waiting == 1)
        stays = asyncio.create_task(take("flood", FLOOD))
        await wait_until(lambda: budget.waiting == 2)
        gives_up.cancel()  # its turn came first
        await wait_until(lambda: budget.waiting == 1)
    await stays
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    assert entered == ["flood"]
    assert budget.used == 0
    assert budget.waiting == 0


class GatedDetector(Detector):
    """Holds every batch until the test opens the gate; records each batch's widths."""

    backend, device, weights, name = "test", "cpu", "", "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.inside = threading.Semaphore(0)
        self.batches: list[list[int]] = []

    def warmup(self) -> None:
        """Nothing to warm up; keeps `batches` to the frames the tests send."""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        self.batches.append([int(image.shape[1]) for image in images])
        self.inside.release()
        assert self.gate.wait(30), "the test never opened the gate"
        return [[] for _ in images]

    def flood_frames_run_with_or_before_the_normal_one(self) -> int:
        count = 0
        for widths in self.batches:
            count += widths.count(FLOOD_WIDTH)
            if NORMAL_WIDTH in widths:
                return count
        raise AssertionError(f"the normal frame was never detected: {self.batches}")

    def queued(self) -> int:
        return sum(len(widths) for widths in self.batches)


def pixels(width: int) -> BgrImage:
    return np.zeros((8, width, 3), np.uint8)


async def held_batches(waiting: list[tuple[FairKey, int]], max_batch_size: int) -> list[list[int]]:
    """The batches a batcher makes of `waiting` frames (key, width) queued behind one running
    flood frame: the widths of each batch after that first one."""
    detector = GatedDetector()
    batcher = DetectionBatcher(detector, max_batch_size=max_batch_size, max_wait_ms=0)
    batcher.start()
    try:
        calls = [asyncio.create_task(batcher.detect(pixels(FLOOD_WIDTH), FLOOD))]
        assert await asyncio.to_thread(detector.inside.acquire, True, 10)
        for key, width in waiting:
            calls.append(asyncio.create_task(batcher.detect(pixels(width), key)))
            await wait_until(lambda: batcher.queue_depth == len(calls) - 1)
        detector.gate.set()
        results: list[BatchResult] = await asyncio.gather(*calls)
    finally:
        await batcher.stop()
    assert len(results) == len(waiting) + 1
    assert batcher.frames_run == len(waiting) + 1
    assert detector.batches[0] == [FLOOD_WIDTH]
    return detector.batches[1:]


async def test_the_other_cameras_frame_goes_into_the_next_batch_beside_one_flood_frame() -> None:
    batches = await held_batches([(FLOOD, FLOOD_WIDTH)] * 20 + [(NORMAL, NORMAL_WIDTH)], 4)
    # The normal camera ran out in the first round: its batch ends there, and the flood's next
    # batches are full again.
    assert batches == [[FLOOD_WIDTH, NORMAL_WIDTH], *[[FLOOD_WIDTH] * 4] * 4, [FLOOD_WIDTH] * 3]


async def test_cameras_with_a_frame_each_or_equal_bursts_fill_whole_batches() -> None:
    one_each = [((None, f"camera_{i}"), 10 + i) for i in range(6)]
    assert await held_batches(one_each, 4) == [[10, 11, 12, 13], [14, 15]]
    bursts = [((None, camera), 10 + i) for i in range(3) for camera in ("a", "b")]
    assert await held_batches(bursts, 4) == [[10, 10, 11, 11], [12, 12]]


def png(width: int, shade: int) -> bytes:
    image = Image.new("RGB", (width, 8), (shade % 256, shade // 256, 7))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("max_batch_size", [2, 8])
async def test_a_flooding_stream_cannot_starve_another_cameras_frame(
    start_server: StartServer, max_batch_size: int
) -> None:
    """32 frames on one stream, detected slowly (held at a gate); one frame of another camera
    on a second stream is detected after the batch that was running and one flood frame beside
    it, not after all 32."""
    detector = GatedDetector()
    running = await start_server(
        DetectorSelection(detector), batching__max_batch_size=max_batch_size
    )
    batcher = running.server.batcher
    assert batcher is not None
    assert batcher.workers == 1
    flood_frames = [
        frame(png(FLOOD_WIDTH, i), f"flood-{i}", camera="driveway") for i in range(32)
    ]
    flood = asyncio.create_task(running.submit(flood_frames))
    # The first flood batch is running; the rest of the flood waits for the detector.
    assert await asyncio.to_thread(detector.inside.acquire, True, 30)
    await wait_until(lambda: detector.queued() + batcher.queue_depth == 32)

    normal = asyncio.create_task(
        running.submit([frame(png(NORMAL_WIDTH, 0), "normal", camera="front_door")])
    )
    await wait_until(lambda: detector.queued() + batcher.queue_depth == 33)
    detector.gate.set()
    flood_acks, normal_acks = await asyncio.gather(flood, normal)

    accepted = frames_pb2.ACK_STATUS_ACCEPTED
    assert [ack.status for ack in normal_acks] == [accepted]
    assert [ack.status for ack in flood_acks] == [accepted] * 32
    # At most the batch that was running and one beside it in the next batch; in arrival order
    # it would have been all 32.
    assert detector.flood_frames_run_with_or_before_the_normal_one() <= max_batch_size + 1
    assert sum(len(widths) for widths in detector.batches) == 33


@pytest.fixture
def one_thread() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


async def test_the_threads_run_another_cameras_work_before_the_rest_of_a_flood(
    one_thread: ThreadPoolExecutor,
) -> None:
    threads = FairThreads(one_thread)
    gate, ran = threading.Event(), []

    def work(name: str) -> str:
        gate.wait(10)
        ran.append(name)
        return name

    calls = [
        asyncio.create_task(threads.run(FLOOD, lambda i=i: work(f"flood-{i}")))  # type: ignore[misc]
        for i in range(10)
    ]
    await wait_until(lambda: threads.waiting == 9)  # the first one holds the only thread
    calls.append(asyncio.create_task(threads.run(NORMAL, lambda: work("normal"))))
    await wait_until(lambda: threads.waiting == 10)
    gate.set()
    results = await asyncio.gather(*calls)
    assert ran[:3] == ["flood-0", "flood-1", "normal"]
    assert [timed.value for timed in results] == [*(f"flood-{i}" for i in range(10)), "normal"]
    assert all(timed.work_ms >= 0 and timed.wait_ms >= 0 for timed in results)
    assert threads.waiting == 0


async def test_the_threads_pass_errors_and_skip_work_whose_caller_gave_up(
    one_thread: ThreadPoolExecutor,
) -> None:
    threads = FairThreads(one_thread)
    gate, inside, ran = threading.Event(), threading.Semaphore(0), []

    def work(name: str) -> str:
        inside.release()
        gate.wait(10)
        ran.append(name)
        if name == "bad":
            raise ValueError("bad frame")
        return name

    first = asyncio.create_task(threads.run(FLOOD, lambda: work("first")))
    assert await asyncio.to_thread(inside.acquire, True, 10)  # it holds the only thread
    gone = asyncio.create_task(threads.run(NORMAL, lambda: work("gone")))
    bad = asyncio.create_task(threads.run(NORMAL, lambda: work("bad")))
    last = asyncio.create_task(threads.run(FLOOD, lambda: work("last")))
    await wait_until(lambda: threads.waiting == 3)
    gone.cancel()
    await wait_until(lambda: threads.waiting == 2)
    gate.set()
    assert (await first).value == "first"
    with pytest.raises(ValueError, match="bad frame"):
        await bad
    assert (await last).value == "last"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert sorted(ran) == ["bad", "first", "last"]


async def test_work_waiting_when_the_threads_shut_down_fails_instead_of_hanging(
    one_thread: ThreadPoolExecutor,
) -> None:
    threads = FairThreads(one_thread)
    gate, inside = threading.Event(), threading.Semaphore(0)

    def hold() -> bool:
        inside.release()
        return gate.wait(10)

    first = asyncio.create_task(threads.run(FLOOD, hold))
    assert await asyncio.to_thread(inside.acquire, True, 10)
    waiting = [asyncio.create_task(threads.run(NORMAL, lambda: "never")) for _ in range(3)]
    await wait_until(lambda: threads.waiting == 3)
    one_thread.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert (await first).value is True
    for call in waiting:
        with pytest.raises(ShuttingDownError):
            await asyncio.wait_for(call, 10)
    with pytest.raises(RuntimeError):
        await threads.run(NORMAL, lambda: "too late")
    assert threads.waiting == 0


@pytest.fixture
def frame_threads(monkeypatch: pytest.MonkeyPatch) -> list[FairThreads]:
    """The servers' FairThreads, to see how much work waits for a frame thread."""
    made: list[FairThreads] = []
    init = FairThreads.__init__

    def recording(self: FairThreads, *args: object) -> None:
        init(self, *args)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(FairThreads, "__init__", recording)
    return made


async def test_a_flood_of_slow_decodes_cannot_starve_another_cameras_decode(
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
    frame_threads: list[FairThreads],
) -> None:
    """32 frames on one stream whose decoding is slow, one frame thread: the frame of another
    camera on a second stream is decoded after a few of them, not after all 32."""
    gate, inside, decoded = threading.Event(), threading.Semaphore(0), []
    decode = FrameIntake.decode

    def slow_flood(self: FrameIntake, data: bytes, header: FrameHeader) -> DecodedFrame:
        decoded.append(header.width)
        if header.width == FLOOD_WIDTH:
            inside.release()
            assert gate.wait(30), "the test never opened the gate"
            time.sleep(0.05)  # a slow decode: the event loop queues the other frame meanwhile
        return decode(self, data, header)

    monkeypatch.setattr(FrameIntake, "decode", slow_flood)
    detector = GatedDetector()
    detector.gate.set()  # only decoding is held here
    running = await start_server(DetectorSelection(detector), limits__decode_threads=1)
    [threads] = frame_threads
    flood = asyncio.create_task(running.submit(
        [frame(png(FLOOD_WIDTH, i), f"flood-{i}", camera="driveway") for i in range(32)]
    ))
    assert await asyncio.to_thread(inside.acquire, True, 30)
    # The thread is held; every other flood frame waits with its next piece of work.
    await wait_until(lambda: threads.waiting == 31)
    normal = asyncio.create_task(
        running.submit([frame(png(NORMAL_WIDTH, 0), "normal", camera="front_door")])
    )
    await wait_until(lambda: threads.waiting == 32)
    gate.set()
    flood_acks, normal_acks = await asyncio.gather(flood, normal)

    accepted = frames_pb2.ACK_STATUS_ACCEPTED
    assert [ack.status for ack in normal_acks] == [accepted]
    assert [ack.status for ack in flood_acks] == [accepted] * 32
    # First come, first served it would have been all 32 before it.
    assert decoded.index(NORMAL_WIDTH) <= 6, decoded
    assert len(decoded) == 33


async def test_a_stream_inventing_a_camera_per_frame_still_gets_one_turn() -> None:
    """Told its stream, the ingestor serves streams in turn before cameras: a client that sends
    each frame under a new camera id gets one turn per round, not one per camera."""
    detector = GatedDetector()
    batcher = DetectionBatcher(detector, max_batch_size=1, max_wait_ms=0)
    budget = DecodeBudget(64 * 1024 * 1024, wait_s=30)
    dedupe: Deduplicator[DetectionResult] = Deduplicator(ResultCache(64))
    ingestor = FrameIngestor(
        FrameIntake(LimitsConfig()), dedupe, batcher, LatencyTracker(64), budget=budget
    )
    batcher.start()
    try:
        flood = [
            asyncio.create_task(
                ingestor.ingest(f"camera_{i}", png(FLOOD_WIDTH, i), "", stream="client-1")
            )
            for i in range(20)
        ]
        assert await asyncio.to_thread(detector.inside.acquire, True, 10)
        await wait_until(lambda: batcher.queue_depth == 19)
        normal = asyncio.create_task(
            ingestor.ingest("front_door", png(NORMAL_WIDTH, 0), "", stream="client-2")
        )
        await wait_until(lambda: batcher.queue_depth == 20)
        detector.gate.set()
        await asyncio.gather(*flood, normal)
    finally:
        await batcher.stop()
    assert detector.flood_frames_run_with_or_before_the_normal_one() <= 2
    assert detector.queued() == 21


async def test_a_failed_call_does_not_keep_its_arguments_alive(
    one_thread: ThreadPoolExecutor,
) -> None:
    """The error a frame's check raises reaches the caller, who may keep it (a reference
    cycle until the next garbage collection): the frame it was given must be freed anyway."""
    import functools
    import weakref

    def check(image: np.ndarray) -> None:
        raise ValueError(f"refused {image.shape}")

    image = np.zeros((1024, 1024), np.uint8)
    freed = weakref.ref(image)
    call = functools.partial(check, image)
    del image
    threads = FairThreads(one_thread)
    with pytest.raises(ValueError, match="refused") as caught:
        await threads.run(NORMAL, call)
    del call
    kept_error = caught.value
    # A bug (not a refusal) keeps where it happened, as text for the log.
    assert "in check" in "".join(kept_error.__notes__)
    assert freed() is None
