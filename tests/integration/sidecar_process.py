"""Start and stop the real inference sidecar as a subprocess for tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grpc._cython import cygrpc

REPO_ROOT = Path(__file__).resolve().parents[2]
SIDECAR_PYTHON = REPO_ROOT / ".venvs" / "sidecar" / "bin" / "python"
ASSETS = REPO_ROOT / ".venvs" / "sidecar" / "lib"
TOKEN = "test-token-0123456789"
START_TIMEOUT = 90.0
EMBEDDED_DETECTOR = "SSD MobileNetV2 (COCO)"
# Where scripts/setup_sidecar_env keeps the embedded detector's model (the sidecar looks there).
EMBEDDED_MODEL = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "home-security-ai/models/ssd-mobilenetv2-coco/mobilenet_ssd_v2_coco_quant_postprocess.tflite"
)


def expected_detector() -> tuple[str, bool]:
    """The detector a sidecar with an empty models folder picks, and whether it is a fallback:
    the embedded one when the set-up could fetch it (it needs npm), else HOG."""
    if EMBEDDED_MODEL.is_file():
        return EMBEDDED_DETECTOR, False
    return "hog-people", True


def expected_detector_state() -> str:
    """The server device's Detector sensor for that detector."""
    name, fallback = expected_detector()
    return f"{name} (fallback)" if fallback else name


def sidecar_python() -> Path:
    """Return the sidecar's interpreter, failing loudly when it is missing."""
    if not SIDECAR_PYTHON.exists():
        pytest.fail(
            f"The sidecar environment is missing ({SIDECAR_PYTHON.relative_to(REPO_ROOT)}); "
            "run scripts/setup_sidecar_env first."
        )
    return SIDECAR_PYTHON


def bus_photo() -> bytes:
    """Return the sample street photo shipped with ultralytics (it shows people)."""
    found = sorted(ASSETS.glob("python3*/site-packages/ultralytics/assets/bus.jpg"))
    if not found:
        pytest.fail("ultralytics/assets/bus.jpg is missing; run scripts/setup_sidecar_env first.")
    return found[0].read_bytes()


@dataclass
class Sidecar:
    """One sidecar process with its own folders; can be stopped and started again."""

    root: Path
    token: str = TOKEN
    host: str = "127.0.0.1"
    port: int = 0
    server_id: str = ""
    # The SHA-256 fingerprint of the certificate the sidecar presents when it runs with TLS.
    tls_fingerprint: str | None = None
    # Extra environment, e.g. a longer batch window for one test.
    env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def ready_file(self) -> Path:
        """Return where the sidecar says it is listening."""
        return self.root / "ready.json"

    @property
    def log_file(self) -> Path:
        """Return the sidecar's log."""
        return self.root / "sidecar.log"

    def start(self, port: int | None = None) -> None:
        """Start the sidecar (on `port`, or the previous one) and wait until it listens."""
        python = sidecar_python()
        for folder in ("models", "data", "yolo"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "YOLO_OFFLINE": "1",
            "YOLO_AUTOINSTALL": "0",
            "YOLO_CONFIG_DIR": str(self.root / "yolo"),
            "PYTHONPATH": str(REPO_ROOT),
            # Rule-based assessments answer at once; batches close within seconds.
            "HSAI_LLM_ENABLED": "false",
            "HSAI_BATCH_WINDOW_S": "3",
            "HSAI_BATCH_IDLE_S": "1",
            # The token in the environment, never on the command line; plaintext unless a test
            # asks for TLS (`env`: HSAI_TLS auto, or empty for the sidecar's default, TLS).
            "HSAI_TOKEN": self.token,
            "HSAI_TLS": "off",
            **self.env,
        }
        env.pop("VIRTUAL_ENV", None)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(python),
                    "-m",
                    "gpu_server",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port if port is None else port),
                    "--models-dir",
                    str(self.root / "models"),
                    "--data-dir",
                    str(self.root / "data"),
                    "--ready-file",
                    str(self.ready_file),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready_file.exists():
            if self._process.poll() is not None:
                pytest.fail(f"The sidecar exited early:\n{self.log_file.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"The sidecar did not start:\n{self.log_file.read_text()[-4000:]}")
            time.sleep(0.05)
        ready = json.loads(self.ready_file.read_text())
        self.port = int(ready["port"])
        self.server_id = str(ready["server_id"])
        self.tls_fingerprint = ready.get("tls_fingerprint")

    @property
    def tls_certificate_file(self) -> Path:
        """Return the certificate the sidecar made for itself (with HSAI_TLS=auto)."""
        return self.root / "data" / "tls" / "cert.pem"

    def kill(self) -> None:
        """Kill the sidecar at once (SIGKILL), as a crash or power loss would."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=15)

    def stop(self) -> None:
        """Stop the sidecar (SIGTERM, then SIGKILL if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def grpc_aio_engine_session() -> Generator[None]:
    """Start grpc.aio's process-wide poller thread once for the whole session.

    grpc.aio starts that thread with the first channel and stops it after the last one
    closes; Home Assistant's test harness fails a test that leaves a new thread behind,
    so the thread is kept alive across tests instead, and so is the client's loop thread.
    """
    loop = asyncio.new_event_loop()

    async def _init() -> None:
        cygrpc.init_grpc_aio()

    async def _shutdown() -> None:
        cygrpc.shutdown_grpc_aio()

    loop.run_until_complete(_init())
    # The client's own loop thread, likewise: it lives as long as the process.
    from custom_components.home_security_ai.client.client_loop import CLIENT_LOOP

    CLIENT_LOOP.start()
    yield
    CLIENT_LOOP.stop()
    loop.run_until_complete(_shutdown())
    loop.close()


def shared_sidecar_session(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str] | None = None
) -> Generator[Sidecar]:
    """One real sidecar for the tests that do not stop it (`env`: e.g. HSAI_TLS)."""
    sidecar = Sidecar(root=tmp_path_factory.mktemp("sidecar"), env=env or {})
    sidecar.start()
    yield sidecar
    sidecar.stop()
