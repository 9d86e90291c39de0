"""Fixtures for the risk-analysis tests: a real model server on a tiny GGUF, typical inputs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from llm_testlib import TEST_LIMITS, TEST_N_CTX, llm_settings

from gpu_server.config import OutputConstraint
from gpu_server.llm.assessor import ModelAssessor
from gpu_server.llm.client import ChatClient
from gpu_server.llm.inputs import (
    AnalysisInput,
    BaselineInput,
    CameraActivity,
    DetectionInput,
    UntrustedText,
    ZoneInput,
)
from gpu_server.llm.model_server import ModelServer
from gpu_server.llm.templates import PromptLibrary
from gpu_server.vocabulary import RiskZoneKind


@pytest.fixture
async def model_server(tiny_gguf: Path, tmp_path: Path) -> AsyncIterator[ModelServer]:
    """The real llama-cpp-python server process on loopback, serving the tiny model."""
    server = ModelServer(tiny_gguf, llm_settings(), tmp_path / "llm")
    try:
        assert await server.start(), server.reason
        yield server
    finally:
        await server.stop()


MakeAssessor = Callable[..., ModelAssessor]


@pytest.fixture
async def make_assessor(model_server: ModelServer) -> AsyncIterator[MakeAssessor]:
    made: list[ModelAssessor] = []

    def make(**overrides: Any) -> ModelAssessor:
        client = ChatClient(
            model_server.base_url,
            model=model_server.model_name,
            api_key=model_server.api_key,
            tokenize_url=model_server.tokenize_url,
        )
        options: dict[str, Any] = {
            "model_name": model_server.model_name,
            "prompts": PromptLibrary.builtin(),
            "n_ctx": TEST_N_CTX,
            "constraint": OutputConstraint.GRAMMAR,
            "seed": 7,
            "temperature": 0.1,
            "grammar_limits": TEST_LIMITS,
            "llama_sampling": True,
        }
        options.update(overrides)
        instance = ModelAssessor(client, **options)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        await instance.client.aclose()


@pytest.fixture
def assessor(make_assessor: MakeAssessor) -> ModelAssessor:
    return make_assessor()


MakeInput = Callable[..., AnalysisInput]


@pytest.fixture
def make_input() -> MakeInput:
    def make(**overrides: Any) -> AnalysisInput:
        start = datetime(2026, 3, 14, 2, 10, 0)
        values: dict[str, Any] = {
            "camera_id": "cam-front",
            "camera_name": "Front door",
            "start": start,
            "end": start + timedelta(seconds=8),
            "local_time": start,
            "detections": (
                DetectionInput(label="person", confidence=0.91, zone="Porch"),
                DetectionInput(label="person", confidence=0.62, zone="Driveway"),
                DetectionInput(label="car", confidence=0.55, zone="Driveway"),
            ),
            "zones": (
                ZoneInput(name="Porch", kind=RiskZoneKind.ENTRY),
                ZoneInput(name="Driveway", kind=RiskZoneKind.PERIMETER),
            ),
            "baseline": BaselineInput(
                anomaly_score=0.8,
                expected_events_this_hour=0.2,
                history=("Fri 02:00: 0 events", "Thu 02:00: 0 events"),
            ),
            "other_cameras": (
                CameraActivity(camera_name="Garden", minutes_ago=3, labels=("person",)),
            ),
            "untrusted_texts": (UntrustedText(source="ocr_plate", text="KA 01 AB 1234"),),
        }
        values.update(overrides)
        return AnalysisInput(**values)

    return make
