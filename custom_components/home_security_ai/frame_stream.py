"""The frame pipeline: one long-lived SubmitFrames stream to the sidecar.

Sources hand frames to the pipeline, which writes each to the spool on disk before it is
sent. When the stream drops, the connection is marked down (entities go unavailable), the
pipeline reconnects with exponential backoff and sends everything still spooled again (acked
frames too: an event covers them only once the sidecar's batch closes, and a restarted sidecar
has lost its open batches); the sidecar deduplicates by content hash, so a resend is harmless.
A frame leaves the spool when the event that covers it is stored (see events.py). A
DUPLICATE ack releases the frame at once only when it names the event that covers the content
(`covered_sequence`) and Home Assistant has already stored that event of the same outbox;
otherwise the frame waits for the covering event to arrive through the event stream.

A frame the sidecar could not take now (its outbox is full, BACKPRESSURE; or it failed,
INTERNAL; or an ack status this release does not know) stays spooled and is sent again later,
with a growing delay per frame. Only a final rejection (the frame itself is bad) removes it.
Frames over MAX_FRAME_BYTES are refused before they are spooled; should the sidecar still end
the stream because a message is too large, the largest frame in flight is dropped, so one bad
frame cannot stop the stream for good. The reconnect backoff starts over only once a stream
has delivered an ack.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from .client import (
    AckStatus,
    AuthFailed,
    Detection,
    FrameAck,
    FrameIn,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    RejectReason,
    ResourceExhausted,
    SecurityEvent,
)
from .const import (
    BACKPRESSURE_RETRY_SECONDS,
    DOMAIN,
    MAX_FRAME_BYTES,
    MAX_IN_FLIGHT_FRAMES,
    RECONNECT_BACKOFF_INITIAL,
    RECONNECT_BACKOFF_MAX,
    RETRY_MAX_SECONDS,
    SPOOL_HIGH_WATER,
    STATUS_REFRESH_DELAY,
    signal_camera_updated,
    signal_connection,
    signal_new_camera,
)
from .spool import FrameSpool, SpooledFrame

if TYPE_CHECKING:
    from .coordinator import HomeSecurityAIConfigEntry, HomeSecurityAIStatusCoordinator

_LOGGER = logging.getLogger(__name__)

# google.rpc.Code RESOURCE_EXHAUSTED: the sidecar's event outbox is full.
_RESOURCE_EXHAUSTED = 8


@dataclass(kw_only=True)
class CameraState:
    """What the integration knows about one monitored camera."""

    camera_id: str
    name: str
    last_image: bytes | None = None
    last_image_ref: str | None = None
    detections: tuple[Detection, ...] = ()
    image_width: int = 0
    image_height: int = 0
    detector: str | None = None
    last_captured: datetime | None = None
    last_analysed: datetime | None = None
    frames_sent: int = 0
    frames_accepted: int = 0
    frames_duplicate: int = 0
    frames_rejected: int = 0
    frames_dropped: int = 0
    last_reject_reason: str | None = None
    # Security events.
    last_event: SecurityEvent | None = None
    last_event_at: datetime | None = None
    last_snapshot: str | None = None
    events_today: int = 0
    events_day: str | None = None
    threat_until: datetime | None = None

    @property
    def label_counts(self) -> dict[str, int]:
        """Return how many objects of each label the last frame holds."""
        return dict(Counter(det.label for det in self.detections))


@dataclass(kw_only=True)
class PipelineCounters:
    """Totals of the pipeline since the entry was set up."""

    submitted: int = 0
    acked: int = 0
    rejected: int = 0
    dropped: int = 0
    refused: int = 0
    resent: int = 0
    backpressure: int = 0
    # Frames the sidecar failed on (or answered with an unknown status), kept to send again.
    retried: int = 0
    # Frames refused before sending: larger than the frame limit.
    oversized: int = 0
    reconnects: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)


class FramePipeline:
    """Owns the frame stream to the sidecar and the per-camera state."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HomeSecurityAIConfigEntry,
        client: HomeSecurityAIClient,
        coordinator: HomeSecurityAIStatusCoordinator,
        spool: FrameSpool,
        *,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
        max_in_flight: int = MAX_IN_FLIGHT_FRAMES,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        """Set up an idle pipeline; `async_run` starts streaming."""
        self.hass = hass
        self._entry = entry
        self._client = client
        self._coordinator = coordinator
        self.spool = spool
        self._backoff_initial = (
            RECONNECT_BACKOFF_INITIAL if backoff_initial is None else backoff_initial
        )
        self._backoff_max = RECONNECT_BACKOFF_MAX if backoff_max is None else backoff_max
        self._max_in_flight = max_in_flight
        self.max_frame_bytes = max_frame_bytes
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        # Frames written to the current stream and not acked yet, with their images.
        self._in_flight: dict[str, FrameIn] = {}
        self._window = asyncio.Semaphore(max_in_flight)
        self._retry_timers: set[Any] = set()
        # Send attempts of frames waiting for a retry, for their growing delay.
        self._attempts: dict[str, int] = {}
        self._refresh_cancel: Any = None
        self._acked_this_stream = False
        self.cameras: dict[str, CameraState] = {}
        self.counters = PipelineCounters()
        self.connected = False
        self.last_error: str | None = None
        # The outbox the current frame stream's sidecar writes events to (from its status).
        self.outbox_id = ""
        # Whether Home Assistant has stored the event (outbox id, sequence); set by the events.
        self.event_stored: Callable[[str, int], bool] = lambda _outbox, _sequence: False

    @property
    def pending_count(self) -> int:
        """Return the number of spooled frames the sidecar has not acked yet."""
        return self.spool.unacked_count

    def has_room(self, size: int) -> bool:
        """Return whether the spool takes `size` more bytes without nearing its limit."""
        spool = self.spool
        return spool.used_bytes + size <= spool.max_bytes * SPOOL_HIGH_WATER

    @callback
    def async_register_camera(self, camera_id: str, name: str) -> CameraState:
        """Return the camera's state, announcing the camera if it is new."""
        if (state := self.cameras.get(camera_id)) is not None:
            return state
        state = self.cameras[camera_id] = CameraState(camera_id=camera_id, name=name)
        async_dispatcher_send(self.hass, signal_new_camera(self._entry.entry_id), camera_id)
        return state

    @callback
    def async_frame_evicted(self, frame: SpooledFrame) -> None:
        """Count a frame the spool gave up on."""
        self.counters.dropped += 1
        if (camera := self.cameras.get(frame.camera_id)) is not None:
            camera.frames_dropped += 1

    async def async_submit(self, frame: FrameIn) -> bool:
        """Spool a frame; it is sent now or as soon as the sidecar is back.

        Returns False when the spool refused it (logged, with a repair issue).
        """
        camera = self.cameras.get(frame.camera_id)
        if camera is None:
            camera = self.async_register_camera(frame.camera_id, frame.camera_id)
        if len(frame.image) > self.max_frame_bytes:
            self._async_oversized(
                frame.camera_id, frame.source_ref or frame.client_ref, len(frame.image)
            )
            return False
        entry = await self.spool.async_add(frame)
        if entry is None:
            self.counters.refused += 1
            return False
        self._queue.put_nowait(entry.key)
        self.counters.submitted += 1
        camera.frames_sent += 1
        return True

    @callback
    def _async_oversized(self, camera_id: str, what: str, size: int) -> None:
        """Count and log a frame too large to send."""
        self.counters.oversized += 1
        if (camera := self.cameras.get(camera_id)) is not None:
            camera.frames_rejected += 1
            camera.last_reject_reason = "too_many_bytes"
        _LOGGER.warning(
            "Frame %s of camera %s is %s bytes, more than the %s a frame may have; not sent",
            what,
            camera_id,
            size,
            self.max_frame_bytes,
        )

    async def async_run(self) -> None:
        """Keep one frame stream open until cancelled."""
        backoff = self._backoff_initial
        try:
            while True:
                self._acked_this_stream = False
                try:
                    status = await self._client.get_status()
                    self.outbox_id = status.events.outbox_id
                    self._set_connected(True)
                    self._coordinator.async_set_updated_data(status)
                    await self._async_stream()
                except AuthFailed as err:
                    self.last_error = str(err)
                    self._set_connected(False)
                    self._coordinator.async_set_update_error(err)
                    _LOGGER.warning("The sidecar refused the token; frames are paused: %s", err)
                    self._entry.async_start_reauth(self.hass)
                    return
                except HomeSecurityAIError as err:
                    self.last_error = str(err)
                    if self.connected:
                        _LOGGER.warning("Lost the frame stream to the sidecar: %s", err)
                        self._coordinator.async_set_update_error(err)
                    else:
                        _LOGGER.debug("Sidecar still unreachable: %s", err)
                    self._set_connected(False)
                if self._acked_this_stream:
                    # Only a stream that worked resets the backoff, not a status answer alone.
                    backoff = self._backoff_initial
                self.counters.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
        finally:
            for cancel in self._retry_timers:
                cancel()
            self._retry_timers.clear()
            if self._refresh_cancel is not None:
                self._refresh_cancel()
                self._refresh_cancel = None

    async def _async_stream(self) -> None:
        self._in_flight.clear()
        self._window = asyncio.Semaphore(self._max_in_flight)
        try:
            async for ack in self._client.stream_frames(self._outgoing(self._window)):
                self._handle_ack(ack)
        except ResourceExhausted:
            await self._async_drop_largest_in_flight()
            raise
        raise HomeSecurityAIError("The sidecar closed the frame stream")

    async def _async_drop_largest_in_flight(self) -> None:
        """Give up the largest frame of a stream that ended on a message too large."""
        if not self._in_flight:
            return
        key, frame = max(self._in_flight.items(), key=lambda item: len(item[1].image))
        self._in_flight.pop(key)
        self._async_oversized(frame.camera_id, frame.source_ref or key, len(frame.image))
        await self.spool.async_remove([key])

    async def _outgoing(self, window: asyncio.Semaphore) -> AsyncIterator[FrameIn]:
        """Yield every spooled frame first, then whatever gets queued."""
        while not self._queue.empty():
            self._queue.get_nowait()
        replay = self.spool.keys()
        for key in replay:
            if (frame := await self._async_take(key, window)) is not None:
                self.counters.resent += 1
                yield frame
        while True:
            key = await self._queue.get()
            if (frame := await self._async_take(key, window)) is not None:
                yield frame

    async def _async_take(self, key: str, window: asyncio.Semaphore) -> FrameIn | None:
        """Wait for room on the stream and read a spooled frame."""
        if (entry := self.spool.get(key)) is None or key in self._in_flight:
            return None
        if entry.size > self.max_frame_bytes:
            # Spooled by an older release, or the limit went down.
            self._async_oversized(entry.camera_id, entry.source_ref or key, entry.size)
            await self.spool.async_remove([key])
            return None
        await window.acquire()
        frame = await self.spool.async_read(key)
        if frame is None or key in self._in_flight:
            window.release()
            return None
        self._in_flight[key] = frame
        return frame

    @callback
    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            self.last_error = None
            _LOGGER.info("Connected to the sidecar at %s:%s", self._client.host, self._client.port)
        async_dispatcher_send(self.hass, signal_connection(self._entry.entry_id))

    @callback
    def _schedule_retry(self, key: str) -> float:
        """Send the spooled frame again later; return the delay."""
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        delay: float = min(BACKPRESSURE_RETRY_SECONDS * 2.0**attempt, RETRY_MAX_SECONDS)

        @callback
        def _retry(_now: Any) -> None:
            self._retry_timers.discard(cancel)
            if self.spool.get(key) is not None:
                self._queue.put_nowait(key)
            else:
                self._attempts.pop(key, None)

        cancel = async_call_later(self.hass, delay, _retry)
        self._retry_timers.add(cancel)
        return delay

    @callback
    def _schedule_status_refresh(self) -> None:
        """Refresh the server's status once per STATUS_REFRESH_DELAY, however many acks."""
        if self._refresh_cancel is not None:
            return

        @callback
        def _refresh(_now: Any) -> None:
            self._refresh_cancel = None
            self._entry.async_create_background_task(
                self.hass, self._coordinator.async_request_refresh(), f"{DOMAIN} status refresh"
            )

        self._refresh_cancel = async_call_later(self.hass, STATUS_REFRESH_DELAY, _refresh)

    @callback
    def _handle_ack(self, ack: FrameAck) -> None:
        frame = self._in_flight.pop(ack.client_ref, None)
        if frame is None:
            _LOGGER.debug("Ack for a frame no longer waiting: %s", ack.client_ref)
            return
        self._window.release()
        self._acked_this_stream = True
        self.counters.acked += 1
        camera = self.cameras.get(frame.camera_id)
        if camera is None:
            camera = self.async_register_camera(frame.camera_id, frame.camera_id)
        if ack.status == AckStatus.REJECTED and (
            ack.status_code == _RESOURCE_EXHAUSTED or ack.reject_reason == RejectReason.BACKPRESSURE
        ):
            # The sidecar's outbox is full until events are acknowledged: keep the frame.
            self.counters.backpressure += 1
            _LOGGER.debug("The sidecar is busy; %s is sent again later", ack.client_ref)
            self._schedule_retry(ack.client_ref)
            return
        if (
            ack.status == AckStatus.REJECTED and ack.reject_reason == RejectReason.INTERNAL
        ) or ack.status not in (AckStatus.ACCEPTED, AckStatus.DUPLICATE, AckStatus.REJECTED):
            # The sidecar failed on it (safe to resend), or answered in a way this release does
            # not know: keep the frame and send it again later.
            self.counters.retried += 1
            first = ack.client_ref not in self._attempts
            delay = self._schedule_retry(ack.client_ref)
            _LOGGER.log(
                logging.WARNING if first else logging.DEBUG,
                "The sidecar did not take %s from camera %s (%s: %s); sending it again in %s s",
                frame.source_ref or frame.client_ref,
                frame.camera_id,
                ack.reject_reason.name.lower()
                if ack.status == AckStatus.REJECTED
                else f"ack status {ack.status.name.lower()}",
                ack.message,
                round(delay),
            )
            return
        self._attempts.pop(ack.client_ref, None)
        if ack.status == AckStatus.REJECTED:
            reason = ack.reject_reason.name.lower()
            self.counters.rejected += 1
            self.counters.reject_reasons[reason] += 1
            camera.frames_rejected += 1
            camera.last_reject_reason = reason
            _LOGGER.warning(
                "The sidecar rejected %s from camera %s: %s (%s)",
                frame.source_ref or frame.client_ref,
                frame.camera_id,
                reason,
                ack.message,
            )
            # No event will cover it.
            self._entry.async_create_background_task(
                self.hass, self.spool.async_remove([ack.client_ref]), f"{DOMAIN} unspool"
            )
        else:
            if ack.status == AckStatus.DUPLICATE:
                camera.frames_duplicate += 1
            else:
                camera.frames_accepted += 1
            self.spool.async_mark_acked(ack.client_ref, len(ack.detections))
            if (
                ack.status == AckStatus.DUPLICATE
                and ack.covered_sequence > 0
                and self.event_stored(self.outbox_id, ack.covered_sequence)
            ):
                # An event Home Assistant has stored covers the content: no new event will.
                # Without that (not covered yet, or its event not stored yet) the frame stays
                # until the covering event arrives through the event stream.
                self._entry.async_create_background_task(
                    self.hass,
                    self.spool.async_release_keys([ack.client_ref]),
                    f"{DOMAIN} unspool",
                )
            camera.last_image = frame.image
            camera.last_image_ref = frame.client_ref
            camera.detections = ack.detections
            camera.image_width = ack.image_width
            camera.image_height = ack.image_height
            camera.detector = ack.detector or None
            camera.last_captured = dt_util.utc_from_timestamp(frame.captured_at_ms / 1000)
            camera.last_analysed = dt_util.utcnow()
        # Counters and latencies of the server device follow the frames.
        self._schedule_status_refresh()
        async_dispatcher_send(
            self.hass, signal_camera_updated(self._entry.entry_id, frame.camera_id)
        )
