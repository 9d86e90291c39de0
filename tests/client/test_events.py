"""Tests for the client's event API against the real sidecar."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from integration.sidecar_process import Sidecar, bus_photo

from custom_components.home_security_ai.client import (
    AckStatus,
    CameraSettings,
    EventKind,
    FailedPrecondition,
    FrameIn,
    FrameSource,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    NotSupported,
    RiskLevel,
    SecurityEvent,
    Zone,
)
from custom_components.home_security_ai.client.rpc_errors import map_rpc_error

WHOLE_IMAGE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


@pytest.fixture
def events_sidecar(tmp_path: Path) -> Generator[Sidecar]:
    """A sidecar of the test's own whose batches close only when asked to."""
    sidecar = Sidecar(
        root=tmp_path / "sidecar",
        env={
            "HSAI_BATCH_WINDOW_S": "600",
            "HSAI_BATCH_IDLE_S": "600",
            "HSAI_FAST_PATH_LABELS": "giraffe",
        },
    )
    sidecar.start()
    yield sidecar
    sidecar.stop()


async def _first(events: AsyncIterator[SecurityEvent]) -> SecurityEvent:
    async for event in events:
        return event
    raise AssertionError("the event stream ended")


async def test_events_round_trip(events_sidecar: Sidecar) -> None:
    """Configure, frames, AnalyzeNow, SubscribeEvents and AckEvents work together."""
    client = HomeSecurityAIClient(events_sidecar.host, events_sidecar.port, events_sidecar.token)
    configured = await client.configure(
        [
            CameraSettings(
                camera_id="front_door",
                display_name="Front Door",
                zones=(Zone(name="everything", kind="yard", points=WHOLE_IMAGE),),
                batch_window_s=600,
                idle_timeout_s=600,
                time_zone="Europe/Berlin",
            )
        ]
    )
    assert configured == ["front_door"]

    photo = bus_photo()
    digest = hashlib.sha256(photo).hexdigest()

    async def outgoing() -> AsyncIterator[FrameIn]:
        yield FrameIn(
            camera_id="front_door",
            image=photo,
            client_ref="one",
            captured_at_ms=1_700_000_000_000,
            source=FrameSource.UPLOAD,
            content_sha256=digest,
        )

    acks = [ack async for ack in client.stream_frames(outgoing())]
    assert [ack.status for ack in acks] == [AckStatus.ACCEPTED]

    result = await client.analyze_now("front_door")
    assert result.closed is True
    assert result.batch_id
    again = await client.analyze_now("front_door")
    assert again.closed is False

    event = await _first(client.subscribe_events(0))
    assert event.sequence >= 1
    assert event.event_id
    assert event.camera_id == "front_door"
    assert event.kind is EventKind.SECURITY
    assert event.frame_sha256s == (digest,)
    assert event.risk_level is not RiskLevel.UNSPECIFIED
    assert 0 <= event.risk_score <= 100
    assert event.summary
    assert event.fallback is True  # rules answer: the LLM is off in tests
    assert event.model
    assert event.detections
    assert event.detections[0].detection.label == "person"
    assert event.detections[0].frame_sha256 == digest
    assert "everything" in event.zones
    assert event.started_at_ms <= event.ended_at_ms
    assert event.created_at_ms > 0

    # The outbox keeps it until acknowledged: a new subscription gets it again.
    assert (await _first(client.subscribe_events(0))).event_id == event.event_id
    outbox_id = (await client.get_status()).events.outbox_id
    assert outbox_id
    # A cursor of another outbox, or beyond the last written sequence, is refused.
    with pytest.raises(FailedPrecondition):
        await client.ack_events(event.sequence, "another-outbox")
    with pytest.raises(FailedPrecondition):
        await client.ack_events(event.sequence + 1, outbox_id)
    assert await client.ack_events(event.sequence, outbox_id) == 1
    status = await client.get_status()
    assert status.events.outbox_depth == 0
    assert status.events.last_sequence == event.sequence
    assert await client.ack_events(event.sequence) == 0

    # The same content again: a duplicate that names the stored event covering it.
    dup = [ack async for ack in client.stream_frames(outgoing())]
    assert [ack.status for ack in dup] == [AckStatus.DUPLICATE]
    assert dup[0].covered_sequence == event.sequence
    assert acks[0].covered_sequence == 0
    await client.close()


async def test_configure_refuses_bad_zones(events_sidecar: Sidecar) -> None:
    """Settings the sidecar cannot use raise the client's error."""
    client = HomeSecurityAIClient(events_sidecar.host, events_sidecar.port, events_sidecar.token)
    with pytest.raises(HomeSecurityAIError):
        await client.configure(
            [
                CameraSettings(
                    camera_id="Front Door!",
                    zones=(Zone(name="x", kind="yard", points=WHOLE_IMAGE),),
                )
            ]
        )
    await client.close()


def test_unimplemented_is_not_supported() -> None:
    """A sidecar too old for a call answers UNIMPLEMENTED: a clear error of its own."""
    error = map_rpc_error(
        aio.AioRpcError(grpc.StatusCode.UNIMPLEMENTED, aio.Metadata(), aio.Metadata(), "no")
    )
    assert isinstance(error, NotSupported)
    assert "does not support" in str(error)


def test_failed_precondition_is_its_own_error() -> None:
    """FAILED_PRECONDITION (e.g. an event cursor of another outbox) has an error of its own."""
    error = map_rpc_error(
        aio.AioRpcError(grpc.StatusCode.FAILED_PRECONDITION, aio.Metadata(), aio.Metadata(), "x")
    )
    assert isinstance(error, FailedPrecondition)
