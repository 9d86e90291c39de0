"""Faults the sidecar must survive: a configured device that is not there, a detector worker
that dies, a prompt version nobody knows, an event outbox that cannot be written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image
from sidecar_testlib import StartServer, encode_jpeg, frame

from gpu_server._generated import frames_pb2
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector
from gpu_server.ingest.detector import Detector

ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
REJECTED = frames_pb2.ACK_STATUS_REJECTED


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
async def test_a_missing_cuda_device_falls_back_to_yolo_on_the_cpu(
    start_server: StartServer, tiny_weights: Path, bus_image: Image.Image
) -> None:
    running = await start_server(
        detector__weights=str(tiny_weights), detector__device="cuda:0",
        detector__confidence=0.0001, detector__imgsz=160,
    )

    status = await running.status()
    assert status.detector.backend == "ultralytics"
    assert status.detector.device == "cpu"
    assert status.detector.fallback is True
    assert "cuda:0" in status.detector.fallback_reason
    assert "CPU" in status.detector.fallback_reason
    [ack] = await running.submit([frame(encode_jpeg(bus_image), "bus")])
    assert ack.status == ACCEPTED
    assert ack.detector == status.detector.name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
async def test_unusable_weights_on_a_missing_device_fall_back_to_hog(
    start_server: StartServer, tmp_path: Path, bus_jpeg: bytes
) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    running = await start_server(
        detector__weights=str(broken), detector__device="cuda:0",
        detector__embedded_model=tmp_path / "no-embedded-model",
    )

    status = await running.status()
    assert (status.detector.name, status.detector.backend) == ("hog-people", "opencv-hog")
    assert status.detector.fallback is True
    assert "broken.pt" in status.detector.fallback_reason
    [ack] = await running.submit([frame(bus_jpeg, "bus")])
    assert ack.status == ACCEPTED


class WorkerKilled(BaseException):
    """Not an Exception: gets past the batcher's per-batch handler and ends its worker."""


class DyingDetector(Detector):
    """Wraps a real detector; `die` makes the next call end the batcher's worker."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name, self.backend, self.device, self.weights = (
            inner.name, inner.backend, inner.device, inner.weights,
        )
        self.die = False

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        if self.die:
            raise WorkerKilled("the device went away")
        return self.inner.detect_batch(images)


async def test_a_dead_detection_worker_fails_frames_and_is_started_again(
    start_server: StartServer, hog_detector: HogPeopleDetector, bus_image: Image.Image
) -> None:
    detector = DyingDetector(hog_detector)
    running = await start_server(DetectorSelection(detector))
    assert running.server.batcher is not None

    detector.die = True
    dead = await asyncio.wait_for(
        running.submit([frame(encode_jpeg(bus_image, q), f"q{q}") for q in (60, 61, 62)]), 20
    )
    assert len(dead) == 3
    for ack in dead:
        assert ack.status == REJECTED
        assert ack.status_code == 13
        assert ack.reject_reason == frames_pb2.REJECT_REASON_INTERNAL
        assert "detection worker" in ack.message
    assert running.server.batcher.worker_deaths >= 1

    # Every later frame still gets an answer while the worker keeps dying ...
    [again] = await asyncio.wait_for(running.submit([frame(encode_jpeg(bus_image, 63), "x")]), 20)
    assert again.status == REJECTED
    assert again.status_code == 13
    # ... and once the detector works again, frames are analyzed (the same content too).
    detector.die = False
    ok = await asyncio.wait_for(
        running.submit([frame(encode_jpeg(bus_image, q), f"r{q}") for q in (60, 64)]), 20
    )
    assert [ack.status for ack in ok] == [ACCEPTED, ACCEPTED]
