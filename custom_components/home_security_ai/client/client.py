"""Async client for the Home Security AI sidecar, built on grpc.aio."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import grpc
from grpc import aio

from ._generated import events_pb2, frames_pb2, service_pb2_grpc, status_pb2
from .client_loop import CLIENT_LOOP, Duplex
from .errors import (
    AuthFailed,
    CannotConnect,
    FailedPrecondition,
    HomeSecurityAIError,
    NotFound,
    NotSupported,
    ResourceExhausted,
)
from .models import (
    AckStatus,
    AnalyzeNowResult,
    AuditRubric,
    Box,
    CameraFeedback,
    CameraSettings,
    Detection,
    DetectorStatus,
    Dwell,
    EnrichmentStatus,
    EventDetection,
    EventKind,
    EventsStatus,
    FeedbackResult,
    FeedbackVerdict,
    FrameAck,
    FrameCounters,
    FrameIn,
    FrameTimings,
    GpuDevice,
    GpuStatus,
    Incident,
    KnownPerson,
    LanguageModelState,
    LanguageModelStatus,
    LatencyStats,
    LoadedModel,
    ModelZooStatus,
    PersonPose,
    PersonSighting,
    PlateReading,
    Reidentification,
    RejectReason,
    RiskLevel,
    SceneChangeKind,
    SecurityEvent,
    ServerStatus,
    Visitor,
)
from .tls import certificate_server_name

_LOGGER = logging.getLogger(__name__)

MAX_MESSAGE_BYTES: Final = 32 * 1024 * 1024
DEFAULT_TIMEOUT: Final = 10.0

_CONNECT_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)

_E = TypeVar("_E", AckStatus, RejectReason, EventKind, RiskLevel, SceneChangeKind)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _on_client_loop(
    method: Callable[Concatenate[HomeSecurityAIClient, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[HomeSecurityAIClient, _P], Coroutine[Any, Any, _R]]:
    """Run a call of the client on the client loop (client_loop.py), whoever awaits it."""

    async def on_client_loop(
        client: HomeSecurityAIClient, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        return await CLIENT_LOOP.run(method(client, *args, **kwargs))

    on_client_loop.__name__, on_client_loop.__qualname__ = method.__name__, method.__qualname__
    on_client_loop.__doc__ = method.__doc__
    return on_client_loop


def _format_target(host: str, port: int) -> str:
    """Return a gRPC target for a host name, IPv4 or IPv6 address."""
    if ":" in host and not host.startswith("["):
        return f"ipv6:[{host}]:{port}"
    return f"{host}:{port}"


def _map_error(err: grpc.RpcError) -> HomeSecurityAIError:
    """Translate a gRPC error into the client's own errors."""
    if isinstance(err, aio.AioRpcError):
        return _map_status(err.code(), err.details())
    return _map_status(None, str(err))


# Status codes with an error of their own, and how each reads.
_ERRORS: Final[dict[grpc.StatusCode, tuple[type[HomeSecurityAIError], str]]] = {
    grpc.StatusCode.UNAUTHENTICATED: (AuthFailed, "The sidecar refused the token"),
    grpc.StatusCode.UNIMPLEMENTED: (
        NotSupported,
        "The sidecar does not support this call; update it",
    ),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        ResourceExhausted,
        "The sidecar call ran out of resources",
    ),
    grpc.StatusCode.NOT_FOUND: (NotFound, "The sidecar does not know it"),
    grpc.StatusCode.FAILED_PRECONDITION: (
        FailedPrecondition,
        "The sidecar refused the call's premise",
    ),
}


def _map_status(code: grpc.StatusCode | None, details: str | None) -> HomeSecurityAIError:
    if code is not None and code in _ERRORS:
        kind, meaning = _ERRORS[code]
        return kind(f"{meaning}: {details}")
    if code in _CONNECT_CODES:
        return CannotConnect(f"Cannot reach the sidecar ({code}): {details}")
    return HomeSecurityAIError(f"The sidecar answered with an error ({code}): {details}")


def _enum(kind: type[_E], value: int, default: _E) -> _E:
    """Convert a wire value to an enum, tolerating values added later."""
    try:
        return kind(value)
    except ValueError:
        return default


def _frame_to_proto(frame: FrameIn) -> frames_pb2.Frame:
    return frames_pb2.Frame(
        camera_id=frame.camera_id,
        captured_at_ms=frame.captured_at_ms,
        source=frames_pb2.FrameSource.Name(int(frame.source)),
        source_ref=frame.source_ref,
        content_sha256=frame.content_sha256,
        image=frame.image,
        client_ref=frame.client_ref,
    )


def _detection_from_proto(det: frames_pb2.Detection) -> Detection:
    return Detection(
        label=det.label,
        class_id=det.class_id,
        confidence=det.confidence,
        box=Box(x1=det.box.x1, y1=det.box.y1, x2=det.box.x2, y2=det.box.y2),
    )


def _rubric_from_proto(event: events_pb2.SecurityEvent) -> AuditRubric | None:
    if not event.HasField("audit_rubric"):
        return None
    rubric = event.audit_rubric
    return AuditRubric(
        context_used=rubric.context_used,
        coherent=rubric.coherent,
        justified=rubric.justified,
        actionable=rubric.actionable,
        score=round(rubric.score, 2),
    )


def _incident_from_proto(event: events_pb2.SecurityEvent) -> Incident | None:
    if not event.HasField("incident"):
        return None
    incident = event.incident
    return Incident(
        incident_id=incident.incident_id,
        update=incident.update,
        camera_ids=tuple(incident.camera_ids),
        started_at_ms=incident.started_at_ms,
        alert=incident.alert,
        cooldown_remaining_s=incident.cooldown_remaining_s,
        cooldowns=tuple(sorted(incident.cooldowns.items())),
    )


def _person_from_proto(person: events_pb2.PersonSighting) -> PersonSighting:
    box = person.box
    return PersonSighting(
        face_id=person.face_id,
        name=person.name,
        unknown=person.unknown,
        distance=person.distance,
        frame_sha256=person.frame_sha256,
        box=Box(x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2) if person.HasField("box") else None,
    )


def _pose_from_proto(pose: events_pb2.PersonPose) -> PersonPose:
    box = pose.box
    return PersonPose(
        person=pose.person,
        flags=tuple(pose.flags),
        confidence=round(pose.confidence, 3),
        frame_sha256=pose.frame_sha256,
        box=Box(x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2) if pose.HasField("box") else None,
    )


def _plate_from_proto(plate: events_pb2.PlateReading) -> PlateReading:
    return PlateReading(
        text=plate.text,
        normalized=plate.normalized,
        confidence=plate.confidence,
        known=plate.known,
        known_label=plate.known_label,
        suspicious=plate.suspicious,
        frame_sha256=plate.frame_sha256,
    )


def _known_person_from_proto(person: events_pb2.KnownPerson) -> KnownPerson:
    return KnownPerson(
        name=person.name, embeddings=person.embeddings, updated_at_ms=person.updated_at_ms
    )


def _event_from_proto(event: events_pb2.SecurityEvent) -> SecurityEvent:
    return SecurityEvent(
        sequence=event.sequence,
        event_id=event.event_id,
        camera_id=event.camera_id,
        kind=_enum(EventKind, event.kind, EventKind.UNSPECIFIED),
        started_at_ms=event.started_at_ms,
        ended_at_ms=event.ended_at_ms,
        risk_score=event.risk_score,
        risk_level=_enum(RiskLevel, event.risk_level, RiskLevel.UNSPECIFIED),
        summary=event.summary,
        reasoning=event.reasoning,
        recommended_action=event.recommended_action,
        scene_description=event.scene_description,
        failsafe=event.failsafe,
        detections=tuple(
            EventDetection(
                detection=_detection_from_proto(det.detection),
                frame_sha256=det.frame_sha256,
                zones=tuple(det.zones),
            )
            for det in event.detections
        ),
        zones=tuple(event.zones),
        frame_sha256s=tuple(event.frame_sha256s),
        fast_path=event.fast_path,
        fallback=event.fallback,
        fallback_reason=event.fallback_reason,
        model=event.model,
        prompt_version=event.prompt_version,
        scene_change=_enum(SceneChangeKind, event.scene_change, SceneChangeKind.NONE),
        incident=_incident_from_proto(event),
        audit_notes=tuple(event.audit_notes),
        audit_rubric=_rubric_from_proto(event),
        people=tuple(_person_from_proto(person) for person in event.people),
        plates=tuple(_plate_from_proto(plate) for plate in event.plates),
        reidentified=tuple(
            Reidentification(
                camera_id=item.camera_id,
                seconds_ago=round(item.seconds_ago, 1),
                cue=item.cue,
                similarity=round(item.similarity, 3),
            )
            for item in event.reidentified
        ),
        poses=tuple(_pose_from_proto(pose) for pose in event.poses),
        visitors=tuple(
            Visitor(
                visitor_id=item.visitor_id,
                name=item.name or None,
                cue=item.cue,
                visits=item.visits,
                first_seen_ms=item.first_seen_ms,
            )
            for item in event.visitors
        ),
        dwell=tuple(
            Dwell(zone=item.zone, seconds=round(item.seconds, 1)) for item in event.dwell
        ),
        enrichment_notes=tuple(event.enrichment_notes),
        anomaly_score=event.anomaly_score,
        created_at_ms=event.created_at_ms,
    )


def _settings_to_proto(settings: CameraSettings) -> events_pb2.CameraSettings:
    return events_pb2.CameraSettings(
        camera_id=settings.camera_id,
        display_name=settings.display_name,
        zones=[
            events_pb2.Zone(
                name=zone.name,
                kind=zone.kind,
                points=[events_pb2.Point(x=x, y=y) for x, y in zone.points],
            )
            for zone in settings.zones
        ],
        batch_window_s=settings.batch_window_s,
        idle_timeout_s=settings.idle_timeout_s,
        prompt_version=settings.prompt_version,
        time_zone=settings.time_zone,
    )


def _ack_from_proto(ack: frames_pb2.FrameAck) -> FrameAck:
    return FrameAck(
        client_ref=ack.client_ref,
        camera_id=ack.camera_id,
        content_sha256=ack.content_sha256,
        status=_enum(AckStatus, ack.status, AckStatus.UNSPECIFIED),
        status_code=ack.status_code,
        reject_reason=_enum(RejectReason, ack.reject_reason, RejectReason.UNSPECIFIED),
        message=ack.message,
        image_width=ack.image_width,
        image_height=ack.image_height,
        detections=tuple(_detection_from_proto(det) for det in ack.detections),
        detector=ack.detector,
        timings=FrameTimings(
            decode_ms=ack.timings.decode_ms,
            queue_ms=ack.timings.queue_ms,
            inference_ms=ack.timings.inference_ms,
            total_ms=ack.timings.total_ms,
        ),
        covered_sequence=ack.covered_sequence,
    )


def _status_from_proto(status: status_pb2.ServerStatus) -> ServerStatus:
    det = status.detector
    gpu = status.gpu
    return ServerStatus(
        server_id=status.server_id,
        version=status.version,
        uptime_s=status.uptime_s,
        detector=DetectorStatus(
            name=det.name,
            backend=det.backend,
            device=det.device,
            weights=det.weights,
            fallback=det.fallback,
            fallback_reason=det.fallback_reason,
        ),
        queue_depth=status.queue_depth,
        stage_latency={
            stage: LatencyStats(
                count=stats.count,
                mean_ms=stats.mean_ms,
                p50_ms=stats.p50_ms,
                p95_ms=stats.p95_ms,
                max_ms=stats.max_ms,
            )
            for stage, stats in status.stage_latency.items()
        },
        gpu=GpuStatus(
            available=gpu.available,
            reason=gpu.reason,
            driver_version=gpu.driver_version,
            devices=tuple(
                GpuDevice(
                    index=dev.index,
                    name=dev.name,
                    utilization_percent=dev.utilization_percent,
                    memory_used_bytes=dev.memory_used_bytes,
                    memory_total_bytes=dev.memory_total_bytes,
                    temperature_celsius=dev.temperature_celsius,
                )
                for dev in gpu.devices
            ),
        ),
        frames=FrameCounters(
            accepted=status.frames.accepted,
            duplicate=status.frames.duplicate,
            rejected=status.frames.rejected,
        ),
        events=EventsStatus(
            open_batches=status.events.open_batches,
            outbox_depth=status.events.outbox_depth,
            outbox_max_events=status.events.outbox_max_events,
            last_sequence=status.events.last_sequence,
            llm_model=status.events.llm_model,
            llm_unavailable_reason=status.events.llm_unavailable_reason,
            analyses_running=status.events.analyses_running,
            events_created=status.events.events_created,
            outbox_id=status.events.outbox_id,
            outbox_refused_frames=status.events.outbox_refused_frames,
        ),
        language_model=_language_model_from_proto(status.language_model)
        if status.HasField("language_model")
        else LanguageModelStatus(),
        model_zoo=ModelZooStatus(
            budget_bytes=status.model_zoo.budget_bytes,
            used_bytes=status.model_zoo.used_bytes,
            registered=status.model_zoo.registered,
            loaded=tuple(
                LoadedModel(
                    key=model.key,
                    task=model.task,
                    memory_bytes=model.memory_bytes,
                    users=model.users,
                    idle_s=model.idle_s,
                )
                for model in status.model_zoo.loaded
            ),
        ),
        enrichment=EnrichmentStatus(
            faces_available=status.enrichment.faces_available,
            faces_reason=status.enrichment.faces_reason,
            plates_available=status.enrichment.plates_available,
            plates_reason=status.enrichment.plates_reason,
            pose_available=status.enrichment.pose_available,
            pose_reason=status.enrichment.pose_reason,
            known_people=status.enrichment.known_people,
            known_plates=status.enrichment.known_plates,
            batches=status.enrichment.batches,
        ),
        feedback={
            item.camera_id: CameraFeedback(
                false_alarms=item.false_alarms,
                confirmed=item.confirmed,
                calibrated_cases=item.calibrated_cases,
            )
            for item in status.feedback
        },
    )


_MODEL_STATES: Final = {
    status_pb2.LANGUAGE_MODEL_STATE_OFF: LanguageModelState.OFF,
    status_pb2.LANGUAGE_MODEL_STATE_LOADING: LanguageModelState.LOADING,
    status_pb2.LANGUAGE_MODEL_STATE_READY: LanguageModelState.READY,
    status_pb2.LANGUAGE_MODEL_STATE_RESTARTING: LanguageModelState.RESTARTING,
    status_pb2.LANGUAGE_MODEL_STATE_CIRCUIT_OPEN: LanguageModelState.CIRCUIT_OPEN,
    status_pb2.LANGUAGE_MODEL_STATE_UNREACHABLE: LanguageModelState.UNREACHABLE,
    status_pb2.LANGUAGE_MODEL_STATE_FAILED: LanguageModelState.FAILED,
}


def _language_model_from_proto(model: status_pb2.LanguageModelStatus) -> LanguageModelStatus:
    return LanguageModelStatus(
        state=_MODEL_STATES.get(model.state, LanguageModelState.UNKNOWN),
        backend=model.backend,
        model=model.model,
        endpoint=model.endpoint,
        reason=model.reason,
        restarts=model.restarts,
        consecutive_failures=model.consecutive_failures,
        queue_depth=model.queue_depth,
        queue_capacity=model.queue_capacity,
        analyses=model.analyses,
        fallbacks=model.fallbacks,
        retry_in_s=model.retry_in_s,
        authority=model.authority,
        authority_reason=model.authority_reason,
        replaced=model.replaced,
    )


class HomeSecurityAIClient:
    """Talks to one sidecar over one gRPC channel.

    The channel is created lazily inside the running event loop and reused by every
    call; `close()` releases it. With `tls_certificate` (PEM) the channel uses TLS and trusts
    that certificate alone.
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_reconnect_backoff: float = 30.0,
        tls_certificate: str | None = None,
    ) -> None:
        """Remember where the sidecar is; nothing is opened yet."""
        self.host = host
        self.port = port
        self._target = _format_target(host, port)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._max_reconnect_backoff_ms = max(100, int(max_reconnect_backoff * 1000))
        self._channel: aio.Channel | None = None
        self._stub: service_pb2_grpc.SecurityAIAsyncStub | None = None
        self._tls_certificate = tls_certificate
        self._tls_server_name = (
            certificate_server_name(tls_certificate) if tls_certificate else None
        )

    def _get_stub(self) -> service_pb2_grpc.SecurityAIAsyncStub:
        if self._stub is None:
            options: list[tuple[str, Any]] = [
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # Servers accept one ping per 5 minutes by default; stay within that.
                ("grpc.keepalive_time_ms", 300_000),
                ("grpc.keepalive_timeout_ms", 20_000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.initial_reconnect_backoff_ms", min(1000, self._max_reconnect_backoff_ms)),
                ("grpc.min_reconnect_backoff_ms", min(1000, self._max_reconnect_backoff_ms)),
                ("grpc.max_reconnect_backoff_ms", self._max_reconnect_backoff_ms),
            ]
            if self._tls_certificate is None:
                self._channel = aio.insecure_channel(self._target, options=options)
            else:
                if self._tls_server_name is not None:
                    options.append(("grpc.ssl_target_name_override", self._tls_server_name))
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=self._tls_certificate.encode()
                )
                self._channel = aio.secure_channel(self._target, credentials, options=options)
            self._stub = service_pb2_grpc.SecurityAIStub(self._channel)
        return self._stub

    @_on_client_loop
    async def get_status(self) -> ServerStatus:
        """Return the sidecar's status."""
        stub = self._get_stub()
        try:
            response = await stub.GetStatus(
                status_pb2.GetStatusRequest(),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return _status_from_proto(response)

    def stream_frames(self, frames: AsyncIterator[FrameIn]) -> AsyncIterator[FrameAck]:
        """Send frames on one SubmitFrames stream and yield their acks as they come.

        Acks arrive in completion order; match them to frames by `client_ref`.
        The stream ends when `frames` is exhausted and every ack has arrived. The call runs
        on the client loop; `frames` is iterated on the caller's.
        """
        return CLIENT_LOOP.stream(self._stream_frames, frames)

    def open_frame_stream(
        self, on_acks: Callable[[list[FrameAck]], None]
    ) -> Duplex[FrameIn, FrameAck]:
        """Open a SubmitFrames stream fed with `send` (no wait); acks go to `on_acks` on this
        loop, a batch per wake-up. The cheapest way to stream frames from a busy loop."""
        return CLIENT_LOOP.duplex(self._stream_frames, on_acks)

    async def _stream_frames(self, frames: AsyncIterator[FrameIn]) -> AsyncIterator[FrameAck]:
        call = self._get_stub().SubmitFrames(metadata=self._metadata)

        async def write_all() -> None:
            try:
                async for frame in frames:
                    await call.write(_frame_to_proto(frame))
                await call.done_writing()
            except (grpc.RpcError, asyncio.InvalidStateError):
                return  # the call has ended; the read loop reports its status
            except Exception:
                call.cancel()  # end the read loop too, or it would wait forever
                raise

        # The writer is our own task, not grpc's request-iterator consumer: grpc leaves that
        # consumer waiting on the iterator forever when the server ends the call, and a stale
        # consumer would steal frames queued for the next stream.
        writer = asyncio.create_task(write_all(), name="home_security_ai frame writer")
        try:
            # read() returns the next message, or grpc.aio.EOF once the stream has ended.
            while isinstance(ack := await call.read(), frames_pb2.FrameAck):
                yield _ack_from_proto(ack)
        except asyncio.CancelledError:
            # The writer cancels the call when it fails; reading it then raises this.
            if writer.done() and not writer.cancelled() and (error := writer.exception()):
                raise HomeSecurityAIError(f"Sending frames failed: {error}") from error
            raise
        except grpc.RpcError as err:
            if writer.done() and not writer.cancelled() and (error := writer.exception()):
                raise HomeSecurityAIError(f"Sending frames failed: {error}") from error
            # A failed write can surface as a generic error on read: the call's own status
            # (e.g. UNAUTHENTICATED) says what really happened.
            code, details = await call.code(), await call.details()
            if code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
                error = _map_error(err)
            else:
                error = _map_status(code, details)
            if type(error) is HomeSecurityAIError:
                # Unclassified, e.g. a write that raced the server's refusal of the call: a
                # unary call tells a refused token or an unreachable server apart.
                await self.get_status()
            raise error from err
        finally:
            call.cancel()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def subscribe_events(self, after_sequence: int = 0) -> AsyncGenerator[SecurityEvent]:
        """Yield events with a sequence above `after_sequence`: the outbox first, then live.

        The stream stays open until the sidecar ends it (an error) or the caller stops.
        """
        return CLIENT_LOOP.subscribe(partial(self._subscribe_events, after_sequence))

    async def _subscribe_events(self, after_sequence: int) -> AsyncGenerator[SecurityEvent]:
        call = self._get_stub().SubscribeEvents(
            events_pb2.SubscribeEventsRequest(after_sequence=after_sequence),
            metadata=self._metadata,
        )
        try:
            # read() returns the next message, or grpc.aio.EOF once the stream has ended.
            while isinstance(event := await call.read(), events_pb2.SecurityEvent):
                yield _event_from_proto(event)
        except grpc.RpcError as err:
            raise _map_error(err) from err
        finally:
            call.cancel()

    @_on_client_loop
    async def ack_events(self, up_to_sequence: int, outbox_id: str = "") -> int:
        """Tell the sidecar every event up to `up_to_sequence` is stored; return how many went.

        `outbox_id` names the outbox the sequence belongs to; the sidecar answers
        FailedPrecondition (nothing removed) when it is not its own, or when the sequence is
        beyond its last written one: the caller's cursor is void.
        """
        try:
            response = await self._get_stub().AckEvents(
                events_pb2.AckEventsRequest(up_to_sequence=up_to_sequence, outbox_id=outbox_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return int(response.removed)

    @_on_client_loop
    async def configure(self, cameras: Sequence[CameraSettings]) -> list[str]:
        """Send per-camera settings; return the camera ids the sidecar took."""
        try:
            response = await self._get_stub().Configure(
                events_pb2.ConfigureRequest(cameras=[_settings_to_proto(cam) for cam in cameras]),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return list(response.configured_camera_ids)

    @_on_client_loop
    async def analyze_now(self, camera_id: str) -> AnalyzeNowResult:
        """Close the camera's open batch and have it analyzed now."""
        try:
            response = await self._get_stub().AnalyzeNow(
                events_pb2.AnalyzeNowRequest(camera_id=camera_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return AnalyzeNowResult(closed=response.closed, batch_id=response.batch_id)

    @_on_client_loop
    async def reset_scene(self, camera_id: str) -> bool:
        """Make the camera's latest frame its usual view; False if the sidecar saw none yet."""
        try:
            response = await self._get_stub().ResetScene(
                events_pb2.ResetSceneRequest(camera_id=camera_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return bool(response.adopted)

    @_on_client_loop
    async def feedback(
        self,
        event_id: str,
        verdict: FeedbackVerdict,
        *,
        actual_level: RiskLevel = RiskLevel.UNSPECIFIED,
        what: str = "",
    ) -> FeedbackResult:
        """Tell the sidecar the household's verdict on one of its events."""
        try:
            response = await self._get_stub().Feedback(
                events_pb2.FeedbackRequest(
                    event_id=event_id,
                    verdict=events_pb2.FeedbackVerdict.Name(int(verdict)),
                    actual_level=events_pb2.RiskLevel.Name(int(actual_level)),
                    what=what,
                ),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return FeedbackResult(
            camera_id=response.camera_id,
            false_alarms=response.false_alarms,
            calibrated=response.calibrated,
        )

    @_on_client_loop
    async def enroll_person(
        self, name: str, *, face_id: str = "", image: bytes = b""
    ) -> KnownPerson:
        """Add a face to a known person: one from an event (`PersonSighting.face_id`) or the
        largest face in a JPEG or PNG image."""
        request = (
            events_pb2.EnrollPersonRequest(name=name, face_id=face_id)
            if face_id
            else events_pb2.EnrollPersonRequest(name=name, image=image)
        )
        try:
            response = await self._get_stub().EnrollPerson(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return _known_person_from_proto(response)

    @_on_client_loop
    async def remove_person(self, name: str) -> int:
        """Forget a known person; how many enrolled faces were deleted (0: nobody by that name)."""
        try:
            response = await self._get_stub().RemovePerson(
                events_pb2.RemovePersonRequest(name=name),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return int(response.embeddings_removed)

    @_on_client_loop
    async def list_people(self) -> list[KnownPerson]:
        try:
            response = await self._get_stub().ListPeople(
                events_pb2.ListPeopleRequest(), metadata=self._metadata, timeout=self._timeout
            )
        except grpc.RpcError as err:
            raise _map_error(err) from err
        return [_known_person_from_proto(person) for person in response.people]

    @_on_client_loop
    async def close(self) -> None:
        """Close the channel; the client can be used again afterwards."""
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()
