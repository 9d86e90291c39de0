"""`python -m gpu_server` as a real subprocess: TLS and a generated token by default, the token
from a file or the environment (never the command line), ready file, SIGTERM exits 0."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gpu_server.__main__ import main
from gpu_server._generated import service_pb2_grpc, status_pb2
from gpu_server.ingest.embedded_ssd import MODEL_NAME, find_model
from gpu_server.tls import SERVER_NAME
from gpu_server.token_file import read_token_file, readable_by_others

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


def start_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    ready = tmp_path / "state" / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gpu_server", "--host", "127.0.0.1", "--port", "0",
            "--models-dir", str(tmp_path / "models"), "--data-dir", str(tmp_path / "data"),
            "--ready-file", str(ready), *args,
        ],
        cwd=tmp_path, env={**clean_env(), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return process, ready


def stop_cli(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM; the server must exit 0. Returns its log."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    log = err.decode()
    assert process.returncode == 0, log
    return log


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_cli_defaults_tls_and_a_generated_token_until_sigterm(tmp_path: Path) -> None:
    """No token and no TLS setting: a private generated token, TLS with a pinnable certificate."""
    process, ready = start_cli(tmp_path)
    try:
        info = wait_for_file(ready, process)
        port = info["port"]
        assert isinstance(port, int)
        assert port > 0
        assert info["host"] == "127.0.0.1"
        assert info["server_id"] == (tmp_path / "data" / "server_id").read_text().strip()
        token_file = tmp_path / "data" / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32

        # The client side of the default: fetch the certificate, check its fingerprint against
        # the one the server announced, then trust that certificate alone.
        cert_pem = ssl.get_server_certificate(("127.0.0.1", port))
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest().upper()
        assert info["tls_fingerprint"] == ":".join(
            digest[i : i + 2] for i in range(0, len(digest), 2)
        )
        credentials = grpc.ssl_channel_credentials(root_certificates=cert_pem.encode())
        name_override = [("grpc.ssl_target_name_override", SERVER_NAME)]
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials, name_override) as channel:
            auth = (("authorization", f"Bearer {token}"),)
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
        # A plaintext client gets nothing.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as plaintext:
                service_pb2_grpc.SecurityAIStub(channel).GetStatus(
                    status_pb2.GetStatusRequest(), metadata=auth, timeout=10
                )
            assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE

        # The probe finds the token and the certificate in the data folder, as in the container.
        probe = [sys.executable, "-m", "gpu_server.healthcheck", "--host", "127.0.0.1"]
        probe += ["--port", str(port), "--data-dir", str(tmp_path / "data")]
        wrong = private_file(tmp_path / "wrong-token", "wrong\n")
        good = subprocess.run(probe, env=clean_env(), capture_output=True, check=False)
        bad = subprocess.run(
            [*probe, "--token-file", str(wrong)], env=clean_env(), capture_output=True,
            check=False,
        )
        assert good.returncode == 0, good.stderr.decode()
        assert bad.returncode == 1
        assert b"UNAUTHENTICATED" in bad.stderr
    finally:
        log = stop_cli(process)
    assert f"listening on 127.0.0.1:{port}" in log
    assert str(info["tls_fingerprint"]) in log
    assert token not in log


def test_cli_token_file_wins_over_the_environment_and_plaintext_is_chosen(
    tmp_path: Path,
) -> None:
    token_file = private_file(tmp_path / "token.txt", "  file-token-0123456789\n")
    process, ready = start_cli(
        tmp_path, "--token-file", str(token_file), "--insecure-plaintext",
        env={"HSAI_TOKEN": "env-token-0123456789"},
    )
    try:
        info = wait_for_file(ready, process)
        assert info["tls_fingerprint"] is None
        with grpc.insecure_channel(f"127.0.0.1:{info['port']}") as channel:
            stub = service_pb2_grpc.SecurityAIStub(channel)
            auth = (("authorization", "Bearer file-token-0123456789"),)
            status = stub.GetStatus(status_pb2.GetStatusRequest(), metadata=auth, timeout=30)
            assert status.server_id == info["server_id"]
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetStatus(
                    status_pb2.GetStatusRequest(),
                    metadata=(("authorization", "Bearer env-token-0123456789"),), timeout=30,
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        log = stop_cli(process)
    assert "WARNING gpu_server.server: TLS is off" in log
    assert "file-token-0123456789" not in log
    assert "other users can read" not in log
    assert not (tmp_path / "data" / "token").exists()  # a configured token is never written


@pytest.mark.parametrize("argv", [["--token", "s3cret-0123456789"], ["--token=s3cret-0123456789"]])
def test_cli_refuses_a_token_on_the_command_line(tmp_path: Path, argv: list[str]) -> None:
    for module in ("gpu_server", "gpu_server.healthcheck"):
        result = subprocess.run(
            [sys.executable, "-m", module, "--data-dir", str(tmp_path / "data"), *argv],
            cwd=tmp_path, env=clean_env(), capture_output=True, check=False, timeout=60,
        )
        assert result.returncode == (2 if module == "gpu_server" else 1)
        message = result.stderr.decode()
        assert "--token is refused" in message
        assert "--token-file" in message
        assert "HSAI_TOKEN" in message
        assert "s3cret" not in message
    assert not (tmp_path / "data").exists()  # nothing started


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read the token file"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ("two\nlines\n", "one token of printable ASCII"),
        ("with space", "one token of printable ASCII"),
        ("t\u00f6ken", "one token of printable ASCII"),
    ],
)
def test_an_unusable_token_file_stops_the_start(
    tmp_path: Path, content: str | None, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token.txt"
    if content is not None:
        private_file(path, content)
    assert main(["--token-file", str(path), "--data-dir", str(tmp_path / "data")]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_a_token_file_others_can_read_is_reported(tmp_path: Path) -> None:
    path = private_file(tmp_path / "token.txt", "t" * 24)
    assert not readable_by_others(path)
    path.chmod(0o644)
    assert readable_by_others(path)
    assert read_token_file(path) == "t" * 24


def test_cli_refuses_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("port: not-a-port\n")
    result = subprocess.run(
        [sys.executable, "-m", "gpu_server", "--config", str(config)],
        cwd=tmp_path, env=clean_env(), capture_output=True, check=False, timeout=60,
    )
    assert result.returncode == 2
    assert b"invalid configuration" in result.stderr
