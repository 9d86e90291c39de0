"""Refused calls are logged at most once per address and minute, with a count of the rest."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from sidecar_testlib import TOKEN
from testlib.fakes import FakeClock

from gpu_server._generated import service_pb2_grpc, status_pb2
from gpu_server.config import load_config
from gpu_server.grpc_api.auth import RefusalLog, peer_address
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector
from gpu_server.server import GRPCServer

WRONG = (("authorization", "Bearer wrong-token"),)


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gpu_server.grpc_api.auth"]


async def test_many_refused_calls_give_one_line_per_minute(
    hog_detector: HogPeopleDetector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    config = load_config(
        env={},
        overrides={
            "host": "127.0.0.1", "port": 0, "token": TOKEN, "tls.mode": "off", "data_dir": tmp_path,
            "models_dir": tmp_path, "llm.enabled": False,
        },
    )
    server = GRPCServer(config, detector=DetectorSelection(hog_detector), clock=clock)
    port = await server.start()
    caplog.set_level(logging.WARNING, logger="gpu_server.grpc_api.auth")
    try:
        # A new channel per burst: the port differs, the address does not.
        for _burst in range(4):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = service_pb2_grpc.SecurityAIStub(channel)
                for _ in range(50):
                    with pytest.raises(grpc.aio.AioRpcError):
                        await stub.GetStatus(status_pb2.GetStatusRequest(), metadata=WRONG)
        assert refusal_lines(caplog) == [
            "refused /home_security_ai.v1.SecurityAI/GetStatus from 127.0.0.1: invalid bearer token"
        ]

        clock.advance(59.0)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.SecurityAIStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetStatus(status_pb2.GetStatusRequest())
            assert len(refusal_lines(caplog)) == 1
            clock.advance(1.0)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetStatus(status_pb2.GetStatusRequest())
        lines = refusal_lines(caplog)
        assert len(lines) == 2
        assert lines[1] == (
            "refused /home_security_ai.v1.SecurityAI/GetStatus from 127.0.0.1: missing "
            "'authorization: Bearer <token>' metadata (and 200 more calls from there since "
            "the last report)"
        )
        assert len(server.refusals) == 1
    finally:
        await server.stop(0)


def test_each_address_has_its_own_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RefusalLog(interval_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="gpu_server.grpc_api.auth")
    for port in range(1000, 1100):
        log.refused(f"ipv4:10.0.0.5:{port}", "/m", "invalid bearer token")
        log.refused(f"ipv6:[fd00::7]:{port}", "/m", "invalid bearer token")
    assert len(refusal_lines(caplog)) == 2
    now[0] = 61.0
    log.refused("ipv6:[fd00::7]:2000", "/m", "invalid bearer token")
    lines = refusal_lines(caplog)
    assert len(lines) == 3
    assert "from fd00::7" in lines[2]
    assert "and 99 more calls" in lines[2]


def test_the_address_table_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    log = RefusalLog(max_peers=8, clock=lambda: 0.0)
    caplog.set_level(logging.WARNING, logger="gpu_server.grpc_api.auth")
    for host in range(100):
        log.refused(f"ipv4:10.0.1.{host}:4000", "/m", "invalid bearer token")
    assert len(log) == 8
    # The most recent addresses are the ones kept.
    log.refused("ipv4:10.0.1.99:4001", "/m", "invalid bearer token")
    assert len(refusal_lines(caplog)) == 100


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:50000", "127.0.0.1"),
        ("ipv6:[::1]:50000", "::1"),
        ("unix:/run/sidecar.sock", "unix:/run/sidecar.sock"),
    ],
)
def test_peer_address(peer: str, address: str) -> None:
    assert peer_address(peer) == address


