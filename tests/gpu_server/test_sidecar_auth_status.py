"""Bearer-token enforcement on every service, and the GetStatus answer."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sidecar_testlib import AUTH, TOKEN, Running, StartServer, frame

from gpu_server import __version__
from gpu_server._generated import status_pb2
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector
from gpu_server.models.registry import ModelSpec
from gpu_server.monitor.latency import STAGES
from gpu_server.server import SERVICE_NAME

BAD_METADATA = [
    pytest.param((), id="missing"),
    pytest.param((("authorization", "Bearer wrong-token"),), id="wrong"),
    pytest.param((("authorization", TOKEN),), id="no-scheme"),
    pytest.param((("authorization", f"Basic {TOKEN}"),), id="other-scheme"),
]


@pytest.fixture
async def running(start_server: StartServer, hog_detector: HogPeopleDetector) -> Running:
    return await start_server(DetectorSelection(hog_detector))


@pytest.mark.parametrize("metadata", BAD_METADATA)
async def test_every_rpc_needs_the_token(
    running: Running, metadata: tuple[tuple[str, str], ...], bus_jpeg: bytes
) -> None:
    async def submit_frames() -> None:
        call = running.stub.SubmitFrames(iter([frame(bus_jpeg, "x")]), metadata=metadata)
        _ = [ack async for ack in call]

    async def list_services() -> None:
        stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        _ = [r async for r in stub.ServerReflectionInfo(iter([request]), metadata=metadata)]

    with pytest.raises(grpc.aio.AioRpcError) as submit:
        await submit_frames()
    with pytest.raises(grpc.aio.AioRpcError) as status:
        await running.stub.GetStatus(status_pb2.GetStatusRequest(), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as health:
        await running.health.Check(health_pb2.HealthCheckRequest(), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as reflect:
        await list_services()

    for raised in (submit, status, health, reflect):
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in (raised.value.details() or "")
    # Refused frames never reached ingest.
    assert running.server.counters.accepted == running.server.counters.rejected == 0


async def test_health_and_reflection_answer_with_the_token(running: Running) -> None:
    reply = await running.health.Check(health_pb2.HealthCheckRequest(), metadata=AUTH)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reply = await running.health.Check(
        health_pb2.HealthCheckRequest(service=SERVICE_NAME), metadata=AUTH
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [answer] = [r async for r in stub.ServerReflectionInfo(iter([request]), metadata=AUTH)]
    names = {s.name for s in answer.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_status_reports_identity_detector_latency_and_gpu(
    running: Running, bus_jpeg: bytes
) -> None:
    before = await running.status()
    assert before.stage_latency["total"].count == 0

    await running.submit([frame(bus_jpeg, "one"), frame(b"junk", "two"), frame(bus_jpeg, "3")])
    status = await running.status()

    assert status.server_id == running.server.server_id
    assert status.version == __version__
    assert status.uptime_s > 0
    assert status.detector == status_pb2.DetectorStatus(
        name="hog-people", backend="opencv-hog", device="cpu", weights="", fallback=False
    )
    assert status.queue_depth == 0
    assert set(status.stage_latency) == set(STAGES)
    for stage in ("decode", "queue", "inference"):
        assert status.stage_latency[stage].count == 1, stage
    total = status.stage_latency["total"]
    assert total.count == 2  # the accepted frame and its duplicate; rejections are not timed
    assert 0 < total.p50_ms <= total.p95_ms <= total.max_ms
    assert status.frames == status_pb2.FrameCounters(accepted=1, duplicate=1, rejected=1)

    gpu = status.gpu
    if gpu.available:
        assert gpu.devices
        assert gpu.driver_version
    else:  # this is the answer on a machine without an NVIDIA driver
        assert gpu.reason
        assert not gpu.devices


async def test_a_stopped_server_is_unavailable(running: Running) -> None:
    await running.server.stop(0)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stub.GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_status_reports_the_model_zoo_and_its_budget(
    start_server: StartServer, hog_detector: HogPeopleDetector
) -> None:
    running = await start_server(DetectorSelection(hog_detector), zoo__memory_budget_mb=512)
    zoo = running.server.zoo
    assert zoo is not None
    # A model of the zoo in use shows in the status with its memory; the budget is the set one.
    zoo.register(ModelSpec("reid-test", "reid", 64 * 1024 * 1024, object))
    async with zoo.use("reid-test"):
        status = await running.status()
    assert status.model_zoo.budget_bytes == 512 * 1024 * 1024
    assert status.model_zoo.used_bytes == 64 * 1024 * 1024
    # The test's model, and enrichment's face and OCR models (and pose, once fetched).
    assert status.model_zoo.registered == 3 + status.enrichment.pose_available
    assert "reid-test" in zoo.status().registered
    (loaded,) = status.model_zoo.loaded
    assert (loaded.key, loaded.task, loaded.users) == ("reid-test", "reid", 1)
    assert status.model_zoo.loads == 1
    # Without a setting: a quarter of this machine's memory (no GPU here, or half its VRAM).
    default = await start_server(DetectorSelection(hog_detector))
    assert (await default.status()).model_zoo.budget_bytes > 0
