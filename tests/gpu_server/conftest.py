"""Shared fixtures: real detectors, a real in-process server and a real gRPC channel."""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import numpy.typing as npt
import pytest
from grpc_health.v1 import health_pb2_grpc
from PIL import Image
from sidecar_testlib import TOKEN, Running, StartServer
from testlib.fake_supervisor import serving
from testlib.required import required

from gpu_server._generated import service_pb2_grpc
from gpu_server.config import load_config
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector, UltralyticsDetector
from gpu_server.server import GRPCServer


@pytest.fixture(scope="session", autouse=True)
def ultralytics_offline(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Ultralytics reads these on import: keep it offline and out of the home folder."""
    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("ultralytics-config"))
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="session")
def bus_jpeg(assets_dir: Path) -> bytes:
    return (assets_dir / "bus.jpg").read_bytes()


@pytest.fixture(scope="session")
def bus_image(bus_jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(bus_jpeg)).convert("RGB")


@pytest.fixture(scope="session")
def tiny_weights(ultralytics_offline: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testlib.tiny_yolo import build_tiny_yolo

    return build_tiny_yolo(tmp_path_factory.mktemp("models") / "tiny-yolo.pt")


@pytest.fixture(scope="session")
def tiny_detector(tiny_weights: Path) -> UltralyticsDetector:
    # Random weights only produce boxes at a very low threshold.
    detector = UltralyticsDetector(tiny_weights, device="cpu", confidence=0.0001, imgsz=160)
    detector.warmup()
    return detector


@pytest.fixture(scope="session")
def hog_detector() -> HogPeopleDetector:
    return HogPeopleDetector()


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded detector's model where scripts/setup_sidecar_env put it."""
    from gpu_server.ingest.embedded_ssd import find_model

    path, reason = find_model(None, Path("no-models"))
    # CI must prove the default detector: there a missing model is a failure, not a skip.
    return required(
        path, f"the set-up could not fetch the embedded model: {reason}",
        "HSAI_REQUIRE_EMBEDDED_MODEL",
    )


@pytest.fixture(scope="session")
def pose_models() -> Path:
    """The pose models' folder where scripts/setup_sidecar_env put them."""
    from gpu_server.enrich.pose import find_models

    folder, reason = find_models(None)
    # CI must prove the pose flags: there missing models are a failure, not a skip.
    return required(
        folder, f"the set-up could not fetch the pose models: {reason}", "HSAI_REQUIRE_POSE_MODELS"
    )


@pytest.fixture(scope="session")
def pose_model(pose_models: Path) -> Any:
    from gpu_server.enrich.pose import PoseModel

    return PoseModel(pose_models)


@pytest.fixture(scope="session")
def embedded_detector(embedded_model: Path) -> Any:
    from gpu_server.ingest.embedded_ssd import EmbeddedSsdDetector

    detector = EmbeddedSsdDetector(embedded_model)
    detector.warmup()
    return detector


@pytest.fixture(scope="session")
def photos(assets_dir: Path) -> dict[str, npt.NDArray[np.uint8]]:
    """Real photos as BGR arrays: ultralytics' samples and scikit-image's (a cat, an astronaut
    framed from the chest up, a cup of coffee with nobody in it)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None, "scikit-image is missing: run scripts/setup_sidecar_env"
    assert spec.submodule_search_locations
    skimage_data = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = {
        "bus": assets_dir / "bus.jpg",
        "zidane": assets_dir / "zidane.jpg",
        "cat": skimage_data / "chelsea.png",
        "astronaut": skimage_data / "astronaut.png",
        "coffee": skimage_data / "coffee.png",
    }
    images = {}
    for name, path in files.items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None, f"cannot read {path}"
        images[name] = np.asarray(image, dtype=np.uint8)
    return images


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start real servers on 127.0.0.1, any free port; all are stopped after the test.

    `detector` is a DetectorSelection (or None to build one from the configuration);
    other keyword arguments are dotted configuration overrides.
    """
    running: list[Running] = []

    async def start(detector: DetectorSelection | None = None, **overrides: Any) -> Running:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "token": TOKEN,
            # Plaintext, chosen: the TLS tests turn it on (tls__mode="auto").
            "tls.mode": "off",
            "data_dir": tmp_path / f"data{len(running)}",
            "models_dir": tmp_path / "no-models",
            "grace_period_s": 1.0,
            # The frame tests do not need the embedded LLM; loading it would slow every start.
            "llm.enabled": False,
        }
        settings.update({key.replace("__", "."): value for key, value in overrides.items()})
        config = load_config(env={}, overrides=settings)
        server = GRPCServer(config, detector=detector)
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        item = Running(
            server, channel, service_pb2_grpc.SecurityAIStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )
        running.append(item)
        return item

    yield start
    for item in running:
        await item.channel.close()
        await item.server.stop(0)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~0.5 MB random-weight llama GGUF: the real llama.cpp runs it in milliseconds."""
    from testlib.tiny_gguf import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("llm-models") / "tiny-random.gguf")


@pytest.fixture
def supervisor() -> Iterator[str]:
    """The URL of a fake Supervisor's discovery API (testlib/fake_supervisor.py)."""
    with serving() as url:
        yield url
