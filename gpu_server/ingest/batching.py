"""One queue for the frames of all streams and cameras, drained in batches.

Frames wait in turn by stream and camera (`fair_queue.py`): a batch takes the next frame of
each waiting camera in turn, round after round, and ends with the round in which a camera runs
out. A flood from one stream or camera then holds another camera's frame back by the batches
already running and one round of the others' frames, not by the whole flood.

A detector call costs much the same for one image as for several (especially on a GPU), so
the worker takes up to `max_batch_size` frames, waiting at most `max_wait_ms` after the first
one for more to arrive, and runs a single detector call for them.

With replicas of the detector (copies that share nothing), batches run at the same time, one
per idle copy: while one copy infers, the next batch forms and starts on another. On a CPU two
single-threaded copies keep both cores busy through the Python parts of each call, where one
copy with two threads leaves a core idle; on a GPU one copy's pre- and post-processing overlaps
the other's inference. The next batch is collected only once a copy is free, so frames that
arrive meanwhile join it instead of waiting behind a smaller one.

The copies run on threads of their own, one per copy, so that a batch never waits for a thread
behind short per-frame work (hashing, decoding, the scene check) and that work never waits behind
a batch; the detector's threads run nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.errors import DetectorError, ShuttingDownError
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.fair_queue import DEFAULT_KEY, FairKey, FairQueue
from gpu_server.monitor.latency import run_timed

_LOGGER = logging.getLogger(__name__)

# The names of the detector's threads (a number follows).
DETECTOR_THREAD_PREFIX: Final = "hsai-detector"


@dataclass(frozen=True, slots=True)
class BatchResult:
    detections: list[Detection]
    queue_ms: float  # from submit until the batch started
    inference_ms: float  # the whole batch's detector call: inference_wait_ms + its work
    batch_size: int
    # Of inference_ms: waiting for the detector's thread and for the event loop to take the
    # result back; the rest is the detector's work.
    inference_wait_ms: float = 0.0


@dataclass(slots=True)
class _Request:
    image: BgrImage
    future: asyncio.Future[BatchResult]
    enqueued_at: float = field(default_factory=time.perf_counter)


class DetectionBatcher:
    def __init__(
        self,
        detector: Detector,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        replicas: Sequence[Detector] = (),
        history: int = 1024,
    ) -> None:
        """`replicas`: more copies of `detector`, each running a batch of its own."""
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.detector = detector
        self.workers = 1 + len(replicas)
        # One thread per copy: a batch starts only on an idle copy, so it never waits for one.
        self._threads = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=DETECTOR_THREAD_PREFIX
        )
        self._idle: asyncio.Queue[Detector] = asyncio.Queue()
        for copy in (detector, *replicas):
            self._idle.put_nowait(copy)
        # The batches running now, by their task.
        self._batches: dict[asyncio.Task[None], list[_Request]] = {}
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._pending: FairQueue[_Request] = FairQueue()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        # Sizes of the most recent batches, for status and tests.
        self.batch_sizes: deque[int] = deque(maxlen=history)
        # How often the worker died; the next frame starts a new one.
        self.worker_deaths = 0
        self.frames_run = 0

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._worker is None:
            self._start_worker()

    def _start_worker(self) -> None:
        worker = asyncio.create_task(self._run(), name="detection-batcher")
        worker.add_done_callback(self._worker_done)
        self._worker = worker

    def _worker_done(self, worker: asyncio.Task[None]) -> None:
        """The worker only ends when stopped; if it died, fail its frames instead of hanging."""
        if self._closed or worker.cancelled() or worker is not self._worker:
            return
        self._worker = None
        self.worker_deaths += 1
        cause = worker.exception()
        _LOGGER.error("the detection worker died", exc_info=cause)
        leftovers = [*self._running(), *self._pending]
        self._pending.clear()
        _fail(leftovers, _died(cause))

    async def stop(self) -> None:
        """Stop the worker and fail whatever still waits in the queue."""
        self._closed = True
        tasks = [*self._batches, *([self._worker] if self._worker is not None else [])]
        # Taken now: a cancelled batch leaves the running ones as it ends.
        leftovers = [*self._running(), *self._pending]
        for task in tasks:
            task.cancel()
        if tasks:
            # wait, not await: a worker that died must not make stopping raise.
            await asyncio.wait(tasks)
        self._worker = None
        self._batches.clear()
        self._pending.clear()
        # A detector call still running finishes on its thread; nothing waits for it.
        self._threads.shutdown(wait=False, cancel_futures=True)
        for request in leftovers:
            if not request.future.done():
                request.future.set_exception(ShuttingDownError("server is shutting down"))

    async def detect(self, image: BgrImage, key: FairKey = DEFAULT_KEY) -> BatchResult:
        """Queue one image and wait for its detections; `key` (stream, camera) says whose turn
        it waits for."""
        if self._closed:
            raise ShuttingDownError("server is shutting down")
        if self._worker is not None and self._worker.done():
            self._worker_done(self._worker)  # it died and its callback has not run yet
        if self._worker is None and self.worker_deaths:
            _LOGGER.warning("restarting the detection worker")
            self._start_worker()
        request = _Request(image, asyncio.get_running_loop().create_future())
        self._pending.push(key, request)
        self._wakeup.set()
        return await request.future

    async def _wait_for_more(self, wait_s: float) -> bool:
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def _collect(self) -> list[_Request]:
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(self._pending) < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_for_more(remaining):
                break
        batch: list[_Request] = []
        while self._pending and len(batch) < self.max_batch_size:
            # A round: the next frame of each waiting camera. When a camera runs out, the batch
            # ends with its round: its frame does not wait for more of the others' frames.
            keys = self._pending.key_count()
            for _ in range(keys):
                if not self._pending or len(batch) >= self.max_batch_size:
                    break
                request = self._pending.pop()
                if not request.future.done():  # its caller may have gone away meanwhile
                    batch.append(request)
            if self._pending.key_count() < keys:
                break
        return batch

    async def _run(self) -> None:
        while True:
            detector = await self._idle.get()
            try:
                batch = await self._collect()
            except BaseException:
                self._idle.put_nowait(detector)
                raise
            if not batch:
                self._idle.put_nowait(detector)
                continue
            task = asyncio.create_task(self._run_batch(batch, detector), name="detection-batch")
            self._batches[task] = batch
            task.add_done_callback(functools.partial(self._batch_done, detector=detector))

    def _running(self) -> list[_Request]:
        return [request for batch in self._batches.values() for request in batch]

    def _batch_done(self, task: asyncio.Task[None], *, detector: Detector) -> None:
        batch = self._batches.pop(task, [])
        self._idle.put_nowait(detector)
        if task.cancelled() or task.exception() is None:
            return
        # Only what the per-batch handler lets through (a BaseException) gets here: its frames
        # fail instead of waiting forever; the copy gets the next batch again.
        self.worker_deaths += 1
        cause = task.exception()
        _LOGGER.error("a detection batch died", exc_info=cause)
        _fail(batch, _died(cause))

    def _detect(self, detector: Detector, images: list[BgrImage]) -> list[list[Detection]]:
        outputs = detector.detect_batch(images)
        # A detector that drops or adds an entry would hand frames each other's detections.
        if len(outputs) != len(images):
            raise DetectorError(
                f"detector returned {len(outputs)} results for {len(images)} images"
            )
        return outputs

    async def _run_batch(self, batch: list[_Request], detector: Detector) -> None:
        started = time.perf_counter()
        images = [request.image for request in batch]
        try:
            timed = await run_timed(
                self._threads, functools.partial(self._detect, detector, images)
            )
        except Exception as exc:
            _LOGGER.exception("detector failed on a batch of %d frames", len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            self.batch_sizes.append(len(batch))
            self.frames_run += len(batch)
        inference_ms = timed.wait_ms + timed.work_ms
        for request, detections in zip(batch, timed.value, strict=True):
            if not request.future.done():
                request.future.set_result(
                    BatchResult(
                        detections=detections,
                        queue_ms=(started - request.enqueued_at) * 1000.0,
                        inference_ms=inference_ms,
                        batch_size=len(batch),
                        inference_wait_ms=timed.wait_ms,
                    )
                )


def _died(cause: BaseException | None) -> DetectorError:
    return DetectorError(
        f"the detection worker stopped unexpectedly ({type(cause).__name__}); "
        "the frame may be resent"
    )


def _fail(requests: list[_Request], error: BaseException) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(error)
