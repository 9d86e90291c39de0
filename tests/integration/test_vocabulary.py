"""The shared vocabulary: risk levels from scores, and zone kinds as the texts name them."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.home_security_ai.client import EventKind, RiskLevel, SecurityEvent
from custom_components.home_security_ai.vocabulary import (
    RISK_LEVELS,
    ZONE_KINDS,
    is_threat,
    risk_level_name,
)

INTEGRATION = Path(__file__).resolve().parents[2] / "custom_components" / "home_security_ai"


def _event(score: int, level: RiskLevel = RiskLevel.UNSPECIFIED) -> SecurityEvent:
    return SecurityEvent(
        sequence=1,
        event_id="e",
        camera_id="porch",
        kind=EventKind.SECURITY,
        risk_score=score,
        risk_level=level,
    )


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0, "low"),
        (29, "low"),
        (30, "medium"),
        (59, "medium"),
        (60, "high"),
        (84, "high"),
        (85, "critical"),
        (100, "critical"),
    ],
)
def test_risk_level_from_the_score(score: int, level: str) -> None:
    """An event that names no level gets one from its score; only high and up is a threat."""
    assert risk_level_name(_event(score)) == level
    threat = is_threat(
        risk_level_name(_event(score)), alert=True, held_by_incident=False, active=False
    )
    assert threat is (level in ("high", "critical"))


def test_a_named_level_wins_over_the_score() -> None:
    assert risk_level_name(_event(95, RiskLevel.LOW)) == "low"
    assert [level.name.lower() for level in RiskLevel if level.value] == list(RISK_LEVELS)


def test_the_texts_name_every_zone_kind() -> None:
    """The forms, their errors and the zones action list the zone kinds in words: the same
    list as the vocabulary's, in every place."""
    text = (INTEGRATION / "strings.json").read_text(encoding="utf-8")
    listed = ", ".join(ZONE_KINDS[:-1]) + f" or {ZONE_KINDS[-1]}"
    assert text.count("perimeter") == text.count(listed) == 4
