"""The risk analysis on a real model server: crashes, hangs, the breaker and the queue.

Each fault is real: the model server process is killed with SIGKILL or frozen with SIGSTOP,
and the analyses around it must still come back, by the rules and saying why.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from llm_testlib import TEST_LIMITS, llm_settings, signal_process
from testlib.waiting import ModelRequests, wait_until

from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.service import LanguageModelState, looks_hung
from gpu_server.risk.analysis import RiskAnalysis

MakeInput = Callable[..., AnalysisInput]
MakeService = Callable[..., Any]


@pytest.fixture
async def make_service(tiny_gguf: Path, tmp_path: Path) -> AsyncIterator[MakeService]:
    made: list[RiskAnalysis] = []

    async def make(**settings: Any) -> RiskAnalysis:
        options: dict[str, Any] = {"model": str(tiny_gguf), "restart_backoff_s": 0.2}
        options.update(settings)
        service = RiskAnalysis(
            llm_settings(**options), tiny_gguf.parent, data_dir=tmp_path,
            grammar_limits=TEST_LIMITS,
        )
        made.append(service)
        await service.start()
        return service

    yield make
    for service in made:
        await service.close()


async def test_the_model_answers_and_the_status_says_so(
    make_service: MakeService, make_input: MakeInput
) -> None:
    service = await make_service()
    pieces: list[str] = []
    assessment = await service.assess(make_input(), on_token=pieces.append)
    assert not assessment.fallback, assessment.fallback_reason
    assert assessment.model == "tiny-random.gguf"
    assert "".join(pieces).startswith("{")
    status = service.status()
    assert status.state is LanguageModelState.READY
    assert status.backend == "embedded"
    assert status.model == "tiny-random.gguf"
    assert (status.analyses, status.fallbacks, status.restarts) == (1, 0, 0)


async def test_a_model_server_killed_mid_analysis(
    make_service: MakeService, make_input: MakeInput
) -> None:
    service = await make_service()
    server = service.server
    assert server is not None
    killed = False

    def kill_at_first_token(_: str) -> None:
        nonlocal killed
        if not killed:
            killed = True
            signal_process(server.pid, signal.SIGKILL)

    crashed = await service.assess(make_input(), on_token=kill_at_first_token)
    assert crashed.fallback
    assert crashed.model == "rules"
    assert crashed.fallback_reason is not None
    assert "killed by SIGKILL" in crashed.fallback_reason
    # The sidecar starts the model server again and the next analysis is the model's.
    await wait_until(lambda: service.status().state is LanguageModelState.READY)
    assert service.status().restarts == 1
    recovered = await service.assess(make_input())
    assert not recovered.fallback, recovered.fallback_reason
    assert recovered.model == "tiny-random.gguf"


async def test_while_restarting_the_rules_answer_at_once(
    make_service: MakeService, make_input: MakeInput
) -> None:
    service = await make_service(restart_backoff_s=30)
    server = service.server
    assert server is not None
    signal_process(server.pid, signal.SIGKILL)
    await wait_until(lambda: service.status().state is LanguageModelState.RESTARTING)
    assessment = await service.assess(make_input())
    assert assessment.fallback
    assert assessment.fallback_reason is not None
    assert assessment.fallback_reason.startswith("LLM restarting: the model server was killed")


async def test_a_hung_model_costs_one_timeout_then_the_breaker_answers(
    make_service: MakeService, make_input: MakeInput
) -> None:
    service = await make_service(timeout_s=1.0, breaker_cooldown_s=1.0)
    server = service.server
    assert server is not None
    assert not (await service.assess(make_input(), timeout_s=60)).fallback
    signal_process(server.pid, signal.SIGSTOP)
    try:
        hung = await service.assess(make_input())
        assert hung.fallback_reason == "LLM timed out after 1s"
        status = service.status()
        assert status.state is LanguageModelState.CIRCUIT_OPEN
        assert status.retry_in_s > 0
        # While the circuit is open, the rules answer without asking the model.
        quick = await service.assess(make_input())
        assert quick.fallback_reason is not None
        assert quick.fallback_reason.startswith("LLM circuit open after 1 failure(s)")
    finally:
        signal_process(server.pid, signal.SIGCONT)
    # After the cool-down one probe uses the model again; success closes the circuit.
    await wait_until(lambda: service.status().retry_in_s == 0)
    probe = await service.assess(make_input(), timeout_s=60)
    assert not probe.fallback, probe.fallback_reason
    assert service.status().state is LanguageModelState.READY
    assert service.status().consecutive_failures == 0


async def test_windows_queued_behind_a_hung_model_wait_one_timeout_not_one_each(
    make_service: MakeService, make_input: MakeInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service(timeout_s=1.0, breaker_cooldown_s=60)
    server = service.server
    assert server is not None
    requests = ModelRequests(monkeypatch)
    signal_process(server.pid, signal.SIGSTOP)
    try:
        first = asyncio.create_task(service.assess(make_input()))
        await requests.wait_for_more_than(0)  # the first analysis reached the hung model
        # Five more queue up behind it while it hangs, each with its own (later) deadline.
        behind = await asyncio.gather(*(service.assess(make_input()) for _ in range(5)))
        hung = await first
    finally:
        signal_process(server.pid, signal.SIGCONT)
    assert hung.fallback_reason == "LLM timed out after 1s"
    # When the first timed out the circuit opened, and the five still waiting were answered by
    # the rules at once instead of each spending a timeout of its own on the model.
    reasons = [result.fallback_reason or "" for result in behind]
    assert all(reason.startswith("LLM circuit open") for reason in reasons), reasons
    assert service.status().consecutive_failures == 1


async def test_urgent_analyses_go_first_and_a_full_queue_answers_by_rules(
    make_service: MakeService, make_input: MakeInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service(queue_size=2, timeout_s=120)
    server = service.server
    assert server is not None
    order: list[str] = []

    def record(name: str) -> Callable[[str], None]:
        def on_token(_: str) -> None:
            if name not in order:
                order.append(name)

        return on_token

    requests = ModelRequests(monkeypatch)
    signal_process(server.pid, signal.SIGSTOP)  # hold the first analysis on the model
    try:
        first = asyncio.create_task(service.assess(make_input(), on_token=record("first")))
        await requests.wait_for_more_than(0)
        ordinary = asyncio.create_task(service.assess(make_input(), on_token=record("ordinary")))
        urgent = asyncio.create_task(
            service.assess(make_input(), urgent=True, on_token=record("urgent"))
        )
        await wait_until(lambda: service.status().queue_depth == 2)
        overflow = await service.assess(make_input())
        assert overflow.fallback_reason == "LLM queue full (2 analyses waiting)"
    finally:
        signal_process(server.pid, signal.SIGCONT)
    results = await asyncio.gather(first, ordinary, urgent)
    assert not any(result.fallback for result in results), [r.fallback_reason for r in results]
    assert order == ["first", "urgent", "ordinary"]


async def test_a_deadline_counts_from_when_the_analysis_was_queued(
    make_service: MakeService, make_input: MakeInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service(timeout_s=120)
    server = service.server
    assert server is not None
    requests = ModelRequests(monkeypatch)
    signal_process(server.pid, signal.SIGSTOP)
    try:
        blocker = asyncio.create_task(service.assess(make_input()))
        await requests.wait_for_more_than(0)
        waiting = await service.assess(make_input(), timeout_s=0.5)
    finally:
        signal_process(server.pid, signal.SIGCONT)
    assert waiting.fallback_reason == "LLM timed out after 0.5s waiting for its turn"
    assert not (await blocker).fallback


async def test_a_model_that_cannot_load_leaves_the_rules_with_the_reason(
    tmp_path: Path, make_input: MakeInput
) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"not a model")
    service = RiskAnalysis(llm_settings(restart_backoff_s=30), tmp_path, data_dir=tmp_path)
    await service.start()
    try:
        assessment = await service.assess(make_input())
        assert assessment.fallback
        assert assessment.fallback_reason is not None
        assert assessment.fallback_reason.startswith("LLM failed to load: could not load broken")
        assert service.status().state is LanguageModelState.FAILED
    finally:
        await service.close()


async def test_per_camera_prompt_version(make_service: MakeService, make_input: MakeInput) -> None:
    service = await make_service(camera_prompt_versions={"cam-front": "v1"})
    assert service.prompt_version_for(make_input()) == "v1"
    assert (await service.assess(make_input())).prompt_version == "v1"


async def test_missing_llm_runtime_means_rules(
    tiny_gguf: Path, tmp_path: Path, make_input: MakeInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if llama-cpp-python were not installed.
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "llama_cpp" else real_find_spec(name, *args),
    )
    service = RiskAnalysis(llm_settings(model=str(tiny_gguf)), tmp_path, data_dir=tmp_path)
    await service.start()
    try:
        assessment = await service.assess(make_input())
        assert assessment.fallback_reason == "LLM runtime not installed (llama-cpp-python)"
        assert service.status().state is LanguageModelState.OFF
    finally:
        await service.close()


def test_only_a_model_that_had_the_whole_timeout_counts_as_hung() -> None:
    # An analysis that spent most of its time queued and then ran out is a slow queue: the
    # breaker stays closed so the next batches still reach the model.
    assert looks_hung(given_s=60.0, timeout_s=60.0)
    assert looks_hung(given_s=54.0, timeout_s=60.0)
    assert not looks_hung(given_s=20.0, timeout_s=60.0)
    assert not looks_hung(given_s=0.0, timeout_s=60.0)
