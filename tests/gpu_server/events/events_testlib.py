"""Helpers for the events tests: a scripted detector, test images and a server handle."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from sidecar_testlib import AUTH, Running
from testlib.fakes import FakeClock

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.events.model import EventKind, SecurityEvent
from gpu_server.events.scheduler import EventScheduler
from gpu_server.ingest.detector import Detector

# What the scripted detector reports, keyed by the blue value of the top-left pixel.
MARK_NONE = 10
MARK_PERSON_SURE = 200  # person 0.95: fast path
MARK_PERSON_UNSURE = 150  # person 0.60: batched
MARK_CAR = 100  # car 0.70
MARK_CUP = 60  # cup 0.90: an object, not a security finding
_SCRIPT: dict[int, tuple[str, int, float]] = {
    MARK_PERSON_SURE: ("person", 0, 0.95),
    MARK_PERSON_UNSURE: ("person", 0, 0.60),
    MARK_CAR: ("car", 2, 0.70),
    MARK_CUP: ("cup", 41, 0.90),
}


class ScriptedDetector(Detector):
    """Detections decided by the image itself, so a test says exactly what each frame holds."""

    name = "scripted"
    backend = "test"
    device = "cpu"
    weights = ""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for image in images:
            found = _SCRIPT.get(int(image[0, 0, 0]))
            if found is None:
                out.append([])
                continue
            label, class_id, confidence = found
            height, width = image.shape[:2]
            # Feet near the bottom centre of the image.
            out.append(
                [Detection(label, class_id, confidence, width * 0.4, height * 0.5,
                           width * 0.6, height * 0.95)]
            )
        return out


def scene_png(index: int, mark: int = MARK_NONE, *, black: bool = False) -> bytes:
    """A textured 96x64 view (the same scene every time), unique per index, marked for the
    scripted detector. `black` gives a covered lens."""
    if black:
        pixels = np.zeros((64, 96, 3), dtype=np.uint8)
    else:
        yy, xx = np.mgrid[0:64, 0:96]
        base = ((xx * 7 + yy * 13) % 64) * 3 + ((xx // 8 + yy // 8) % 2) * 60
        pixels = np.stack([base, base[::-1], base[:, ::-1]], axis=2).astype(np.uint8)
    # Unique content in a corner the scene check barely notices.
    pixels[63, 95] = (index % 251, (index // 251) % 251, 7)
    pixels[0, 0] = (0, 0, mark)  # RGB here; the server decodes to BGR, so blue = mark
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def stored_event(*shas: str, camera: str = "a", **fields: Any) -> SecurityEvent:
    """An event as the builder makes them, covering these frame hashes."""
    values: dict[str, Any] = {
        "event_id": "-".join(shas), "camera_id": camera, "kind": EventKind.SECURITY,
        "started_at_ms": 0, "ended_at_ms": 0, "frame_sha256s": shas,
    }
    values.update(fields)
    return SecurityEvent(**values)


def frame_for(
    image: bytes, ref: str, camera: str = "front_door", at_ms: int = 0
) -> frames_pb2.Frame:
    return frames_pb2.Frame(
        camera_id=camera, image=image, client_ref=ref,
        captured_at_ms=at_ms or 1_767_614_400_000, source=frames_pb2.FRAME_SOURCE_CAMERA_ENTITY,
    )


@dataclass
class EventsServer(Running):
    clock: FakeClock = field(default_factory=FakeClock)

    @property
    def scheduler(self) -> EventScheduler:
        assert self.server.events is not None
        return self.server.events

    @property
    def open_windows(self) -> int:
        return self.scheduler.status().open_windows

    async def send(self, *frames: frames_pb2.Frame) -> list[frames_pb2.FrameAck]:
        return await self.submit(frames)

    async def close_due(self, seconds: float) -> None:
        """Move the clock on, close what is due and wait for the analyses to store events."""
        self.clock.advance(seconds)
        self.scheduler.tick()
        await self.scheduler.wait_idle()

    async def events(self, after: int = 0, count: int = 1) -> list[events_pb2.SecurityEvent]:
        """The first `count` events SubscribeEvents delivers after the cursor."""
        call = self.stub.SubscribeEvents(
            events_pb2.SubscribeEventsRequest(after_sequence=after), metadata=AUTH
        )
        got: list[events_pb2.SecurityEvent] = []

        async def read() -> None:
            async for event in call:
                got.append(event)
                if len(got) >= count:
                    return

        try:
            await asyncio.wait_for(read(), 30.0)
        finally:
            call.cancel()
        return got

    async def ack(self, up_to: int) -> int:
        response = await self.stub.AckEvents(
            events_pb2.AckEventsRequest(up_to_sequence=up_to), metadata=AUTH
        )
        return int(response.removed)
