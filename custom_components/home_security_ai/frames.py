"""The frame pipeline: one long-lived SubmitFrames stream to the sidecar.

Frames are queued here by the sources, sent on a single gRPC stream and kept until
their ack arrives. When the stream drops, the connection is marked down (entities
go unavailable), the pipeline reconnects with exponential backoff and resends every
frame that was not acked yet; the sidecar deduplicates by content hash, so a resend
is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util import dt as dt_util

from .client import (
    AckStatus,
    AuthFailed,
    Detection,
    FrameAck,
    FrameIn,
    HomeSecurityAIClient,
    HomeSecurityAIError,
)
from .const import (
    DOMAIN,
    MAX_PENDING_FRAMES,
    RECONNECT_BACKOFF_INITIAL,
    RECONNECT_BACKOFF_MAX,
    signal_camera_updated,
    signal_connection,
    signal_new_camera,
)

if TYPE_CHECKING:
    from .coordinator import HomeSecurityAIConfigEntry, HomeSecurityAIStatusCoordinator

_LOGGER = logging.getLogger(__name__)

AckCallback: TypeAlias = Callable[[FrameAck], None]


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

    @property
    def label_counts(self) -> dict[str, int]:
        """Return how many objects of each label the last frame holds."""
        return dict(Counter(det.label for det in self.detections))


@dataclass(kw_only=True, slots=True)
class _Pending:
    frame: FrameIn
    on_ack: AckCallback | None = None
    on_drop: Callable[[], None] | None = None


@dataclass(kw_only=True)
class PipelineCounters:
    """Totals of the pipeline since the entry was set up."""

    submitted: int = 0
    acked: int = 0
    rejected: int = 0
    dropped: int = 0
    resent: int = 0
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
        *,
        max_pending: int | None = None,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
    ) -> None:
        """Set up an idle pipeline; `async_run` starts streaming."""
        self.hass = hass
        self._entry = entry
        self._client = client
        self._coordinator = coordinator
        self._max_pending = MAX_PENDING_FRAMES if max_pending is None else max_pending
        self._backoff_initial = (
            RECONNECT_BACKOFF_INITIAL if backoff_initial is None else backoff_initial
        )
        self._backoff_max = RECONNECT_BACKOFF_MAX if backoff_max is None else backoff_max
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.cameras: dict[str, CameraState] = {}
        self.counters = PipelineCounters()
        self.connected = False
        self.last_error: str | None = None

    @property
    def pending_count(self) -> int:
        """Return the number of frames waiting for an ack."""
        return len(self._pending)

    @callback
    def async_register_camera(self, camera_id: str, name: str) -> CameraState:
        """Return the camera's state, announcing the camera if it is new."""
        if (state := self.cameras.get(camera_id)) is not None:
            return state
        state = self.cameras[camera_id] = CameraState(camera_id=camera_id, name=name)
        async_dispatcher_send(self.hass, signal_new_camera(self._entry.entry_id), camera_id)
        return state

    @callback
    def async_submit(
        self,
        frame: FrameIn,
        on_ack: AckCallback | None = None,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        """Queue a frame; it is sent now or as soon as the sidecar is back.

        `on_ack` runs when its ack arrives; `on_drop` if it is given up on because too
        many frames wait for the sidecar.
        """
        camera = self.cameras.get(frame.camera_id)
        if camera is None:
            camera = self.async_register_camera(frame.camera_id, frame.camera_id)
        if len(self._pending) >= self._max_pending:
            _, oldest = self._pending.popitem(last=False)
            self.counters.dropped += 1
            if (dropped_camera := self.cameras.get(oldest.frame.camera_id)) is not None:
                dropped_camera.frames_dropped += 1
            _LOGGER.warning(
                "More than %s frames wait for the sidecar; dropped the oldest (%s from %s)",
                self._max_pending,
                oldest.frame.source_ref,
                oldest.frame.camera_id,
            )
            if oldest.on_drop is not None:
                oldest.on_drop()
        self._pending[frame.client_ref] = _Pending(frame=frame, on_ack=on_ack, on_drop=on_drop)
        self._queue.put_nowait(frame.client_ref)
        self.counters.submitted += 1
        camera.frames_sent += 1

    async def async_run(self) -> None:
        """Keep one frame stream open until cancelled."""
        backoff = self._backoff_initial
        while True:
            try:
                status = await self._client.get_status()
                self._set_connected(True)
                self._coordinator.async_set_updated_data(status)
                backoff = self._backoff_initial
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
            self.counters.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max)

    async def _async_stream(self) -> None:
        async for ack in self._client.stream_frames(self._outgoing()):
            self._handle_ack(ack)
        raise HomeSecurityAIError("The sidecar closed the frame stream")

    async def _outgoing(self) -> AsyncIterator[FrameIn]:
        """Yield unacked frames first, then whatever gets queued."""
        while not self._queue.empty():
            self._queue.get_nowait()
        replay = [pending.frame for pending in self._pending.values()]
        for frame in replay:
            self.counters.resent += 1
            yield frame
        while True:
            client_ref = await self._queue.get()
            if (pending := self._pending.get(client_ref)) is not None:
                yield pending.frame

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
    def _handle_ack(self, ack: FrameAck) -> None:
        pending = self._pending.pop(ack.client_ref, None)
        if pending is None:
            _LOGGER.debug("Ack for a frame no longer waiting: %s", ack.client_ref)
            return
        self.counters.acked += 1
        frame = pending.frame
        camera = self.cameras.get(frame.camera_id)
        if camera is None:
            camera = self.async_register_camera(frame.camera_id, frame.camera_id)
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
        else:
            if ack.status == AckStatus.DUPLICATE:
                camera.frames_duplicate += 1
            else:
                camera.frames_accepted += 1
            camera.last_image = frame.image
            camera.last_image_ref = frame.client_ref
            camera.detections = ack.detections
            camera.image_width = ack.image_width
            camera.image_height = ack.image_height
            camera.detector = ack.detector or None
            camera.last_captured = dt_util.utc_from_timestamp(frame.captured_at_ms / 1000)
            camera.last_analysed = dt_util.utcnow()
        if pending.on_ack is not None:
            pending.on_ack(ack)
        # Counters and latencies of the server device follow the frames (debounced refresh).
        self._entry.async_create_background_task(
            self.hass, self._coordinator.async_request_refresh(), f"{DOMAIN} status refresh"
        )
        async_dispatcher_send(
            self.hass, signal_camera_updated(self._entry.entry_id, frame.camera_id)
        )
