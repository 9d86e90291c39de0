"""`python -m gpu_server` as a real subprocess: ready file, answers, SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gpu_server._generated import service_pb2_grpc, status_pb2
from gpu_server.ingest.embedded_ssd import MODEL_NAME, find_model

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIMIT_S = 120


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSAI_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def wait_for_file(path: Path, process: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if path.exists():
            loaded: dict[str, object] = json.loads(path.read_text())
            return loaded
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    _, err = process.communicate()
    pytest.fail(f"the server did not become ready:\n{err.decode()}")


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "state" / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gpu_server", "--host", "127.0.0.1", "--port", "0",
            "--token", "cli-token", "--models-dir", str(tmp_path / "models"),
            "--data-dir", str(tmp_path / "data"), "--ready-file", str(ready),
        ],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        info = wait_for_file(ready, process)
        port = info["port"]
        assert isinstance(port, int)
        assert port > 0
        assert info["host"] == "127.0.0.1"
        assert info["server_id"] == (tmp_path / "data" / "server_id").read_text().strip()

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            auth = (("authorization", "Bearer cli-token"),)
            status = service_pb2_grpc.SecurityAIStub(channel).GetStatus(
                status_pb2.GetStatusRequest(), metadata=auth, timeout=30
            )
            assert status.server_id == info["server_id"]
            # No YOLO weights: the embedded detector when the set-up fetched it, else HOG.
            embedded, _ = find_model(None, tmp_path / "models")
            if embedded is not None:
                assert (status.detector.name, status.detector.fallback) == (MODEL_NAME, False)
            else:
                assert (status.detector.name, status.detector.fallback) == ("hog-people", True)
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), metadata=auth, timeout=30
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING

        probe = [sys.executable, "-m", "gpu_server.healthcheck", "--host", "127.0.0.1"]
        probe += ["--port", str(port)]
        good = subprocess.run([*probe, "--token", "cli-token"], env=clean_env(), check=False)
        bad = subprocess.run(
            [*probe, "--token", "wrong"], env=clean_env(), capture_output=True, check=False
        )
        assert good.returncode == 0
        assert bad.returncode == 1
        assert b"UNAUTHENTICATED" in bad.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    log = err.decode()
    assert process.returncode == 0, log
    assert f"listening on 127.0.0.1:{port}" in log
    assert "cli-token" not in log


def test_cli_refuses_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("port: not-a-port\n")
    result = subprocess.run(
        [sys.executable, "-m", "gpu_server", "--config", str(config)],
        cwd=tmp_path, env=clean_env(), capture_output=True, check=False, timeout=60,
    )
    assert result.returncode == 2
    assert b"invalid configuration" in result.stderr
