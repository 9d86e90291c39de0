"""The language model as Home Assistant shows it: a sensor on the server device, and a repair
issue when it keeps failing. Against a real sidecar whose model server runs (or cannot)."""

from __future__ import annotations

import subprocess
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import LanguageModelState, LanguageModelStatus
from custom_components.home_security_ai.const import DOMAIN, LANGUAGE_MODEL_ISSUE_AFTER

from .conftest import make_entry
from .sidecar_process import Sidecar, sidecar_python

MODEL_FILE = "model.gguf"


def _sidecar_with_model(root: Path, model: bytes | None) -> Sidecar:
    """A sidecar whose language model is the tiny random GGUF, or the given bytes."""
    models = root / "models"
    models.mkdir(parents=True)
    if model is None:
        # Written with the sidecar's own environment, which has the gguf package.
        subprocess.run(
            [
                str(sidecar_python()),
                "-c",
                "import sys; sys.path.insert(0, 'tests/gpu_server'); "
                "from testlib.tiny_gguf import write_tiny_gguf; "
                "write_tiny_gguf(__import__('pathlib').Path(sys.argv[1]))",
                str(models / MODEL_FILE),
            ],
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    else:
        (models / MODEL_FILE).write_bytes(model)
    return Sidecar(
        root=root,
        env={"HSAI_LLM_ENABLED": "true", "HSAI_LLM_MODEL": MODEL_FILE, "HSAI_LLM_TIMEOUT_S": "30"},
    )


@pytest.fixture
def working_model(tmp_path: Path) -> Generator[Sidecar]:
    sidecar = _sidecar_with_model(tmp_path / "sidecar", None)
    sidecar.start()
    yield sidecar
    sidecar.stop()


@pytest.fixture
def broken_model(tmp_path: Path) -> Generator[Sidecar]:
    sidecar = _sidecar_with_model(tmp_path / "sidecar", b"not a model")
    sidecar.start()
    yield sidecar
    sidecar.stop()


async def _setup(hass: HomeAssistant, sidecar: Sidecar) -> MockConfigEntry:
    entry = make_entry(sidecar)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def _model_sensor(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    unique_id = f"{entry.unique_id}_server_language_model"
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id)
    assert entity_id is not None
    return entity_id


async def test_a_running_model_shows_as_ready(
    hass: HomeAssistant, working_model: Sidecar
) -> None:
    entry = await _setup(hass, working_model)
    state = hass.states.get(_model_sensor(hass, entry))
    assert state is not None
    assert state.state == "ready"
    assert state.attributes["backend"] == "embedded"
    assert state.attributes["model"] == MODEL_FILE
    assert state.attributes["restarts"] == 0
    assert state.attributes["friendly_name"] == "Home Security AI (127.0.0.1) Language model"
    assert not ir.async_get(hass).async_get_issue(
        DOMAIN, f"language_model_failing_{entry.entry_id}"
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_model_that_cannot_load_is_a_repair_issue(
    hass: HomeAssistant, broken_model: Sidecar
) -> None:
    entry = await _setup(hass, broken_model)
    state = hass.states.get(_model_sensor(hass, entry))
    assert state is not None
    assert state.state == "failed"
    assert state.attributes["reason"].startswith(f"could not load {MODEL_FILE}")
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"language_model_failing_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "language_model_failed"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["model"] == MODEL_FILE
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_model_failing_for_a_while_raises_an_issue_that_clears_when_it_answers(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = mock_config_entry.runtime_data.coordinator
    issue_id = f"language_model_failing_{mock_config_entry.entry_id}"
    issues = ir.async_get(hass)
    open_circuit = LanguageModelStatus(
        state=LanguageModelState.CIRCUIT_OPEN, model="nemotron", reason="no answer within 60s"
    )

    coordinator.update_language_model_issue(open_circuit)
    assert issues.async_get_issue(DOMAIN, issue_id) is None  # a short outage is no issue
    freezer.tick(LANGUAGE_MODEL_ISSUE_AFTER - timedelta(seconds=1))
    coordinator.update_language_model_issue(open_circuit)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    freezer.tick(timedelta(seconds=2))
    coordinator.update_language_model_issue(open_circuit)
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "language_model_circuit_open"
    assert issue.translation_placeholders == {
        "model": "nemotron",
        "reason": "no answer within 60s",
        "fallbacks": "0",
    }

    coordinator.update_language_model_issue(LanguageModelStatus(state=LanguageModelState.READY))
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    # Failing again starts the clock over.
    coordinator.update_language_model_issue(open_circuit)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
