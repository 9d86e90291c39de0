"""Copies of the detector running batches side by side, and how many the sidecar makes."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpu_server.config import DetectorConfig, load_config
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.errors import ShuttingDownError
from gpu_server.ingest import detect
from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.detect import (
    DetectorSelection,
    HogPeopleDetector,
    UltralyticsDetector,
    build_detector,
    detector_workers,
    threads_per_worker,
)
from gpu_server.ingest.detector import Detector
from gpu_server.server import GRPCServer


class GatedDetector(Detector):
    """Blocks in detect_batch until released; records which copy ran which images."""

    backend, device, weights = "test", "cpu", ""

    def __init__(self, name: str, gate: threading.Event, inside: threading.Semaphore) -> None:
        self.name = name
        self.gate = gate
        self.inside = inside
        self.batches: list[int] = []

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        self.inside.release()
        self.gate.wait(10)
        self.batches.append(len(images))
        # The image's height says which frame it was, so results can be checked per frame.
        return [
            [Detection(self.name, 0, 0.5, 0.0, 0.0, 1.0, float(image.shape[0]))]
            for image in images
        ]


def frame(height: int) -> BgrImage:
    return np.zeros((height, 8, 3), np.uint8)


@pytest.fixture(scope="module")
def bus_bgr(bus_image: Image.Image) -> BgrImage:
    return np.ascontiguousarray(np.asarray(bus_image)[:, :, ::-1])


async def test_two_copies_run_two_batches_at_once() -> None:
    gate, inside = threading.Event(), threading.Semaphore(0)
    first, second = GatedDetector("a", gate, inside), GatedDetector("b", gate, inside)
    batcher = DetectionBatcher(first, max_batch_size=2, max_wait_ms=0, replicas=[second])
    assert batcher.workers == 2
    batcher.start()
    try:
        tasks = [asyncio.create_task(batcher.detect(frame(10 + i))) for i in range(2)]
        assert await asyncio.to_thread(inside.acquire, True, 10)
        more = [asyncio.create_task(batcher.detect(frame(20 + i))) for i in range(2)]
        # The second batch starts on the other copy while the first still runs.
        assert await asyncio.to_thread(inside.acquire, True, 10)
        gate.set()
        results = await asyncio.gather(*tasks, *more)
    finally:
        await batcher.stop()
    assert sorted(first.batches + second.batches) == [2, 2]
    assert {first.batches and "a", second.batches and "b"} == {"a", "b"}
    # Every frame got its own detections back, whichever copy ran it.
    assert [r.detections[0].y2 for r in results] == [10, 11, 20, 21]


async def test_one_copy_runs_one_batch_at_a_time() -> None:
    gate, inside = threading.Event(), threading.Semaphore(0)
    only = GatedDetector("a", gate, inside)
    batcher = DetectionBatcher(only, max_batch_size=2, max_wait_ms=0)
    batcher.start()
    try:
        tasks = [asyncio.create_task(batcher.detect(frame(10 + i))) for i in range(2)]
        assert await asyncio.to_thread(inside.acquire, True, 10)
        more = [asyncio.create_task(batcher.detect(frame(20 + i))) for i in range(3)]
        await asyncio.sleep(0.05)
        assert not inside.acquire(blocking=False)  # the next batch waits for the copy
        # ...and meanwhile the waiting frames gather into one full batch.
        assert batcher.queue_depth == 3
        gate.set()
        await asyncio.gather(*tasks, *more)
    finally:
        await batcher.stop()
    assert only.batches == [2, 2, 1]


async def test_stopping_fails_running_and_waiting_frames_of_every_copy() -> None:
    gate, inside = threading.Event(), threading.Semaphore(0)
    first, second = GatedDetector("a", gate, inside), GatedDetector("b", gate, inside)
    batcher = DetectionBatcher(first, max_batch_size=1, max_wait_ms=0, replicas=[second])
    batcher.start()
    tasks = [asyncio.create_task(batcher.detect(frame(10 + i))) for i in range(3)]
    for _ in range(2):
        assert await asyncio.to_thread(inside.acquire, True, 10)
    await batcher.stop()
    gate.set()
    for task in tasks:
        with pytest.raises(ShuttingDownError):
            await task


def test_copies_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    auto, three = DetectorConfig(), DetectorConfig(workers=3)
    monkeypatch.setattr(detect, "usable_cores", lambda: 1)
    assert detector_workers(auto) == 1
    assert threads_per_worker(auto) == 1
    monkeypatch.setattr(detect, "usable_cores", lambda: 16)
    assert detector_workers(auto) == 2
    assert threads_per_worker(auto) == 8
    assert detector_workers(three) == 3
    assert threads_per_worker(three) == 5
    assert load_config(env={"HSAI_DETECTOR_WORKERS": "4"}).detector.workers == 4


def test_a_hog_copy_finds_what_the_original_finds(
    hog_detector: HogPeopleDetector, bus_bgr: BgrImage
) -> None:
    copy = hog_detector.replicate()
    assert copy is not hog_detector
    assert copy.detect_batch([bus_bgr]) == hog_detector.detect_batch([bus_bgr])


def test_an_onnx_copy_has_its_own_session_with_the_same_threads(
    tmp_path: Path, tiny_weights: Path, bus_bgr: BgrImage
) -> None:
    weights = tmp_path / "models" / tiny_weights.name  # the export lands beside the weights
    weights.parent.mkdir()
    shutil.copy2(tiny_weights, weights)
    config = load_config(env={}, overrides={
        "models_dir": weights.parent, "data_dir": tmp_path / "data",
        "detector.weights": str(weights), "detector.backend": "onnx",
        "detector.device": "cpu", "detector.confidence": 0.0001, "detector.imgsz": 64,
        "detector.workers": 2,
    })
    detector = build_detector(config).detector
    assert isinstance(detector, UltralyticsDetector)
    assert detector.backend == "onnxruntime"
    copy = detector.replicate()
    assert isinstance(copy, UltralyticsDetector)
    assert copy.onnx_threads == detector.onnx_threads == threads_per_worker(config.detector)
    session = copy.model.predictor.model.backend.session
    assert session is not detector.model.predictor.model.backend.session
    assert copy.detect_batch([bus_bgr]) == detector.detect_batch([bus_bgr])


async def test_the_server_runs_the_configured_copies(
    tmp_path: Path, hog_detector: HogPeopleDetector
) -> None:
    config = load_config(env={}, overrides={
        "host": "127.0.0.1", "port": 0, "token": "t" * 24, "data_dir": tmp_path / "data",
        "detector.workers": 3, "llm.enabled": False, "enrich.enabled": False,
    })
    server = GRPCServer(config, detector=DetectorSelection(hog_detector))
    await server.start()
    try:
        assert server.batcher is not None
        assert server.batcher.workers == 3
    finally:
        await server.stop(0)
