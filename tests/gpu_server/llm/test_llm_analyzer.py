"""The analyzer on the real llama.cpp with a tiny random model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from gpu_server.llm.analyzer import (
    LlmAnalyzer,
    LlmBusyError,
    LlmCancelledError,
    LlmOutputError,
    LlmTimeoutError,
)
from gpu_server.llm.inputs import AnalysisInput, DetectionInput
from gpu_server.llm.schema import level_for_score

MakeInput = Callable[..., AnalysisInput]
MakeAnalyzer = Callable[..., LlmAnalyzer]


def test_analysis_returns_a_consistent_assessment(
    analyzer: LlmAnalyzer, make_input: MakeInput
) -> None:
    outcome = analyzer.analyze(make_input())
    assessment = outcome.assessment
    assert not assessment.fallback
    assert assessment.model == "tiny-random.gguf"
    assert assessment.prompt_version == "v1"
    assert assessment.risk_level is level_for_score(assessment.risk_score)
    assert outcome.stats.finish_reason == "stop"
    assert 0 < outcome.stats.completion_tokens <= analyzer.max_tokens


def test_static_prefix_is_reused_between_analyses(
    analyzer: LlmAnalyzer, make_input: MakeInput
) -> None:
    prefix = analyzer.static_prefix_tokens()
    assert analyzer.prefix_tokens == len(prefix) > 100
    first = analyzer.analyze(make_input())
    second = analyzer.analyze(
        make_input(camera_name="Garage", detections=(DetectionInput(label="cat", confidence=0.4),))
    )
    for outcome in (first, second):
        # Everything up to the data block came from the KV cache, not from a new decode.
        assert outcome.stats.prompt_tokens_reused >= len(prefix)
        assert outcome.stats.prompt_tokens_evaluated <= outcome.stats.prompt_tokens - len(prefix)
    # The very same input again: only the final prompt token is decoded to refresh the logits.
    third = analyzer.analyze(
        make_input(camera_name="Garage", detections=(DetectionInput(label="cat", confidence=0.4),))
    )
    assert third.stats.prompt_tokens_evaluated == 1
    totals = analyzer.totals
    assert totals.generations == 3
    assert totals.prompt_tokens_reused >= 3 * len(prefix)


def test_prefix_is_decoded_once_without_warm_up(
    make_analyzer: MakeAnalyzer, make_input: MakeInput
) -> None:
    cold = make_analyzer(warm_prefix=False)
    first = cold.analyze(make_input())
    second = cold.analyze(make_input(camera_name="Back yard"))
    assert first.stats.prompt_tokens_evaluated == first.stats.prompt_tokens
    assert second.stats.prompt_tokens_evaluated < first.stats.prompt_tokens_evaluated
    assert second.stats.prompt_tokens_reused >= len(cold.static_prefix_tokens())


def test_same_input_same_output(analyzer: LlmAnalyzer, make_input: MakeInput) -> None:
    first = analyzer.analyze(make_input())
    analyzer.analyze(make_input(camera_name="Somewhere else"))
    again = analyzer.analyze(make_input())
    assert first.raw_output == again.raw_output


def test_streaming_callback_receives_the_output(
    analyzer: LlmAnalyzer, make_input: MakeInput
) -> None:
    pieces: list[str] = []
    outcome = analyzer.analyze(make_input(), on_token=pieces.append)
    assert len(pieces) > 10
    assert "".join(pieces) == outcome.raw_output
    assert outcome.raw_output.startswith("{")


async def test_async_analysis_runs_in_a_thread(
    analyzer: LlmAnalyzer, make_input: MakeInput
) -> None:
    caller = threading.get_ident()
    threads: set[int] = set()
    outcome = await analyzer.analyze_async(
        make_input(), timeout_s=60, on_token=lambda _: threads.add(threading.get_ident())
    )
    assert not outcome.assessment.fallback
    assert threads
    assert caller not in threads


async def test_concurrent_calls_run_one_at_a_time(
    analyzer: LlmAnalyzer, make_input: MakeInput
) -> None:
    active = 0
    overlap = False
    lock = threading.Lock()

    def on_token(_: str) -> None:
        nonlocal active, overlap
        with lock:
            active += 1
            overlap = overlap or active > 1
        with lock:
            active -= 1

    results = await asyncio.gather(
        *(analyzer.analyze_async(make_input(), timeout_s=60, on_token=on_token) for _ in range(3))
    )
    assert len(results) == 3
    assert not overlap
    assert len({result.raw_output for result in results}) == 1


async def test_timeout_stops_the_generation_and_blocks_a_second_one(
    analyzer: LlmAnalyzer, make_input: MakeInput
) -> None:
    # Hold the model the way a hung llama.cpp call would, so the timing cannot vary: the worker
    # thread is stuck before its first token for as long as the test wants.
    with analyzer._thread_lock:
        with pytest.raises(LlmTimeoutError, match=r"timed out after 0\.2s"):
            await analyzer.analyze_async(make_input(), timeout_s=0.2)
        # The call is still pending in its thread: a second analysis must not start.
        assert bool(analyzer.busy)
        with pytest.raises(LlmBusyError):
            await analyzer.analyze_async(make_input(), timeout_s=0.1)
    # Released, the abandoned call sees its stop flag at the first token and ends.
    await analyzer.wait_idle()
    assert not analyzer.busy
    outcome = await analyzer.analyze_async(make_input(), timeout_s=60)
    assert not outcome.assessment.fallback


def test_cancel_flag_stops_generation(analyzer: LlmAnalyzer, make_input: MakeInput) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def on_token(piece: str) -> None:
        seen.append(piece)
        cancel.set()

    with pytest.raises(LlmCancelledError):
        analyzer.analyze(make_input(), on_token=on_token, cancel=cancel)
    assert len(seen) == 1


def test_output_cut_off_by_max_tokens_is_an_error(
    make_analyzer: MakeAnalyzer, make_input: MakeInput
) -> None:
    short = make_analyzer(max_tokens=20)
    with pytest.raises(LlmOutputError, match="cut off"):
        short.analyze(make_input())
