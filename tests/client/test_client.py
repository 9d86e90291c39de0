"""Tests for the gRPC client against the real sidecar."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio
from integration.sidecar_process import Sidecar, bus_photo, expected_detector

from custom_components.home_security_ai.client import (
    AckStatus,
    AuthFailed,
    CannotConnect,
    FrameAck,
    FrameIn,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    RejectReason,
)
from custom_components.home_security_ai.client.client import _format_target
from custom_components.home_security_ai.client.rpc_errors import map_rpc_error

from .frames import upload_frame


async def test_get_status(shared_sidecar: Sidecar) -> None:
    """Status comes back as plain data."""
    client = HomeSecurityAIClient(shared_sidecar.host, shared_sidecar.port, shared_sidecar.token)
    status = await client.get_status()
    await client.close()
    await client.close()
    assert status.server_id == shared_sidecar.server_id
    assert (status.detector.name, status.detector.fallback) == expected_detector()
    # With or without a GPU on this machine: available exactly when NVML names a device,
    # and a reason when not.
    assert status.gpu.available is bool(status.gpu.devices)
    if status.gpu.available:
        assert status.gpu.devices[0].memory_total_bytes > 0
    else:
        assert status.gpu.reason
    # The model zoo: a memory budget, nothing loaded until something needs it.
    assert status.model_zoo.budget_bytes > 0
    assert status.model_zoo.used_bytes == 0
    assert status.model_zoo.loaded == ()


async def test_stream_frames(shared_sidecar: Sidecar) -> None:
    """Good frames are analysed, duplicates recognised, bad ones rejected in their acks."""
    photo = bus_photo()
    client = HomeSecurityAIClient(shared_sidecar.host, shared_sidecar.port, shared_sidecar.token)
    frames = [
        upload_frame("good", photo),
        upload_frame("not-an-image", b"hello", digest=False),
        upload_frame("truncated", photo[:4000]),
        upload_frame("again", photo),
    ]

    async def outgoing() -> AsyncIterator[FrameIn]:
        for frame in frames:
            yield frame

    acks: dict[str, FrameAck] = {}
    async for ack in client.stream_frames(outgoing()):
        acks[ack.client_ref] = ack
    await client.close()

    assert set(acks) == {"good", "not-an-image", "truncated", "again"}
    good = acks["good"]
    assert good.status in (AckStatus.ACCEPTED, AckStatus.DUPLICATE)
    assert (good.image_width, good.image_height) == (810, 1080)
    assert good.detections
    # bus.jpg: people, and (for the COCO detector, not HOG) the bus behind them.
    labels = {det.label for det in good.detections}
    assert "person" in labels
    assert labels <= {"person", "bus"}
    assert all(0 <= det.confidence <= 1 for det in good.detections)
    assert good.detector == expected_detector()[0]
    assert acks["not-an-image"].status == AckStatus.REJECTED
    assert acks["not-an-image"].reject_reason == RejectReason.NOT_AN_IMAGE
    assert acks["not-an-image"].status_code == 3
    assert acks["truncated"].reject_reason == RejectReason.TRUNCATED
    assert acks["again"].status == AckStatus.DUPLICATE
    assert acks["again"].detections == good.detections


async def test_wrong_token(shared_sidecar: Sidecar) -> None:
    """A wrong token raises AuthFailed for unary calls and streams."""
    client = HomeSecurityAIClient(shared_sidecar.host, shared_sidecar.port, "wrong")
    with pytest.raises(AuthFailed):
        await client.get_status()

    async def outgoing() -> AsyncIterator[FrameIn]:
        yield upload_frame("x", b"x")

    with pytest.raises(AuthFailed):
        async for _ack in client.stream_frames(outgoing()):
            pass
    await client.close()


async def test_cannot_connect(socket_enabled: None) -> None:
    """A closed port raises CannotConnect."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = HomeSecurityAIClient("127.0.0.1", port, "token", timeout=5)
    with pytest.raises(CannotConnect):
        await client.get_status()
    await client.close()


def test_error_mapping() -> None:
    """gRPC errors never leak; unexpected codes become the base error."""
    internal = aio.AioRpcError(grpc.StatusCode.INTERNAL, aio.Metadata(), aio.Metadata(), "bad")
    error = map_rpc_error(internal)
    assert type(error) is HomeSecurityAIError
    assert isinstance(
        map_rpc_error(
            aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED, aio.Metadata(), aio.Metadata(), "slow"
            )
        ),
        CannotConnect,
    )


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("127.0.0.1", "127.0.0.1:50051"),
        ("sidecar.local", "sidecar.local:50051"),
        ("::1", "ipv6:[::1]:50051"),
    ],
)
def test_target(host: str, target: str) -> None:
    """IPv6 addresses are bracketed."""
    assert _format_target(host, 50051) == target
