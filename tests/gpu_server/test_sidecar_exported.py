"""Exported detector backends: ONNX Runtime detects what PyTorch detects, the exported file is
kept beside the weights and reused, made again when stale or damaged, and every failure falls
back to PyTorch with a reason in the status."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sidecar_testlib import StartServer, encode_jpeg, frame

from gpu_server._generated import frames_pb2
from gpu_server.config import ServerConfig, load_config
from gpu_server.core.detection import Detection
from gpu_server.ingest import exported
from gpu_server.ingest.detect import build_detector

IMGSZ = 160
# A tiny random model: boxes only appear at a very low threshold.
CONFIDENCE = 0.0001


def make_config(weights: Path, tmp_path: Path, **detector: Any) -> ServerConfig:
    overrides: dict[str, Any] = {
        "models_dir": weights.parent, "data_dir": tmp_path / "data",
        "detector.weights": str(weights), "detector.device": "cpu",
        "detector.confidence": CONFIDENCE, "detector.imgsz": IMGSZ,
        "detector.embedded_model": tmp_path / "no-embedded-model",
    }
    overrides.update({f"detector.{key}": value for key, value in detector.items()})
    return load_config(env={}, overrides=overrides)


@pytest.fixture(scope="module")
def onnx_models(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the tiny weights and their ONNX export, made once for this module."""
    folder = tmp_path_factory.mktemp("onnx-models")
    weights = folder / tiny_weights.name
    shutil.copy2(tiny_weights, weights)
    build_detector(make_config(weights, folder, backend="onnx"))
    assert exported.cached_path(weights, "onnx", IMGSZ).is_file()
    return weights


@pytest.fixture
def own_copy(onnx_models: Path, tmp_path: Path) -> Path:
    """The module's weights and ONNX file copied (times kept) for a test that changes them."""
    folder = tmp_path / "models"
    folder.mkdir()
    for path in onnx_models.parent.iterdir():
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    return folder / onnx_models.name


@pytest.fixture
def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every export the code under test makes, by weights file."""
    calls: list[Path] = []
    real: Callable[..., Path] = exported.export

    def counting(weights: Path, *args: Any, **kwargs: Any) -> Path:
        calls.append(weights)
        return real(weights, *args, **kwargs)

    monkeypatch.setattr(exported, "export", counting)
    return calls


def assert_same_detections(
    left: list[list[Detection]], right: list[list[Detection]], *, px: float = 1.0
) -> None:
    assert [len(dets) for dets in left] == [len(dets) for dets in right]
    for ours, theirs in zip(left, right, strict=True):
        key = lambda d: (d.class_id, round(d.confidence, 4), d.x1, d.y1)  # noqa: E731
        for a, b in zip(sorted(ours, key=key), sorted(theirs, key=key), strict=True):
            assert (a.label, a.class_id) == (b.label, b.class_id)
            assert a.confidence == pytest.approx(b.confidence, rel=1e-2, abs=1e-5)
            for u, v in ((a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2)):
                assert abs(u - v) <= px


def test_onnx_detects_what_pytorch_detects(
    onnx_models: Path, tmp_path: Path, photos: dict[str, npt.NDArray[np.uint8]]
) -> None:
    onnx = build_detector(make_config(onnx_models, tmp_path, backend="onnx"))
    torch = build_detector(make_config(onnx_models, tmp_path, backend="pytorch"))
    assert (onnx.detector.backend, onnx.fallback) == ("onnxruntime", False)
    assert torch.detector.backend == "ultralytics"
    assert onnx.detector.name == torch.detector.name == onnx_models.stem
    # A batch of frames of one size (the batcher's case), and single frames of other sizes.
    frames = [photos["bus"][:480, :640], photos["zidane"][:480, :640], photos["cat"][:480, :640]]
    frames = [np.ascontiguousarray(f) for f in frames]
    batches: list[list[npt.NDArray[np.uint8]]] = [frames, [photos["bus"]], [photos["astronaut"]]]
    total = 0
    for batch in batches:
        ours, theirs = onnx.detector.detect_batch(batch), torch.detector.detect_batch(batch)
        assert_same_detections(ours, theirs)
        total += sum(len(dets) for dets in ours)
    assert total > 0, "the comparison needs boxes to compare"


def test_a_fresh_export_is_reused_without_exporting_again(
    own_copy: Path, tmp_path: Path, count_exports: list[Path]
) -> None:
    cached = exported.cached_path(own_copy, "onnx", IMGSZ)
    before = cached.stat().st_mtime_ns

    selection = build_detector(make_config(own_copy, tmp_path, backend="onnx"))

    assert selection.detector.backend == "onnxruntime"
    assert selection.detector.weights == cached.name
    assert count_exports == []
    assert cached.stat().st_mtime_ns == before


def test_weights_newer_than_the_export_are_exported_again(
    own_copy: Path, tmp_path: Path, count_exports: list[Path]
) -> None:
    cached = exported.cached_path(own_copy, "onnx", IMGSZ)
    newer = cached.stat().st_mtime_ns + 10**9
    os.utime(own_copy, ns=(newer, newer))

    selection = build_detector(make_config(own_copy, tmp_path, backend="onnx"))

    assert (selection.detector.backend, selection.fallback) == ("onnxruntime", False)
    assert count_exports == [own_copy]
    assert exported.is_fresh(cached, own_copy)


def test_another_image_size_gets_its_own_export(
    own_copy: Path, tmp_path: Path, count_exports: list[Path]
) -> None:
    selection = build_detector(make_config(own_copy, tmp_path, backend="onnx", imgsz=128))

    assert selection.detector.weights == exported.cached_path(own_copy, "onnx", 128).name
    assert count_exports == [own_copy]
    assert exported.cached_path(own_copy, "onnx", IMGSZ).is_file()


def test_a_damaged_export_is_made_again_and_says_so(
    own_copy: Path, tmp_path: Path, count_exports: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    cached = exported.cached_path(own_copy, "onnx", IMGSZ)
    cached.write_bytes(b"not an onnx model")

    with caplog.at_level(logging.WARNING):
        selection = build_detector(make_config(own_copy, tmp_path, backend="onnx"))

    assert (selection.detector.backend, selection.fallback) == ("onnxruntime", False)
    assert count_exports == [own_copy]
    assert cached.stat().st_size > 1000
    assert f"cached {cached} is unusable" in caplog.text


def test_a_failed_export_falls_back_to_pytorch_and_says_why(
    own_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exported.cached_path(own_copy, "onnx", IMGSZ).unlink()

    def failing(*args: Any, **kwargs: Any) -> Path:
        raise RuntimeError("the exporter broke")

    monkeypatch.setattr(exported, "export", failing)
    with caplog.at_level(logging.WARNING):
        selection = build_detector(make_config(own_copy, tmp_path, backend="onnx"))

    assert selection.detector.backend == "ultralytics"
    assert selection.fallback
    assert "onnx export of tiny-yolo.pt failed" in selection.fallback_reason
    assert "the exporter broke" in selection.fallback_reason
    assert "running YOLO in PyTorch instead" in selection.fallback_reason
    assert "onnx export of tiny-yolo.pt failed" in caplog.text


def test_tensorrt_without_a_cuda_device_falls_back_to_pytorch(
    own_copy: Path, tmp_path: Path, count_exports: list[Path]
) -> None:
    selection = build_detector(make_config(own_copy, tmp_path, backend="tensorrt"))

    assert selection.detector.backend == "ultralytics"
    assert "TensorRT needs a CUDA device, not cpu" in selection.fallback_reason
    assert count_exports == []


def test_the_backend_comes_from_the_environment_too() -> None:
    config = load_config(env={"HSAI_DETECTOR_BACKEND": "ONNX"})

    assert config.detector.backend == "onnx"


async def test_the_status_reports_the_onnx_backend(
    start_server: StartServer, onnx_models: Path, bus_image: Any
) -> None:
    running = await start_server(
        detector__weights=str(onnx_models), detector__backend="onnx", detector__device="cpu",
        detector__confidence=CONFIDENCE, detector__imgsz=IMGSZ,
    )

    status = await running.status()
    assert (status.detector.backend, status.detector.fallback) == ("onnxruntime", False)
    assert status.detector.weights == exported.cached_path(onnx_models, "onnx", IMGSZ).name
    [ack] = await running.submit([frame(encode_jpeg(bus_image), "bus")])
    assert ack.status == frames_pb2.ACK_STATUS_ACCEPTED
    assert ack.detector == onnx_models.stem


def test_onnx_runtime_threads_sleep_instead_of_spinning(onnx_models: Path, tmp_path: Path) -> None:
    selection = build_detector(make_config(onnx_models, tmp_path, backend="onnx"))

    session = selection.detector.model.predictor.model.backend.session  # type: ignore[attr-defined]
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_a_tensorrt_engine_is_kept_per_image_size_and_largest_batch(tmp_path: Path) -> None:
    weights = tmp_path / "yolo26n.pt"

    assert exported.cached_path(weights, "tensorrt", 640, 8).name == "yolo26n.640px.b8.engine"
    assert exported.cached_path(weights, "onnx", 640, 8).name == "yolo26n.640px.onnx"
