"""Async client for the Home Security AI sidecar, built on grpc.aio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import grpc
from grpc import aio

from ._generated import events_pb2, frames_pb2, service_pb2_grpc, status_pb2
from .client_loop import CLIENT_LOOP, Duplex
from .convert import (
    ack_from_proto,
    analyze_now_from_proto,
    event_from_proto,
    feedback_result_from_proto,
    feedback_to_proto,
    frame_to_proto,
    known_person_from_proto,
    settings_to_proto,
    status_from_proto,
)
from .errors import HomeSecurityAIError
from .models import (
    AnalyzeNowResult,
    CameraSettings,
    FeedbackResult,
    FeedbackVerdict,
    FrameAck,
    FrameIn,
    KnownPerson,
    RiskLevel,
    SecurityEvent,
    ServerStatus,
)
from .rpc_errors import error_for_status, map_rpc_error, maps_rpc_errors
from .tls import certificate_server_name

MAX_MESSAGE_BYTES: Final = 32 * 1024 * 1024
DEFAULT_TIMEOUT: Final = 10.0

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
    @maps_rpc_errors
    async def get_status(self) -> ServerStatus:
        """Return the sidecar's status."""
        stub = self._get_stub()
        response = await stub.GetStatus(
            status_pb2.GetStatusRequest(),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return status_from_proto(response)

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
                    await call.write(frame_to_proto(frame))
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
                yield ack_from_proto(ack)
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
                error = map_rpc_error(err)
            else:
                error = error_for_status(code, details)
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
                yield event_from_proto(event)
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err
        finally:
            call.cancel()

    @_on_client_loop
    @maps_rpc_errors
    async def ack_events(self, up_to_sequence: int, outbox_id: str = "") -> int:
        """Tell the sidecar every event up to `up_to_sequence` is stored; return how many went.

        `outbox_id` names the outbox the sequence belongs to; the sidecar answers
        FailedPrecondition (nothing removed) when it is not its own, or when the sequence is
        beyond its last written one: the caller's cursor is void.
        """
        response = await self._get_stub().AckEvents(
            events_pb2.AckEventsRequest(up_to_sequence=up_to_sequence, outbox_id=outbox_id),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return int(response.removed)

    @_on_client_loop
    @maps_rpc_errors
    async def configure(self, cameras: Sequence[CameraSettings]) -> list[str]:
        """Send per-camera settings; return the camera ids the sidecar took."""
        response = await self._get_stub().Configure(
            events_pb2.ConfigureRequest(cameras=[settings_to_proto(cam) for cam in cameras]),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return list(response.configured_camera_ids)

    @_on_client_loop
    @maps_rpc_errors
    async def analyze_now(self, camera_id: str) -> AnalyzeNowResult:
        """Close the camera's open batch and have it analyzed now."""
        response = await self._get_stub().AnalyzeNow(
            events_pb2.AnalyzeNowRequest(camera_id=camera_id),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return analyze_now_from_proto(response)

    @_on_client_loop
    @maps_rpc_errors
    async def reset_scene(self, camera_id: str) -> bool:
        """Make the camera's latest frame its usual view; False if the sidecar saw none yet."""
        response = await self._get_stub().ResetScene(
            events_pb2.ResetSceneRequest(camera_id=camera_id),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return bool(response.adopted)

    @_on_client_loop
    @maps_rpc_errors
    async def feedback(
        self,
        event_id: str,
        verdict: FeedbackVerdict,
        *,
        actual_level: RiskLevel = RiskLevel.UNSPECIFIED,
        what: str = "",
    ) -> FeedbackResult:
        """Tell the sidecar the household's verdict on one of its events."""
        response = await self._get_stub().Feedback(
            feedback_to_proto(event_id, verdict, actual_level, what),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return feedback_result_from_proto(response)

    @_on_client_loop
    @maps_rpc_errors
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
        response = await self._get_stub().EnrollPerson(
            request, metadata=self._metadata, timeout=self._timeout
        )
        return known_person_from_proto(response)

    @_on_client_loop
    @maps_rpc_errors
    async def remove_person(self, name: str) -> int:
        """Forget a known person; how many enrolled faces were deleted (0: nobody by that name)."""
        response = await self._get_stub().RemovePerson(
            events_pb2.RemovePersonRequest(name=name),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return int(response.embeddings_removed)

    @_on_client_loop
    @maps_rpc_errors
    async def list_people(self) -> list[KnownPerson]:
        response = await self._get_stub().ListPeople(
            events_pb2.ListPeopleRequest(), metadata=self._metadata, timeout=self._timeout
        )
        return [known_person_from_proto(person) for person in response.people]

    @_on_client_loop
    async def close(self) -> None:
        """Close the channel; the client can be used again afterwards."""
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()
