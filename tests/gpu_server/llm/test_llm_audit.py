"""The audit of a model's text against the detections and the rules' level."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_server.llm.inputs import AnalysisInput, DetectionInput
from gpu_server.llm.schema import Assessment
from gpu_server.risk.audit import audit
from gpu_server.risk.rules import assess_with_rules
from gpu_server.vocabulary import RiskLevel, level_for_score

MakeInput = Callable[..., AnalysisInput]


def _answer(summary: str, reasoning: str = "", score: int = 10) -> Assessment:
    return Assessment(
        risk_score=score,
        risk_level=level_for_score(score),
        summary=summary,
        reasoning=reasoning,
        recommended_action="None.",
        model="small.gguf",
    )


def _check(analysis: AnalysisInput, answer: Assessment) -> tuple[str, ...]:
    return audit(answer, analysis, assess_with_rules(analysis, "audit"))


@pytest.mark.parametrize(
    ("summary", "notes"),
    [
        ("A cat crosses the lawn.", ()),
        ("No person is visible; only a cat.", ()),  # a negated claim is no claim
        ("Nobody there, no sign of forced entry.", ()),
        ("A man walks to the door.", ("mentions a person but none was detected",)),
        ("A car is parked outside.", ("mentions a vehicle but none was detected",)),
        ("The house was attacked.", ("describes an attack or break-in that nothing "
                                     "detected shows",)),
    ],
)
def test_claims_must_be_backed_by_detections(
    make_input: MakeInput, summary: str, notes: tuple[str, ...]
) -> None:
    cat = make_input(
        detections=(DetectionInput(label="cat", confidence=0.9),),
        local_time=make_input().local_time.replace(hour=14),
        untrusted_texts=(),
        other_cameras=(),
    )
    assert _check(cat, _answer(summary)) == notes


def test_what_was_detected_may_be_named(make_input: MakeInput) -> None:
    analysis = make_input()  # people and a car, at night, at the entry
    rules = assess_with_rules(analysis, "audit")
    assert rules.risk_level in {RiskLevel.HIGH, RiskLevel.CRITICAL}
    answer = _answer("A person near a car at the door broke in.", score=80)
    assert audit(answer, analysis, rules) == ()


def test_a_level_far_from_the_rules_is_noted(make_input: MakeInput) -> None:
    analysis = make_input()
    notes = _check(analysis, _answer("A person at the door, all is well.", score=0))
    assert len(notes) == 1
    assert notes[0].startswith("its level low is far from the rules'")


def test_text_that_runs_in_circles_is_noted(make_input: MakeInput) -> None:
    analysis = make_input()
    looping = _answer(
        "A person at the door, and the anomaly score is 0.8, and the anomaly score is 0.8, "
        "and the anomaly score is 0.8.",
        score=80,
    )
    assert _check(analysis, looping) == ("repeats itself",)


def test_an_untrusted_model_may_not_differ_from_the_rules_by_one_level(
    make_input: MakeInput,
) -> None:
    analysis = make_input()  # people at the entry at night: the rules say high or critical
    rules = assess_with_rules(analysis, "audit")
    one_below = {RiskLevel.HIGH: 40, RiskLevel.CRITICAL: 70}[rules.risk_level]
    answer = _answer("A person at the door.", score=one_below)
    assert audit(answer, analysis, rules) == ()
    (note,) = audit(answer, analysis, rules, level_gap=1)
    assert note.startswith("its level ")
