"""Assessments written by the real llama.cpp model server (tiny random model) over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_server.llm.assessor import ModelAssessor, estimate_tokens
from gpu_server.llm.errors import LlmOutputError
from gpu_server.llm.inputs import AnalysisInput, CameraActivity, UntrustedText
from gpu_server.vocabulary import level_for_score

MakeInput = Callable[..., AnalysisInput]
MakeAssessor = Callable[..., ModelAssessor]


async def test_analysis_returns_a_consistent_assessment(
    assessor: ModelAssessor, make_input: MakeInput
) -> None:
    outcome = await assessor.assess(make_input())
    assessment = outcome.assessment
    assert not assessment.fallback
    assert assessment.model == "tiny-random.gguf"
    assert assessment.prompt_version == "v2"
    assert assessment.risk_level is level_for_score(assessment.risk_score)
    assert outcome.stats.finish_reason == "stop"
    assert 0 < outcome.stats.completion_tokens <= assessor.max_tokens
    assert outcome.stats.time_to_first_token_s <= outcome.stats.elapsed_s
    assert assessor.totals.generations == 1


async def test_same_input_same_output(assessor: ModelAssessor, make_input: MakeInput) -> None:
    first = await assessor.assess(make_input())
    await assessor.assess(make_input(camera_name="Somewhere else"))
    again = await assessor.assess(make_input())
    assert first.raw_output == again.raw_output


async def test_streamed_pieces_make_up_the_output(
    assessor: ModelAssessor, make_input: MakeInput
) -> None:
    pieces: list[str] = []
    outcome = await assessor.assess(make_input(), on_token=pieces.append)
    assert len(pieces) > 10
    assert "".join(pieces) == outcome.raw_output
    assert outcome.raw_output.startswith("{")


async def test_output_cut_off_by_max_tokens_is_an_error(
    make_assessor: MakeAssessor, make_input: MakeInput
) -> None:
    short = make_assessor(max_tokens=20)
    with pytest.raises(LlmOutputError, match="cut off"):
        await short.assess(make_input())


async def test_the_servers_tokenizer_counts_and_the_prompt_fits(
    assessor: ModelAssessor, make_input: MakeInput
) -> None:
    # Far more detections than the context holds: the prompt is trimmed to the budget, as
    # counted by the model's own tokenizer in the model server.
    huge = make_input(
        other_cameras=tuple(
            CameraActivity(camera_name=f"camera {index} " * 10, minutes_ago=1, labels=("person",))
            for index in range(500)
        ),
        untrusted_texts=tuple(
            UntrustedText(source="caption", text="words " * 2_000) for _ in range(20)
        ),
    )
    built = assessor.build(huge)
    assert built.fit.truncated
    assert built.tokens <= assessor.budget
    exact = assessor.client.count_tokens(built.user)
    assert exact > 0
    assert built.tokens >= exact
    outcome = await assessor.assess(huge)
    assert not outcome.assessment.fallback


async def test_warming_the_prefix_answers(assessor: ModelAssessor, make_input: MakeInput) -> None:
    await assessor.warm()
    outcome = await assessor.assess(make_input())
    assert outcome.stats.finish_reason == "stop"


def test_estimate_is_on_the_safe_side() -> None:
    assert estimate_tokens("abcd") == 2
    assert estimate_tokens("é") == 1
    assert estimate_tokens("") == 0
