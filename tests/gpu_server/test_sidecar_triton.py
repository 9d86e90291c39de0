"""The Triton backend against a real Triton Inference Server (pytriton) serving the same ONNX
file: the same detections as ONNX Runtime locally, and a stopped server leaves the sidecar
detecting locally, saying so."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from test_sidecar_exported import IMGSZ, assert_same_detections, make_config

from gpu_server.ingest import exported
from gpu_server.ingest.detect import build_detector

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO_ROOT / "tests" / "gpu_server" / "testlib" / "triton_server.py"
VENVS = Path(os.environ.get("HSAI_VENVS", REPO_ROOT / ".venvs"))
# pytriton's server stub runs with Debian's own Python 3.11; scripts/setup_sidecar_env makes
# this environment from it when the machine has one.
SERVER_PYTHON = VENVS / "triton-server" / "bin" / "python"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def triton_models(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny weights with their ONNX export, for this module."""
    if not SERVER_PYTHON.exists():
        # Only a machine without Debian's python3.11 may go without: where it is, the set-up
        # builds the environment, and its absence means the set-up failed.
        if DEBIAN_PYTHON.exists():
            pytest.fail(f"no Triton server environment at {SERVER_PYTHON} although "
                        f"{DEBIAN_PYTHON} exists: run scripts/setup_sidecar_env")
        pytest.skip(f"no Triton server environment: pytriton's server needs Debian's "
                    f"{DEBIAN_PYTHON}, which this machine does not have")
    folder = tmp_path_factory.mktemp("triton-models")
    weights = folder / tiny_weights.name
    shutil.copy2(tiny_weights, weights)
    build_detector(make_config(weights, folder, backend="onnx"))
    return weights


class TritonServer:
    def __init__(self, onnx_file: Path) -> None:
        self.port = free_port()
        self.log = onnx_file.with_suffix(".triton.log")
        ports = [str(self.port), str(free_port()), str(free_port())]
        ready = onnx_file.with_suffix(".triton.ready")
        ready.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [str(SERVER_PYTHON), str(SERVER_SCRIPT), str(onnx_file), *ports, str(ready), "yolo"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = self.log.read_text(errors="replace")[-2000:]
                pytest.fail(f"Triton did not start: {text}")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def triton_server(triton_models: Path) -> Iterator[TritonServer]:
    server = TritonServer(exported.cached_path(triton_models, "onnx", IMGSZ))
    yield server
    server.stop()


def test_triton_detects_what_onnx_runtime_detects_and_falls_back_when_stopped(
    triton_server: TritonServer, triton_models: Path, tmp_path: Path,
    photos: dict[str, npt.NDArray[np.uint8]], caplog: pytest.LogCaptureFixture,
) -> None:
    remote = build_detector(
        make_config(triton_models, tmp_path, backend="triton", triton_url=triton_server.url)
    )
    local = build_detector(make_config(triton_models, tmp_path, backend="onnx"))
    assert (remote.detector.backend, remote.fallback) == ("triton", False)
    session: Any = remote.detector.model.predictor.model.backend.session  # type: ignore[attr-defined]
    frames = [np.ascontiguousarray(photos[name][:480, :640]) for name in ("bus", "zidane")]

    ours = remote.detector.detect_batch(frames)
    assert session.local_batches == 0, "the batch must have run on Triton"
    assert_same_detections(ours, local.detector.detect_batch(frames))
    assert sum(len(dets) for dets in ours) > 0

    triton_server.stop()
    with caplog.at_level(logging.WARNING):
        after = remote.detector.detect_batch(frames)
    assert session.local_batches == 1
    assert remote.detector.backend == "onnxruntime", "the status must say what detects now"
    assert_same_detections(after, ours)
    assert f"Triton at {triton_server.url} failed" in caplog.text


def test_a_stopped_triton_gives_onnx_runtime_locally_with_the_reason(
    triton_models: Path, tmp_path: Path
) -> None:
    url = f"127.0.0.1:{free_port()}"

    selection = build_detector(
        make_config(triton_models, tmp_path, backend="triton", triton_url=url)
    )

    assert selection.detector.backend == "onnxruntime"
    assert selection.fallback
    assert f"Triton at {url} unreachable" in selection.fallback_reason
    assert "running ONNX Runtime locally" in selection.fallback_reason
