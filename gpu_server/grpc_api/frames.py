"""SubmitFrames: a bidirectional stream of frames in and acks out.

Frames of one stream are read ahead and ingested concurrently (up to a bound), so frames that
arrive together reach the batcher together; acks go out in completion order with client_ref.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

import grpc

from gpu_server._generated import frames_pb2
from gpu_server.errors import FrameRejectedError, RejectReason
from gpu_server.grpc_api.convert import Unparseable, detection_to_pb
from gpu_server.grpc_api.status_codes import code_number, status_for
from gpu_server.ingest.ingestor import FrameIngestor, FrameOutcome
from gpu_server.monitor.latency import FrameCounters

_LOGGER = logging.getLogger(__name__)

_STREAM_DONE = object()
# Capture times outside [2000-01-01, now + 1 day] are a client's broken clock: the frame is
# analyzed at the server's time instead, and its ack says so.
_EARLIEST_CAPTURE_MS: Final = 946_684_800_000
_FUTURE_SLACK_MS: Final = 86_400_000


def checked_capture_time(captured_at_ms: int, now_ms: int) -> tuple[int, str]:
    """The capture time to use (0: the server's clock) and a note when it was replaced."""
    if captured_at_ms == 0:
        return 0, ""
    if _EARLIEST_CAPTURE_MS <= captured_at_ms <= now_ms + _FUTURE_SLACK_MS:
        return captured_at_ms, ""
    return 0, (
        f"captured_at_ms {captured_at_ms} is not a plausible capture time; "
        "the server's clock was used"
    )


def reject_reason_name(reason: RejectReason) -> str:
    """The contract's REJECT_REASON_* name for a domain reason."""
    return f"REJECT_REASON_{reason.name}"


def accepted_ack(
    frame: frames_pb2.Frame, outcome: FrameOutcome, note: str = ""
) -> frames_pb2.FrameAck:
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
        message=note,
        image_width=result.width,
        image_height=result.height,
        detector=result.detector,
        detections=[detection_to_pb(d) for d in result.detections],
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


def unparseable_ack(message: Unparseable) -> frames_pb2.FrameAck:
    """The answer to stream bytes that are not a Frame: no frame to name, so no client_ref;
    a client has nothing to resend and ignores an ack that names none of its frames."""
    return frames_pb2.FrameAck(
        status=frames_pb2.ACK_STATUS_REJECTED,
        status_code=code_number(grpc.StatusCode.INVALID_ARGUMENT),
        reject_reason=frames_pb2.REJECT_REASON_UNSPECIFIED,
        message=message.reason,
    )


class FrameStreamHandler:
    def __init__(
        self, ingestor: FrameIngestor, counters: FrameCounters, *, max_in_flight: int
    ) -> None:
        self._ingestor = ingestor
        self._counters = counters
        self._max_in_flight = max_in_flight

    async def _ack_for(self, frame: frames_pb2.Frame, stream: object) -> frames_pb2.FrameAck:
        """Ingest one frame; `stream` (any object unique to its stream) gives it fair turns."""
        captured_at_ms, note = checked_capture_time(
            frame.captured_at_ms, int(time.time() * 1000)
        )
        try:
            outcome = await self._ingestor.ingest(
                frame.camera_id, frame.image, frame.content_sha256, captured_at_ms, stream=stream
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
        return accepted_ack(frame, outcome, note)

    async def stream(
        self,
        frames: AsyncIterator[frames_pb2.Frame | Unparseable],
        *,
        on_unparseable: Callable[[str], None] | None = None,
    ) -> AsyncIterator[frames_pb2.FrameAck]:
        """Acks for the frames; a message that is not a Frame is refused alone (INVALID_ARGUMENT)
        and the stream goes on. `on_unparseable` hears the reason of each such refusal."""
        acks: asyncio.Queue[object] = asyncio.Queue()
        # A slot is taken when a frame is read and freed when its ack is handed to gRPC, so a
        # client that stops reading acks also stops being read from.
        slots = asyncio.Semaphore(self._max_in_flight)
        workers: set[asyncio.Task[None]] = set()

        async def work(frame: frames_pb2.Frame | Unparseable) -> None:
            if isinstance(frame, Unparseable):
                self._counters.rejected += 1
                if on_unparseable is not None:
                    on_unparseable(frame.reason)
                await acks.put(unparseable_ack(frame))
                return
            # Each stream's own ack queue tells its frames apart from other streams'.
            await acks.put(await self._ack_for(frame, acks))

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
            # Large messages leave freed buffers in the heap: hand them back after a stream.
            self._ingestor.release_memory()
