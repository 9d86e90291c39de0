"""Faults the sidecar must survive: a configured device that is not there, a detector worker
that dies, a prompt version nobody knows, an event outbox that cannot be written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from sidecar_testlib import StartServer, encode_jpeg, frame

from gpu_server._generated import frames_pb2

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
    running = await start_server(detector__weights=str(broken), detector__device="cuda:0")

    status = await running.status()
    assert (status.detector.name, status.detector.backend) == ("hog-people", "opencv-hog")
    assert status.detector.fallback is True
    assert "broken.pt" in status.detector.fallback_reason
    [ack] = await running.submit([frame(bus_jpeg, "bus")])
    assert ack.status == ACCEPTED
