"""The Home Assistant add-on: its manifest, its options, and a real start with discovery."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from test_sidecar_cli import clean_env, wait_for_file
from testlib.fake_supervisor import DISCOVERY_UUID, FakeSupervisor

from gpu_server.addon import AddonOptionsError, settings_from_options
from gpu_server.announce import SUPERVISOR_SERVICE
from gpu_server.config import ServerConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
ADDON = REPO_ROOT / "addon"


def addon_config() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((ADDON / "config.yaml").read_text())
    return loaded


def test_addon_manifest_matches_the_integration_and_its_options() -> None:
    config = addon_config()
    manifest = json.loads(
        (REPO_ROOT / "custom_components" / "home_security_ai" / "manifest.json").read_text()
    )
    assert config["discovery"] == [manifest["domain"]] == [SUPERVISOR_SERVICE]
    assert set(config["arch"]) == {"amd64", "aarch64"}  # type: ignore[arg-type]
    schema = config["schema"]
    options = config["options"]
    assert isinstance(schema, dict)
    assert isinstance(options, dict)
    assert set(options) <= set(schema)
    # Every option has a name in the add-on's page.
    translations = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())
    assert set(translations["configuration"]) == set(schema)
    assert (REPO_ROOT / "repository.yaml").is_file()
    # The defaults make a valid server configuration.
    ServerConfig.model_validate(settings_from_options(options))


def test_options_become_settings() -> None:
    defaults = settings_from_options(addon_config()["options"])  # type: ignore[arg-type]
    assert defaults["tls"] == {"mode": "auto"}
    assert "llm" not in defaults  # the embedded language model
    assert settings_from_options({"language_model": "off", "tls": False})["llm"] == {
        "enabled": False
    }
    assert settings_from_options({"tls": False})["tls"] == {"mode": "off"}
    remote = settings_from_options(
        {
            "language_model": "remote",
            "remote_url": "http://gpu-box:8000/v1",
            "remote_model": "nemotron",
            "remote_api_key": "secret",
            "decode_budget_megabytes": 512,
        }
    )
    assert remote["llm"] == {
        "remote": {"url": "http://gpu-box:8000/v1", "model": "nemotron", "api_key": "secret"}
    }
    assert remote["limits"] == {"decode_budget_bytes": 512 * 1024 * 1024}
    config = ServerConfig.model_validate(remote)
    assert config.llm.remote is not None
    with pytest.raises(AddonOptionsError, match="remote_url"):
        settings_from_options({"language_model": "remote"})


def test_addon_starts_and_hands_its_token_to_the_supervisor(
    tmp_path: Path, supervisor: str
) -> None:
    """As the Supervisor runs it: options in, server up with TLS, discovery with the token."""
    options = tmp_path / "options.json"
    options.write_text(
        json.dumps(
            {
                "models_folder": str(tmp_path / "models"),
                "language_model": "off",
                "tls": True,
                "log_level": "info",
            }
        )
    )
    ready = tmp_path / "ready.json"
    env = {
        **clean_env(),
        "SUPERVISOR_TOKEN": "supervisor-secret",
        "HSAI_SUPERVISOR_URL": supervisor,
        "HSAI_ADVERTISED_HOST": "local-home-security-ai",
        "HSAI_HOST": "127.0.0.1",
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gpu_server.addon", "--options", str(options),
            "--data-dir", str(tmp_path / "data"), "--port", "0", "--ready-file", str(ready),
        ],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        info = wait_for_file(ready, process)
        assert info["tls_fingerprint"]
        for _ in range(400):
            if FakeSupervisor.calls:
                break
            threading.Event().wait(0.05)
        assert FakeSupervisor.calls, "the add-on did not announce itself"
        _, _, _, body = FakeSupervisor.calls[0]
        token = (tmp_path / "data" / "token").read_text().strip()
        assert body["config"]["token"] == token
        assert body["config"]["tls_fingerprint"] == info["tls_fingerprint"]
        assert body["config"]["host"] == "local-home-security-ai"
        # The written configuration may hold an API key: only the add-on reads it.
        assert (tmp_path / "data" / "server.yaml").stat().st_mode & 0o077 == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    assert FakeSupervisor.calls[-1][:2] == ("DELETE", f"/discovery/{DISCOVERY_UUID}")


def test_addon_refuses_unusable_options(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"language_model": "remote"}))
    result = subprocess.run(
        [sys.executable, "-m", "gpu_server.addon", "--options", str(options),
         "--data-dir", str(tmp_path / "data")],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "remote_url" in result.stderr
