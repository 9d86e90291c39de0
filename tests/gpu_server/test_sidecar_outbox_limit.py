"""The outbox limit is hard: frames already taken may still open events (a window, an early
alert), so a new frame is taken only while those leave room for one more. What does not fit is
refused with BACKPRESSURE, counted in GetStatus, and taken when the client sends it again after
acknowledging events: nothing is lost and nothing is covered twice."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
from PIL import Image
from sidecar_testlib import AUTH, TOKEN
from testlib.fakes import FakeClock

from gpu_server._generated import events_pb2, frames_pb2, service_pb2_grpc, status_pb2
from gpu_server.config import load_config
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.events.scheduler import EventScheduler
from gpu_server.ingest.detect import DetectorSelection
from gpu_server.ingest.detector import Detector
from gpu_server.server import GRPCServer

MAX_EVENTS = 5
CAMERAS = ("porch", "drive", "garden", "garage")
FRAMES_PER_CAMERA = 30
SURE = 200  # blue value of the top-left pixel that makes a frame a confident person


class MarkedPeople(Detector):
    """A person in every frame; a confident one (the early-alert path) where the frame says."""

    name = "marked"
    backend = "test"
    device = "cpu"
    weights = ""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        out = []
        for image in images:
            confidence = 0.95 if int(image[0, 0, 0]) == SURE else 0.6
            height, width = image.shape[:2]
            out.append([Detection("person", 0, confidence, width * 0.4, height * 0.5,
                                  width * 0.6, height * 0.95)])
        return out


def _scene(index: int, sure: bool) -> bytes:
    """The same view every time, unique per index (one corner pixel)."""
    yy, xx = np.mgrid[0:48, 0:64]
    base = ((xx * 7 + yy * 13) % 64) * 3
    pixels = np.stack([base, base[::-1], base[:, ::-1]], axis=2).astype(np.uint8)
    pixels[47, 63] = (index % 251, index // 251, 7)
    pixels[0, 0] = (0, 0, SURE if sure else 10)  # RGB; decoded as BGR, so blue is the mark
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def _frames() -> dict[str, list[frames_pb2.Frame]]:
    by_camera: dict[str, list[frames_pb2.Frame]] = {}
    for number, camera in enumerate(CAMERAS):
        by_camera[camera] = [
            frames_pb2.Frame(
                camera_id=camera,
                image=_scene(number * FRAMES_PER_CAMERA + index, sure=index % 10 == 3),
                client_ref=f"{camera}-{index}",
                source=frames_pb2.FRAME_SOURCE_CAMERA_ENTITY,
            )
            for index in range(FRAMES_PER_CAMERA)
        ]
    return by_camera


class Client:
    """What Home Assistant does: keep every frame until an event covers it, resend the ones
    pushed back, store and acknowledge events."""

    def __init__(self, stub: service_pb2_grpc.SecurityAIStub) -> None:
        self.stub = stub
        self.waiting: dict[str, frames_pb2.Frame] = {}
        self.sha_of: dict[str, str] = {}
        self.covered: dict[str, int] = {}  # frame sha -> event sequence
        self.cursor = 0
        self.backpressure = 0

    async def send(self, by_camera: dict[str, list[frames_pb2.Frame]]) -> None:
        """One stream per camera, all at once, so frames of every camera are in flight."""

        async def stream(frames: list[frames_pb2.Frame]) -> list[frames_pb2.FrameAck]:
            call = self.stub.SubmitFrames(iter(frames), metadata=AUTH)
            return [ack async for ack in call]

        for acks in await asyncio.gather(*(stream(f) for f in by_camera.values() if f)):
            for ack in acks:
                if ack.status == frames_pb2.ACK_STATUS_REJECTED:
                    assert ack.reject_reason == frames_pb2.REJECT_REASON_BACKPRESSURE, ack.message
                    assert ack.status_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
                    self.backpressure += 1
                    continue
                assert ack.status == frames_pb2.ACK_STATUS_ACCEPTED, ack
                self.sha_of[ack.client_ref] = ack.content_sha256

    def pushed_back(self) -> dict[str, list[frames_pb2.Frame]]:
        by_camera: dict[str, list[frames_pb2.Frame]] = {}
        for ref, frame in self.waiting.items():
            if ref not in self.sha_of:
                by_camera.setdefault(frame.camera_id, []).append(frame)
        return by_camera

    async def take_events(self, count: int) -> None:
        """Read the `count` stored events after the cursor and acknowledge them."""
        if count == 0:
            return
        call = self.stub.SubscribeEvents(
            events_pb2.SubscribeEventsRequest(after_sequence=self.cursor), metadata=AUTH
        )
        got: list[events_pb2.SecurityEvent] = []
        try:
            async with asyncio.timeout(30):
                async for event in call:
                    got.append(event)
                    if len(got) == count:
                        break
        finally:
            call.cancel()
        for event in got:
            for sha in event.frame_sha256s:
                assert sha not in self.covered, "a frame covered by two events"
                self.covered[sha] = event.sequence
        self.cursor = got[-1].sequence
        await self.stub.AckEvents(
            events_pb2.AckEventsRequest(up_to_sequence=self.cursor), metadata=AUTH
        )


async def _status(stub: service_pb2_grpc.SecurityAIStub) -> status_pb2.EventsStatus:
    status: status_pb2.ServerStatus = await stub.GetStatus(
        status_pb2.GetStatusRequest(), metadata=AUTH
    )
    return status.events


async def _close_due(scheduler: EventScheduler, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    scheduler.tick()
    await scheduler.wait_idle()


async def test_frames_in_flight_never_overfill_the_outbox_and_none_is_lost(
    tmp_path: Path,
) -> None:
    config = load_config(
        env={},
        overrides={
            "host": "127.0.0.1", "port": 0, "token": TOKEN, "tls.mode": "off",
            "data_dir": tmp_path / "data", "models_dir": tmp_path / "no-models",
            "llm.enabled": False,
            "events.outbox_max_events": MAX_EVENTS,
            # Windows close when the test moves the clock, not on their own.
            "events.tick_s": 60.0, "events.window_s": 90.0, "events.idle_s": 30.0,
            "events.max_detections_per_batch": 12,
        },
    )
    clock = FakeClock()
    server = GRPCServer(config, detector=DetectorSelection(MarkedPeople()), clock=clock)
    port = await server.start()
    assert server.events is not None
    scheduler = server.events
    outbox = scheduler.outbox
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = service_pb2_grpc.SecurityAIStub(channel)
        client = Client(stub)
        frames = _frames()
        client.waiting = {f.client_ref: f for fs in frames.values() for f in fs}
        total = len(client.waiting)
        assert total > 100

        # Nobody acknowledges: every frame arrives at once, and every event they can make is
        # made. The outbox holds its maximum at most.
        await client.send(frames)
        await _close_due(scheduler, clock, 100.0)
        await _close_due(scheduler, clock, 100.0)
        events = await _status(stub)
        assert 1 <= events.last_sequence <= MAX_EVENTS
        assert events.outbox_depth == events.last_sequence == events.events_created
        assert client.backpressure > 0
        assert events.outbox_refused_frames == client.backpressure
        # Every frame taken is in a stored event: none waits in a window beyond the limit.
        assert events.open_batches == 0
        assert len(client.sha_of) + client.backpressure == total

        # Home Assistant stores and acknowledges the events, then sends what was pushed back;
        # round after round, until every frame is in an event.
        for _round in range(60):
            await client.take_events(outbox.depth)
            pushed_back = client.pushed_back()
            if not pushed_back and set(client.sha_of.values()) <= set(client.covered):
                break
            await client.send(pushed_back)
            assert outbox.depth <= MAX_EVENTS
            await _close_due(scheduler, clock, 100.0)
            assert outbox.depth <= MAX_EVENTS
        else:
            raise AssertionError("the pushed-back frames were never all taken")

        assert set(client.sha_of) == set(client.waiting)
        assert set(client.sha_of.values()) <= set(client.covered)
        events = await _status(stub)
        assert events.outbox_refused_frames == client.backpressure
    finally:
        await channel.close()
        await server.stop(0)
