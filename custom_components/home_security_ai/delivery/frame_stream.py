"""The frame stream: spooled frames out on one long-lived SubmitFrames stream, acks in.

Sources hand frames to `FrameStream.async_submit`, which spools each before it is sent; the
connection supervisor (connection.py) opens the stream and reconnects it. On every session
the whole spool is sent again; how a frame then leaves the spool is the delivery protocol
(docs/delivery.md). What the sidecar found in a frame goes to its camera (cameras.py).

The call runs on the client's own loop (client/client_loop.py): frames are handed to it
without waiting, and acks come back in batches, handled in the callback that delivers them.
A frame just spooled goes out at once when nothing waits before it and the stream has room;
otherwise the session's pump sends it in order, after the replay and the retries.

A frame the sidecar could not take now (its outbox is full, BACKPRESSURE; or it failed,
INTERNAL; or an ack status this release does not know) stays spooled and is sent again later,
with a growing delay per frame. Only a final rejection (the frame itself is bad) removes it.
Frames over MAX_FRAME_BYTES are refused before they are spooled; should the sidecar still end
the stream because a message is too large, the largest frame in flight is dropped, so one bad
frame cannot stop the stream for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import grpc
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from ..cameras import Cameras
from ..client import (
    AckStatus,
    FrameAck,
    FrameIn,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    RejectReason,
    ResourceExhausted,
    ServerStatus,
)
from ..client.client_loop import Duplex
from ..const import (
    BACKPRESSURE_RETRY_SECONDS,
    DOMAIN,
    MAX_FRAME_BYTES,
    MAX_IN_FLIGHT_FRAMES,
    RETRY_MAX_SECONDS,
    SEND_CACHE_BYTES,
    SPOOL_HIGH_WATER,
    STATUS_REFRESH_DELAY,
)
from .connection import Retry
from .spool import FrameSpool, SpooledFrame

_LOGGER = logging.getLogger(__name__)

# An ack's status is a google.rpc.Code; this one says the sidecar's event outbox is full.
_RESOURCE_EXHAUSTED: Final[int] = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


@dataclass(kw_only=True)
class FrameStreamCounters:
    """Totals of the frame stream since the entry was set up."""

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
    # Frames let go because their camera's analysis was paused.
    paused: int = 0
    reconnects: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)


class FrameStream:
    """Spools frames and sends them on the SubmitFrames stream; takes their acks."""

    name = "frame stream"

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: HomeSecurityAIClient,
        coordinator: DataUpdateCoordinator[ServerStatus],
        *,
        spool: FrameSpool,
        cameras: Cameras,
        event_stored: Callable[[str, int], bool],
        analysis_enabled: Callable[[str], bool] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT_FRAMES,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        status_refresh_delay: float = STATUS_REFRESH_DELAY,
    ) -> None:
        """Set up an idle stream; the connection supervisor runs its sessions.

        `event_stored(outbox id, sequence)` says whether Home Assistant has stored that event;
        `analysis_enabled(camera id)` whether that camera's frames are sent at all.
        """
        self.hass = hass
        self._entry = entry
        self._client = client
        self._coordinator = coordinator
        self.spool = spool
        self._cameras = cameras
        self._event_stored = event_stored
        self._analysis_enabled = analysis_enabled
        self._max_in_flight = max_in_flight
        self.max_frame_bytes = max_frame_bytes
        self._status_refresh_delay = status_refresh_delay
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        # Frames written to the current stream and not acked yet, with their images.
        self._in_flight: dict[str, FrameIn] = {}
        # Images of frames spooled and not sent yet, newest last, within SEND_CACHE_BYTES.
        self._fresh: OrderedDict[str, bytes] = OrderedDict()
        self._fresh_bytes = 0
        self._window = asyncio.Semaphore(max_in_flight)
        # The current session's call, and whether its pump waits for frames with none queued.
        self._call: Duplex[FrameIn, FrameAck] | None = None
        self._pump_idle = False
        self._retry_timers: set[Any] = set()
        # Send attempts of frames waiting for a retry, for their growing delay.
        self._attempts: dict[str, int] = {}
        self._refresh_cancel: Any = None
        self._acked_this_stream = False
        self.counters = FrameStreamCounters()
        # The outbox the current session's sidecar writes events to (from its status).
        self.outbox_id = ""
        spool.on_evict = self._async_frame_evicted

    @property
    def pending_count(self) -> int:
        """Return the number of spooled frames the sidecar has not acked yet."""
        return self.spool.unacked_count

    @property
    def progressed(self) -> bool:
        """Return whether the last session delivered an ack."""
        return self._acked_this_stream

    def has_room(self, size: int) -> bool:
        """Return whether the spool takes `size` more bytes without nearing its limit."""
        spool = self.spool
        return spool.used_bytes + size <= spool.max_bytes * SPOOL_HIGH_WATER

    @callback
    def _async_frame_evicted(self, frame: SpooledFrame) -> None:
        """Count a frame the spool gave up on."""
        self.counters.dropped += 1
        self._cameras.async_frame_dropped(frame.camera_id)

    async def async_submit(self, frame: FrameIn) -> bool:
        """Spool a frame; it is sent now or as soon as the sidecar is back.

        Returns False when the spool refused it (logged, with a repair issue). A frame of a
        camera whose analysis is paused is let go: it counts as handled, and is not sent.
        """
        self._cameras.async_register(frame.camera_id, frame.camera_id)
        if self._analysis_enabled is not None and not self._analysis_enabled(frame.camera_id):
            self.counters.paused += 1
            return True
        if len(frame.image) > self.max_frame_bytes:
            self._async_oversized(
                frame.camera_id, frame.source_ref or frame.client_ref, len(frame.image)
            )
            return False
        entry = await self.spool.async_add(frame)
        if entry is None:
            self.counters.refused += 1
            return False
        call = self._call
        if (
            call is not None
            and self._pump_idle
            and self._queue.empty()
            and not self._window.locked()
        ):
            # Nothing waits to go before it and the stream has room: send it now, rather than
            # wake the pump for it (a loop wake-up less per frame).
            await self._window.acquire()  # has room: returns at once
            sending = self._in_flight[entry.key] = entry.to_frame(frame.image)
            call.send(sending)
        else:
            self._keep_fresh(entry.key, frame.image)
            self._queue.put_nowait(entry.key)
        self.counters.submitted += 1
        self._cameras.async_frame_sent(frame.camera_id)
        return True

    def _keep_fresh(self, key: str, image: bytes) -> None:
        """Keep a spooled image for its first send; the oldest go back to being read from disk."""
        self._fresh[key] = image
        self._fresh_bytes += len(image)
        while self._fresh_bytes > SEND_CACHE_BYTES:
            self._fresh_bytes -= len(self._fresh.popitem(last=False)[1])

    def _take_fresh(self, key: str) -> bytes | None:
        if (image := self._fresh.pop(key, None)) is not None:
            self._fresh_bytes -= len(image)
        return image

    @callback
    def _async_oversized(self, camera_id: str, what: str, size: int) -> None:
        """Count and log a frame too large to send."""
        self.counters.oversized += 1
        self._cameras.async_frame_rejected(camera_id, "too_many_bytes", announce=False)
        _LOGGER.warning(
            "Frame %s of camera %s is %s bytes, more than the %s a frame may have; not sent",
            what,
            camera_id,
            size,
            self.max_frame_bytes,
        )

    async def async_session(self, status: ServerStatus, connected: Callable[[], None]) -> None:
        """Send every spooled frame, then new ones, and take the acks until the stream ends."""
        self._acked_this_stream = False
        self.outbox_id = status.events.outbox_id
        connected()
        self._in_flight.clear()
        window = self._window = asyncio.Semaphore(self._max_in_flight)
        call = self._client.open_frame_stream(self._async_handle_acks)
        pump = asyncio.create_task(self._async_pump(call, window), name=f"{DOMAIN} frame pump")
        pump.add_done_callback(partial(_pump_ended, call))
        self._call = call
        try:
            await call.wait()
        except ResourceExhausted:
            await self._async_drop_largest_in_flight()
            raise
        finally:
            self._call, self._pump_idle = None, False
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            await call.close()

    async def async_retry_after(self, err: HomeSecurityAIError) -> Retry:
        """Reconnect with the usual backoff."""
        self.counters.reconnects += 1
        return Retry.BACKOFF

    @callback
    def async_stopped(self) -> None:
        """Cancel the retries and the status refresh still due: the stream is stopped."""
        for cancel in self._retry_timers:
            cancel()
        self._retry_timers.clear()
        if self._refresh_cancel is not None:
            self._refresh_cancel()
            self._refresh_cancel = None

    async def _async_drop_largest_in_flight(self) -> None:
        """Give up the largest frame of a stream that ended on a message too large."""
        if not self._in_flight:
            return
        key, frame = max(self._in_flight.items(), key=lambda item: len(item[1].image))
        self._in_flight.pop(key)
        self._async_oversized(frame.camera_id, frame.source_ref or key, len(frame.image))
        await self.spool.async_remove([key])

    async def _async_pump(self, call: Duplex[FrameIn, FrameAck], window: asyncio.Semaphore) -> None:
        """Send every spooled frame first, then whatever gets queued: retries, and frames
        submitted while the stream had no room or other frames waited."""
        while not self._queue.empty():
            self._queue.get_nowait()
        replay = self.spool.keys()
        for key in replay:
            if (frame := await self._async_take(key, window)) is not None:
                self.counters.resent += 1
                call.send(frame)
        while True:
            self._pump_idle = True
            try:
                key = await self._queue.get()
            finally:
                self._pump_idle = False
            if (frame := await self._async_take(key, window)) is not None:
                call.send(frame)

    async def async_take(self, key: str) -> FrameIn | None:
        """Wait for room on the current stream and take a spooled frame out to send.

        Returns None when the frame is gone or already on the stream.
        """
        return await self._async_take(key, self._window)

    async def _async_take(self, key: str, window: asyncio.Semaphore) -> FrameIn | None:
        """Wait for room on the stream and read a spooled frame."""
        if (entry := self.spool.get(key)) is None or key in self._in_flight:
            if entry is None:
                self._take_fresh(key)
            return None
        if entry.size > self.max_frame_bytes:
            # Spooled by an older release, or the limit went down.
            self._async_oversized(entry.camera_id, entry.source_ref or key, entry.size)
            await self.spool.async_remove([key])
            return None
        await window.acquire()
        if (image := self._take_fresh(key)) is not None and (entry := self.spool.get(key)):
            # The same bytes as on disk: the spool wrote them before the frame was queued.
            frame: FrameIn | None = entry.to_frame(image)
        else:
            frame = await self.spool.async_read(key)
        if frame is None or key in self._in_flight:
            window.release()
            return None
        self._in_flight[key] = frame
        return frame

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
        """Refresh the server's status once per refresh delay, however many acks."""
        if self._refresh_cancel is not None:
            return

        @callback
        def _refresh(_now: Any) -> None:
            self._refresh_cancel = None
            self._entry.async_create_background_task(
                self.hass, self._coordinator.async_request_refresh(), f"{DOMAIN} status refresh"
            )

        self._refresh_cancel = async_call_later(self.hass, self._status_refresh_delay, _refresh)

    @callback
    def _async_handle_acks(self, acks: list[FrameAck]) -> None:
        for ack in acks:
            self.async_handle_ack(ack)

    @callback
    def async_handle_ack(self, ack: FrameAck) -> None:
        """Take the sidecar's answer about a frame on the stream."""
        frame = self._in_flight.pop(ack.client_ref, None)
        if frame is None:
            _LOGGER.debug("Ack for a frame no longer waiting: %s", ack.client_ref)
            return
        self._window.release()
        self._acked_this_stream = True
        self.counters.acked += 1
        self._cameras.async_register(frame.camera_id, frame.camera_id)
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
        # Counters and latencies of the server device follow the frames.
        self._schedule_status_refresh()
        if ack.status == AckStatus.REJECTED:
            reason = ack.reject_reason.name.lower()
            self.counters.rejected += 1
            self.counters.reject_reasons[reason] += 1
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
            self._cameras.async_frame_rejected(frame.camera_id, reason)
            return
        self.spool.async_mark_acked(ack.client_ref, len(ack.detections))
        if (
            ack.status == AckStatus.DUPLICATE
            and ack.covered_sequence > 0
            and self._event_stored(self.outbox_id, ack.covered_sequence)
        ):
            # An event Home Assistant has stored covers the content: no new event will.
            # Without that (not covered yet, or its event not stored yet) the frame stays
            # until the covering event arrives through the event stream.
            self._entry.async_create_background_task(
                self.hass,
                self.spool.async_release_keys([ack.client_ref]),
                f"{DOMAIN} unspool",
            )
        self._cameras.async_frame_analyzed(
            frame.camera_id,
            frame.image,
            frame.client_ref,
            detections=ack.detections,
            width=ack.image_width,
            height=ack.image_height,
            detector=ack.detector or None,
            captured_at=dt_util.utc_from_timestamp(frame.captured_at_ms / 1000),
            duplicate=ack.status == AckStatus.DUPLICATE,
        )


def _pump_ended(call: Duplex[FrameIn, FrameAck], pump: asyncio.Task[None]) -> None:
    """A pump that failed (reading the spool) ends its call with the reason."""
    if not pump.cancelled() and (error := pump.exception()) is not None:
        call.fail(error)
