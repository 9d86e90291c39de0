"""Configuration precedence and the persisted identity (server_id, token)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gpu_server.config import ConfigError, load_config
from gpu_server.identity import load_or_create_server_id, load_or_create_token
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector
from gpu_server.server import GRPCServer


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = load_config(env={})
    assert (config.host, config.port, config.token) == ("0.0.0.0", 50051, None)
    assert config.limits.max_message_bytes == 32 * 1024 * 1024
    assert config.limits.max_pixels == 50_000_000
    assert config.detector.device == "auto"
    assert config.allow_downloads is False


def test_yaml_then_env_then_flags(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "sidecar.yaml",
        "port: 6000\nhost: 10.0.0.1\nmodels_dir: /yaml/models\n"
        "detector:\n  confidence: 0.4\n  imgsz: 320\n"
        "batching:\n  max_batch_size: 2\n",
    )
    env = {
        "HSAI_PORT": "7000",
        "HSAI_DETECTOR_CONFIDENCE": "0.6",
        "HSAI_MAX_BATCH_SIZE": "16",
        "HSAI_ALLOW_DOWNLOADS": "true",
        "HSAI_DEVICE": "cpu",
        "HSAI_TOKEN": "from-env",
        "HSAI_DATA_DIR": "",  # empty means unset
    }
    config = load_config(path, env=env, overrides={"port": 8000, "models_dir": None})

    assert config.port == 8000  # flag beats env beats YAML
    assert config.host == "10.0.0.1"  # YAML only
    assert config.models_dir == Path("/yaml/models")  # a flag left out does not override
    assert config.data_dir == Path("data")
    assert config.detector.confidence == 0.6
    assert config.detector.imgsz == 320
    assert config.detector.device == "cpu"
    assert config.batching.max_batch_size == 16
    assert config.allow_downloads is True
    assert config.token is not None
    assert config.token.get_secret_value() == "from-env"
    assert "from-env" not in repr(config)


@pytest.mark.parametrize(
    ("yaml_text", "env"),
    [
        pytest.param("prot: 1\n", {}, id="unknown key"),
        pytest.param("detector:\n  confidense: 0.5\n", {}, id="unknown nested key"),
        pytest.param("", {"HSAI_PORT": "seventy"}, id="not a number"),
        pytest.param("", {"HSAI_DETECTOR_CONFIDENCE": "1.5"}, id="out of range"),
        pytest.param("limits:\n  max_frame_bytes: 99999999999\n", {}, id="frame above message"),
        pytest.param("- a list\n", {}, id="not a mapping"),
        pytest.param("log_level: loud\n", {}, id="unknown log level"),
        pytest.param("port: [\n", {}, id="broken YAML"),
    ],
)
def test_invalid_configuration_is_refused(
    tmp_path: Path, yaml_text: str, env: dict[str, str]
) -> None:
    path = write_yaml(tmp_path / "bad.yaml", yaml_text)
    with pytest.raises(ConfigError):
        load_config(path, env=env)


def test_a_remote_language_model_from_the_environment() -> None:
    config = load_config(
        env={
            "HSAI_LLM_REMOTE_URL": "http://gpu-box:8000/v1/",
            "HSAI_LLM_REMOTE_MODEL": "nvidia/nemotron-nano",
            "HSAI_LLM_REMOTE_API_KEY": "sk-secret-value",
        }
    )
    remote = config.llm.remote
    assert remote is not None
    assert (remote.url, remote.model, remote.constraint) == (
        "http://gpu-box:8000/v1", "nvidia/nemotron-nano", "json_schema"
    )
    assert remote.api_key is not None
    assert remote.api_key.get_secret_value() == "sk-secret-value"
    assert "sk-secret-value" not in repr(config)
    # Empty values (docker compose's defaults) mean no remote model.
    empty = {"HSAI_LLM_REMOTE_URL": "", "HSAI_LLM_REMOTE_MODEL": ""}
    assert load_config(env=empty).llm.remote is None
    with pytest.raises(ConfigError, match="model"):
        load_config(env={"HSAI_LLM_REMOTE_URL": "http://gpu-box:8000/v1"})
    with pytest.raises(ConfigError, match="http"):
        load_config(env={"HSAI_LLM_REMOTE_URL": "gpu-box:8000", "HSAI_LLM_REMOTE_MODEL": "m"})


def test_server_id_is_stable_across_restarts(tmp_path: Path) -> None:
    first = load_or_create_server_id(tmp_path / "data")
    assert load_or_create_server_id(tmp_path / "data") == first
    assert (tmp_path / "data" / "server_id").read_text().strip() == first
    assert load_or_create_server_id(tmp_path / "other") != first


def test_a_corrupt_server_id_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "server_id").write_text("not a uuid")
    replaced = load_or_create_server_id(tmp_path)
    assert replaced != "not a uuid"
    assert load_or_create_server_id(tmp_path) == replaced


def test_generated_token_is_private_and_reused(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    path = tmp_path / "token"
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path) == token


async def test_server_persists_identity_and_generated_token(tmp_path: Path) -> None:
    config = load_config(
        env={}, overrides={"host": "127.0.0.1", "port": 0, "data_dir": tmp_path / "d"}
    )
    ids, tokens = [], []
    for _ in range(2):
        server = GRPCServer(config, detector=DetectorSelection(HogPeopleDetector()))
        await server.start()
        ids.append(server.server_id)
        tokens.append(server.token)
        await server.stop(0)
    assert ids[0] == ids[1]
    assert tokens[0] == tokens[1] == (tmp_path / "d" / "token").read_text().strip()

    configured = load_config(
        env={"HSAI_TOKEN": "configured"},
        overrides={"host": "127.0.0.1", "port": 0, "data_dir": tmp_path / "e"},
    )
    server = GRPCServer(configured, detector=DetectorSelection(HogPeopleDetector()))
    await server.start()
    await server.stop(0)
    assert server.token == "configured"
    assert not (tmp_path / "e" / "token").exists()  # a configured token is never written
