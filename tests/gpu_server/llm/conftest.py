"""Fixtures for the risk-analysis tests: a tiny real GGUF model and typical inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gpu_server.llm.analyzer import LlmAnalyzer
from gpu_server.llm.grammar import GrammarLimits
from gpu_server.llm.inputs import (
    AnalysisInput,
    BaselineInput,
    CameraActivity,
    DetectionInput,
    UntrustedText,
    ZoneInput,
    ZoneKind,
)
from gpu_server.llm.testing import write_tiny_gguf

# Short strings keep each generation on the random model to a few hundred tokens.
TEST_LIMITS = GrammarLimits(summary=40, reasoning=80, recommended_action=40)
TEST_N_CTX = 8192


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-random.gguf")


MakeAnalyzer = Callable[..., LlmAnalyzer]


@pytest.fixture
def make_analyzer(tiny_gguf: Path) -> Iterator[MakeAnalyzer]:
    # Fresh ones per test: loading the tiny model takes milliseconds, and an analyzer's asyncio
    # lock must belong to the test's own event loop.
    made: list[LlmAnalyzer] = []

    def make(**overrides: Any) -> LlmAnalyzer:
        options: dict[str, Any] = {
            "n_ctx": TEST_N_CTX,
            "n_threads": 2,
            "grammar_limits": TEST_LIMITS,
            "seed": 7,
        }
        options.update(overrides)
        instance = LlmAnalyzer(tiny_gguf, **options)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.close()


@pytest.fixture
def analyzer(make_analyzer: MakeAnalyzer) -> LlmAnalyzer:
    return make_analyzer()


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
                ZoneInput(name="Porch", kind=ZoneKind.ENTRY),
                ZoneInput(name="Driveway", kind=ZoneKind.PERIMETER),
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
