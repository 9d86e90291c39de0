"""The light install: the embedded default needs no extra, and a setting that asks for a missing
extra names it.

The server runs as a real `python -m gpu_server` subprocess. A `sitecustomize` on its
PYTHONPATH hides packages as if they were not installed (None in sys.modules: imports fail and
find_spec answers None) and writes the modules the process imported when it exits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from testlib.required import required

from gpu_server import extras
from gpu_server._generated import frames_pb2, service_pb2_grpc, status_pb2
from gpu_server.ingest.embedded_ssd import find_model

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "requirements"
PHOTOS = Path(__file__).parent / "data" / "photos"
STARTUP_LIMIT_S = 120
TOKEN = "light-install-token-0123"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
# What no extra-free set-up has, and the embedded default must not import even where it is.
HEAVY = ("torch", "torchvision", "ultralytics", "transformers", "onnx", "onnxslim", "tritonclient")
# Everything the extras bring: hidden, the server sees what a light install has.
ALL_EXTRAS = sorted({module for modules in extras.MODULES.values() for module in modules})

SITECUSTOMIZE = """
import atexit, os, sys

for _name in filter(None, os.environ.get("TEST_HIDE_MODULES", "").split(",")):
    sys.modules[_name] = None  # as if not installed


def _dump():
    with open(os.environ["TEST_MODULES_FILE"], "w") as out:
        out.write("\\n".join(sorted(n for n, m in sys.modules.items() if m is not None)))


atexit.register(_dump)
"""


@dataclass
class Sidecar:
    port: int
    log: str = ""
    modules: frozenset[str] = frozenset()


def server_env(site: Path, hide: tuple[str, ...], modules_file: Path) -> dict[str, str]:
    # The server's own settings come from the test; where the set-up put the models stays.
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("HSAI_") or k.endswith("MODEL_DIR")
    }
    env["PYTHONPATH"] = os.pathsep.join((str(site), str(REPO_ROOT)))
    env["HSAI_TOKEN"] = TOKEN
    env["TEST_HIDE_MODULES"] = ",".join(hide)
    env["TEST_MODULES_FILE"] = str(modules_file)
    return env


@contextmanager
def sidecar(tmp_path: Path, config: str = "", hide: tuple[str, ...] = ()) -> Iterator[Sidecar]:
    """A real sidecar on loopback; once it stopped (SIGTERM, exit 0), its log and modules."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    # Plain gRPC on loopback: what is under test lies behind the channel.
    (tmp_path / "config.yaml").write_text(f"tls:\n  mode: 'off'\n{config}")
    ready, modules_file = tmp_path / "ready.json", tmp_path / "modules.txt"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gpu_server", "--config", str(tmp_path / "config.yaml"),
            "--host", "127.0.0.1", "--port", "0",
            "--models-dir", str(tmp_path / "models"), "--data-dir", str(tmp_path / "data"),
            "--ready-file", str(ready),
        ],
        cwd=tmp_path, env=server_env(site, hide, modules_file),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not ready.exists():
        process.kill()
        pytest.fail(f"the sidecar did not start:\n{process.communicate()[1].decode()}")
    running = Sidecar(port=int(json.loads(ready.read_text())["port"]))
    try:
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        running.log = process.communicate(timeout=60)[1].decode()
    assert process.returncode == 0, running.log
    running.modules = frozenset(modules_file.read_text().split())


def status(port: int) -> status_pb2.ServerStatus:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        result: status_pb2.ServerStatus = service_pb2_grpc.SecurityAIStub(channel).GetStatus(
            status_pb2.GetStatusRequest(), metadata=AUTH, timeout=30
        )
        return result


def submit(port: int, photo: Path) -> frames_pb2.FrameAck:
    frame = frames_pb2.Frame(
        camera_id="front_door", image=photo.read_bytes(), client_ref=photo.stem,
        source=frames_pb2.FRAME_SOURCE_UPLOAD, source_ref=photo.name,
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        acks = list(
            service_pb2_grpc.SecurityAIStub(channel).SubmitFrames(
                iter([frame]), metadata=AUTH, timeout=60
            )
        )
    assert len(acks) == 1
    return acks[0]


@pytest.fixture
def embedded_model() -> Path:
    path, reason = find_model(None, Path("no-models"))
    return required(
        path, f"the set-up could not fetch the embedded model: {reason}",
        "HSAI_REQUIRE_EMBEDDED_MODEL",
    )


def test_the_embedded_default_imports_no_extra(tmp_path: Path, embedded_model: Path) -> None:
    # Here every extra is installed: the default must still leave them all unimported.
    with sidecar(tmp_path) as server:
        assert status(server.port).detector.backend == "litert"
        ack = submit(server.port, PHOTOS / "person.jpg")
        assert ack.status == frames_pb2.ACK_STATUS_ACCEPTED, ack.message
        assert "person" in {detection.label for detection in ack.detections}
    assert "gpu_server.ingest.embedded_ssd" in server.modules
    assert "ai_edge_litert" in server.modules
    assert sorted(server.modules & set(HEAVY)) == []


@pytest.mark.parametrize(("backend", "extra"), [("pytorch", "yolo"), ("onnx", "onnx"),
                                                ("triton", "triton")])
def test_a_setting_that_needs_a_missing_extra_names_it(
    tmp_path: Path, embedded_model: Path, backend: str, extra: str
) -> None:
    models = tmp_path / "models"
    (models / "appearance").mkdir(parents=True)
    (models / "yolo11n.pt").write_bytes(b"weights a light install cannot load")
    (models / "appearance" / "config.json").write_text("{}")
    config = f"detector:\n  weights: yolo11n.pt\n  backend: {backend}\n"
    with sidecar(tmp_path, config, hide=tuple(ALL_EXTRAS)) as server:
        found = status(server.port)
        # It runs on the embedded default and still detects.
        assert (found.detector.backend, found.detector.fallback) == ("litert", True)
        ack = submit(server.port, PHOTOS / "person.jpg")
        assert "person" in {detection.label for detection in ack.detections}
    reason = found.detector.fallback_reason
    assert f"the {extra} extra is not installed" in reason
    assert reason.endswith(f"scripts/setup_sidecar_env --with {extra}")
    assert "ultralytics" in reason
    assert "scripts/setup_sidecar_env --with faces" in found.enrichment.faces_reason
    assert "scripts/setup_sidecar_env --with plates" in found.enrichment.plates_reason
    # The log says it too, re-identification's appearance model included.
    assert f"the {extra} extra is not installed" in server.log
    assert "scripts/setup_sidecar_env --with reid" in server.log
    assert sorted(server.modules & set(ALL_EXTRAS)) == []


def requirement_lines(path: Path) -> list[str]:
    stripped = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in stripped if line]


def requirement_names(name: str) -> set[str]:
    """The packages requirements/sidecar-<name>.txt installs, following its `-r` lines."""
    names: set[str] = set()
    for line in requirement_lines(REQUIREMENTS / f"sidecar-{name}.txt"):
        if line.startswith("-r sidecar"):
            if line != "-r sidecar.txt":
                names |= requirement_names(line.removeprefix("-r sidecar-").removesuffix(".txt"))
        else:
            names.add(normalize(line))
    return names


def normalize(requirement: str) -> str:
    return re.split(r"[\[<>=!;~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_extras_agree_everywhere() -> None:
    """pyproject.toml, requirements/sidecar-<extra>.txt, the set-up's list and the sidecar's."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]

    def pyproject_names(extra: str) -> set[str]:
        names: set[str] = set()
        for item in optional[extra]:
            if item.startswith("home-security-ai["):
                names |= pyproject_names(item.removeprefix("home-security-ai[").rstrip("]"))
            else:
                names.add(normalize(item))
        return names

    for extra in optional:
        assert pyproject_names(extra) == requirement_names(extra), extra
    setup = (REPO_ROOT / "scripts" / "setup_sidecar_env").read_text()
    listed = re.search(r"^known_extras=\((.*)\)$", setup, re.MULTILINE)
    assert listed is not None
    assert listed.group(1).split() == list(optional)
    assert set(extras.MODULES) <= set(optional)


def test_a_package_pinned_in_two_files_has_one_pin() -> None:
    pins: dict[str, tuple[str, str]] = {}
    for path in sorted(REQUIREMENTS.glob("sidecar*.txt")):
        for line in requirement_lines(path):
            if line.startswith("-"):
                continue
            name, spec = normalize(line), re.sub(r"^[\w.-]+(\[[^\]]*\])?", "", line).strip()
            first = pins.setdefault(name, (path.name, spec))
            assert first[1] == spec, f"{name}: {first[0]} pins {first[1]!r}, {path.name} {spec!r}"


@pytest.mark.parametrize("extra", sorted(extras.MODULES))
def test_each_extra_brings_the_modules_the_sidecar_looks_for(extra: extras.Extra) -> None:
    # The tests run with every extra (scripts/test installs them all).
    assert extras.why_missing(extra) is None
