"""Fixtures for the events tests: a real server with a scripted detector and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from events_testlib import EventsServer, ScriptedDetector
from grpc_health.v1 import health_pb2_grpc
from sidecar_testlib import TOKEN
from testlib.fakes import FakeClock

from gpu_server._generated import service_pb2_grpc
from gpu_server.config import load_config
from gpu_server.ingest.detect import DetectorSelection
from gpu_server.risk.analysis import RiskAnalysis
from gpu_server.server import GRPCServer


@pytest.fixture(scope="session")
def scripted() -> DetectorSelection:
    return DetectorSelection(ScriptedDetector())


@pytest.fixture
async def start_events(
    tmp_path: Path, scripted: DetectorSelection
) -> AsyncIterator[Callable[..., Any]]:
    """Start real servers (127.0.0.1, free port, rules unless `risk` is given, fake clock)."""
    running: list[EventsServer] = []

    async def start(
        *, data_dir: Path | None = None, risk: RiskAnalysis | None = None,
        clock: FakeClock | None = None, **overrides: Any,
    ) -> EventsServer:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "token": TOKEN,
            "tls.mode": "off",
            "data_dir": data_dir or tmp_path / "data",
            "models_dir": tmp_path / "no-models",
            "grace_period_s": 1.0,
            "llm.enabled": False,
            # The tests close windows themselves with tick(); the background check stays idle.
            "events.tick_s": 60.0,
            "events.window_s": 90.0,
            "events.idle_s": 30.0,
        }
        settings.update({key.replace("__", "."): value for key, value in overrides.items()})
        config = load_config(env={}, overrides=settings)
        fake = clock or FakeClock()
        server = GRPCServer(config, detector=scripted, clock=fake, risk=risk)
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        item = EventsServer(
            server, channel, service_pb2_grpc.SecurityAIStub(channel),
            health_pb2_grpc.HealthStub(channel), fake,
        )
        running.append(item)
        return item

    yield start
    for item in running:
        await item.channel.close()
        await item.server.stop(0)
