"""SubmitFrames: a bidirectional stream of frames in and acks out.

Frames of one stream are read ahead and analysed concurrently (up to a bound), so frames that
arrive together reach the batcher together; acks go out in completion order with client_ref.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from gpu_server._generated import frames_pb2
from gpu_server.errors import FrameRejectedError, RejectReason, code_number, status_for
from gpu_server.monitor.latency import FrameCounters
from gpu_server.pipeline.analyze import FrameAnalyzer, FrameOutcome

_LOGGER = logging.getLogger(__name__)

_STREAM_DONE = object()


def reject_reason_name(reason: RejectReason) -> str:
    """The contract's REJECT_REASON_* name for a domain reason."""
    return f"REJECT_REASON_{reason.name}"


def accepted_ack(frame: frames_pb2.Frame, outcome: FrameOutcome) -> frames_pb2.FrameAck:
    result = outcome.result
    timings = outcome.timings
    return frames_pb2.FrameAck(
        client_ref=frame.client_ref,
        camera_id=frame.camera_id,
        content_sha256=outcome.sha256,
        status=(
            frames_pb2.ACK_STATUS_DUPLICATE if outcome.duplicate else frames_pb2.ACK_STATUS_ACCEPTED
        ),
        status_code=code_number(grpc.StatusCode.OK),
        image_width=result.width,
        image_height=result.height,
        detector=result.detector,
        detections=[
            frames_pb2.Detection(
                label=d.label,
                class_id=d.class_id,
                confidence=d.confidence,
                box=frames_pb2.Box(x1=d.x1, y1=d.y1, x2=d.x2, y2=d.y2),
            )
            for d in result.detections
        ],
        covered_sequence=outcome.covered_sequence if outcome.duplicate else 0,
        timings=frames_pb2.FrameTimings(
            decode_ms=timings.decode_ms,
            queue_ms=timings.queue_ms,
            inference_ms=timings.inference_ms,
            total_ms=timings.total_ms,
        ),
    )


def rejected_ack(frame: frames_pb2.Frame, exc: BaseException) -> frames_pb2.FrameAck:
    code, message = status_for(exc)
    reason = exc.reason if isinstance(exc, FrameRejectedError) else RejectReason.INTERNAL
    return frames_pb2.FrameAck(
        client_ref=frame.client_ref,
        camera_id=frame.camera_id,
        content_sha256=frame.content_sha256,
        status=frames_pb2.ACK_STATUS_REJECTED,
        status_code=code_number(code),
        reject_reason=reject_reason_name(reason),
        message=message,
    )


class FrameStreamHandler:
    def __init__(
        self, analyzer: FrameAnalyzer, counters: FrameCounters, *, max_in_flight: int
    ) -> None:
        self._analyzer = analyzer
        self._counters = counters
        self._max_in_flight = max_in_flight

    async def _ack_for(self, frame: frames_pb2.Frame) -> frames_pb2.FrameAck:
        try:
            outcome = await self._analyzer.analyze(
                frame.camera_id, frame.image, frame.content_sha256, frame.captured_at_ms
            )
        except Exception as exc:
            self._counters.rejected += 1
            if isinstance(exc, FrameRejectedError):
                _LOGGER.debug("rejected frame %r: %s", frame.client_ref, exc)
            return rejected_ack(frame, exc)
        if outcome.duplicate:
            self._counters.duplicate += 1
        else:
            self._counters.accepted += 1
        return accepted_ack(frame, outcome)

    async def stream(
        self, frames: AsyncIterator[frames_pb2.Frame]
    ) -> AsyncIterator[frames_pb2.FrameAck]:
        acks: asyncio.Queue[object] = asyncio.Queue()
        # A slot is taken when a frame is read and freed when its ack is handed to gRPC, so a
        # client that stops reading acks also stops being read from.
        slots = asyncio.Semaphore(self._max_in_flight)
        workers: set[asyncio.Task[None]] = set()

        async def work(frame: frames_pb2.Frame) -> None:
            await acks.put(await self._ack_for(frame))

        async def read_frames() -> None:
            try:
                async for frame in frames:
                    await slots.acquire()
                    task = asyncio.create_task(work(frame))
                    workers.add(task)
                    task.add_done_callback(workers.discard)
                if workers:
                    await asyncio.gather(*workers)
                await acks.put(_STREAM_DONE)
            except Exception as exc:  # the stream itself broke: end the call with its error
                await acks.put(exc)

        reader = asyncio.create_task(read_frames())
        try:
            while True:
                item = await acks.get()
                if item is _STREAM_DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, frames_pb2.FrameAck)
                yield item
                slots.release()
        finally:
            for task in (reader, *workers):
                task.cancel()
            for task in (reader, *list(workers)):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
