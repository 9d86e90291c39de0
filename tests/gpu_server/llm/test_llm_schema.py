from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpu_server.llm.schema import (
    Assessment,
    ModelOutput,
    reconcile,
    visible_text,
)
from gpu_server.vocabulary import RiskLevel, level_for_score


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0, RiskLevel.LOW),
        (29, RiskLevel.LOW),
        (30, RiskLevel.MEDIUM),
        (59, RiskLevel.MEDIUM),
        (60, RiskLevel.HIGH),
        (84, RiskLevel.HIGH),
        (85, RiskLevel.CRITICAL),
        (100, RiskLevel.CRITICAL),
    ],
)
def test_level_thresholds(score: int, level: RiskLevel) -> None:
    assert level_for_score(score) is level


@pytest.mark.parametrize("score", [-1, 101])
def test_level_rejects_out_of_range(score: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        level_for_score(score)


def _output(score: int, level: str) -> ModelOutput:
    return ModelOutput.model_validate(
        {
            "risk_score": score,
            "risk_level": level,
            "summary": "s",
            "reasoning": "r",
            "recommended_action": "a",
        }
    )


def test_consistent_level_is_kept() -> None:
    assessment = reconcile(_output(70, "high"), model="m.gguf", prompt_version="v1")
    assert assessment.risk_level is RiskLevel.HIGH
    assert not assessment.level_corrected
    assert assessment.model_risk_level is None
    assert assessment.model == "m.gguf"
    assert not assessment.fallback


def test_score_wins_when_level_disagrees() -> None:
    assessment = reconcile(_output(90, "low"), model="m.gguf", prompt_version="v1")
    assert assessment.risk_level is RiskLevel.CRITICAL
    assert assessment.level_corrected
    assert assessment.model_risk_level is RiskLevel.LOW


@pytest.mark.parametrize(
    "payload",
    [
        {"risk_score": 101},
        {"risk_score": -3},
        {"risk_score": "50"},
        {"risk_level": "severe"},
        {"summary": "x" * 201},
        {"reasoning": "x" * 601},
        {"recommended_action": "x" * 201},
        {"extra": "field"},
    ],
)
def test_model_output_rejects_out_of_bounds(payload: dict[str, object]) -> None:
    base: dict[str, object] = {
        "risk_score": 10,
        "risk_level": "low",
        "summary": "s",
        "reasoning": "r",
        "recommended_action": "a",
    }
    with pytest.raises(ValidationError):
        ModelOutput.model_validate({**base, **payload})


def test_invisible_characters_are_dropped_from_model_text() -> None:
    output = _output(10, "low").model_copy()
    cleaned = ModelOutput.model_validate(
        {**output.model_dump(), "summary": "a\u200bb\u202ec\x07d\u00ade"}
    )
    assert cleaned.summary == "abcde"
    assert visible_text("caf\u00e9 \u2603") == "caf\u00e9 \u2603"


def test_assessment_is_frozen() -> None:
    assessment = Assessment(
        risk_score=5,
        risk_level=RiskLevel.LOW,
        summary="s",
        reasoning="r",
        recommended_action="a",
    )
    with pytest.raises(ValidationError):
        assessment.risk_score = 99
