"""The audit of a model's text against the detections and the rules' level."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_server.llm.inputs import AnalysisInput, DetectionInput
from gpu_server.llm.schema import Assessment
from gpu_server.risk.audit import audit, rubric
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
    assert notes[0].startswith("rates it low where the rules rate it")


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
    assert note.startswith("rates it ")


def test_the_rubric_rewards_text_that_uses_the_context_and_matches_the_rules(
    make_input: MakeInput,
) -> None:
    analysis = make_input()  # two people and a car, porch and driveway, night, anomaly, Garden
    rules = assess_with_rules(analysis, "audit")
    good = Assessment(
        risk_score=rules.risk_score,
        risk_level=rules.risk_level,
        summary="Two people and a car at the porch and driveway at night.",
        reasoning="Unusual for this hour; the Garden camera saw a person 3 minutes ago.",
        recommended_action="Check the live view now and lock the front door.",
        model="big.gguf",
    )
    scored = rubric(good, analysis, rules)
    assert (scored.context_used, scored.coherent, scored.justified, scored.actionable) == (
        5, 5, 5, 5,
    )
    assert scored.score == 5.0

    # The same level, said of nothing in particular: little context, no evidence named.
    vague = good.model_copy(
        update={"summary": "Something happened.", "reasoning": "It seems fine."}
    )
    scored = rubric(vague, analysis, rules)
    assert scored.context_used == 1
    assert scored.justified == 4
    assert scored.coherent == 5


def test_the_rubric_marks_down_unbacked_looping_unjustified_and_unactionable_text(
    make_input: MakeInput,
) -> None:
    cat = make_input(
        detections=(DetectionInput(label="cat", confidence=0.9),),
        local_time=make_input().local_time.replace(hour=14),
        baseline=None,
        other_cameras=(),
        untrusted_texts=(),
    )
    rules = assess_with_rules(cat, "audit")
    assert rules.risk_level is RiskLevel.LOW
    bad = Assessment(
        risk_score=90,
        risk_level=RiskLevel.CRITICAL,
        summary="The house was attacked by a man, the house was attacked, the house was "
        "attacked by a man.",
        reasoning="",
        recommended_action="",
        model="small.gguf",
    )
    scored = rubric(bad, cat, rules)
    assert scored.coherent == 1  # a person and an attack not seen, and it loops
    assert scored.justified == 1  # critical where the rules say low, and no word of the cat
    assert scored.actionable == 2  # no action
    assert scored.context_used == 1
    assert scored.score == pytest.approx(1.25)


def test_the_rules_own_text_scores_well(make_input: MakeInput) -> None:
    """The fallback the household reads when no model answers is itself readable."""
    for analysis in (make_input(), make_input(detections=(), baseline=None)):
        rules = assess_with_rules(analysis, "LLM not configured")
        scored = rubric(rules, analysis, rules)
        assert scored.coherent == 5
        assert scored.justified == 5
        assert scored.actionable == 5
        assert scored.context_used >= 3
