"""The events part on the real llama.cpp runtime with a tiny random model."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from events_testlib import MARK_PERSON_UNSURE, EventsServer, frame_for, scene_png
from llm_testlib import TEST_LIMITS, llm_settings, process_alive, signal_process
from sidecar_testlib import AUTH
from testlib.waiting import ModelRequests, wait_until

from gpu_server._generated import events_pb2, status_pb2
from gpu_server.risk.analysis import RiskAnalysis


def risk_for(model: Path, data_dir: Path, **settings: Any) -> RiskAnalysis:
    values: dict[str, Any] = {"model": str(model), "restart_backoff_s": 0.2}
    values.update(settings)
    return RiskAnalysis(
        llm_settings(**values), model.parent, data_dir=data_dir, grammar_limits=TEST_LIMITS
    )


def _model_pid(risk: RiskAnalysis) -> int | None:
    assert risk.server is not None
    return risk.server.pid


async def test_a_batch_is_assessed_by_the_model_with_live_progress(
    start_events: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    server: EventsServer = await start_events(risk=risk_for(tiny_gguf, tmp_path))
    status = await server.status()
    assert status.events.llm_model == tiny_gguf.name
    model = status.language_model
    assert model.state == status_pb2.LANGUAGE_MODEL_STATE_READY
    assert (model.backend, model.model) == ("embedded", tiny_gguf.name)

    watch = server.stub.WatchAnalysis(
        events_pb2.WatchAnalysisRequest(camera_id="front_door"), metadata=AUTH
    )
    notes: list[events_pb2.AnalysisProgress] = []

    async def collect() -> None:
        # One by one: the call is cancelled mid-stream, and the notes so far must be kept.
        async for note in watch:
            notes.append(note)  # noqa: PERF401

    collector = asyncio.create_task(collect())
    # The watch must be registered before the analysis starts.
    await wait_until(lambda: server.scheduler.hub.subscribers > 0)
    await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
    await server.close_due(30)
    (event,) = await server.events()
    await wait_until(lambda: bool(notes))  # notes are handed over from the model's thread
    watch.cancel()
    await asyncio.gather(collector, return_exceptions=True)

    assert event.kind == events_pb2.EVENT_KIND_SECURITY
    assert event.model == tiny_gguf.name
    assert not event.fallback
    assert event.prompt_version
    assert notes
    assert {note.camera_id for note in notes} == {"front_door"}
    assert "".join(note.text for note in notes).startswith("{")


async def test_a_model_that_does_not_answer_in_time_falls_back_to_the_rules(
    start_events: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    risk = risk_for(tiny_gguf, tmp_path, timeout_s=0.5)
    server: EventsServer = await start_events(risk=risk)
    pid = _model_pid(risk)
    signal_process(pid, signal.SIGSTOP)  # the model hangs, for real
    try:
        await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
        await server.close_due(30)
        (event,) = await server.events()
        status = await server.status()
    finally:
        signal_process(pid, signal.SIGCONT)
    assert event.kind == events_pb2.EVENT_KIND_SECURITY
    assert event.fallback
    assert event.fallback_reason == "LLM timed out after 0.5s"
    assert event.model == "rules"
    assert status.language_model.state == status_pb2.LANGUAGE_MODEL_STATE_CIRCUIT_OPEN
    assert status.language_model.fallbacks == 1


async def test_a_crashed_model_still_gives_the_event_and_the_next_one_is_the_models(
    start_events: Any, tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = risk_for(tiny_gguf, tmp_path)
    server: EventsServer = await start_events(risk=risk)
    pid = _model_pid(risk)
    # Freeze the model as the analysis asks it, so the analysis is surely under way when the
    # process is killed.
    requests = ModelRequests(monkeypatch, on_chat=lambda: signal_process(pid, signal.SIGSTOP))
    await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
    server.clock.advance(30)
    server.scheduler.tick()
    await wait_until(lambda: requests.chats > 0)
    signal_process(pid, signal.SIGKILL)
    (crashed,) = await server.events()
    assert crashed.fallback
    assert "killed by SIGKILL" in crashed.fallback_reason
    assert crashed.kind == events_pb2.EVENT_KIND_SECURITY

    await wait_until(lambda: risk.status().state == "ready")
    status = await server.status()
    assert status.language_model.restarts == 1
    await server.send(frame_for(scene_png(2, MARK_PERSON_UNSURE), "q"))
    await server.close_due(30)
    events = await server.events(count=2)
    assert not events[-1].fallback, events[-1].fallback_reason
    assert events[-1].model == tiny_gguf.name
    assert events[-1].HasField("audit_rubric")


async def test_stopping_during_a_hung_analysis_ends_within_the_grace_period(
    start_events: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    risk = risk_for(tiny_gguf, tmp_path, timeout_s=120)
    server: EventsServer = await start_events(risk=risk)
    pid = _model_pid(risk)
    # A subscriber keeps a stream open, as Home Assistant does; gRPC waits for it to the end.
    subscription = server.stub.SubscribeEvents(
        events_pb2.SubscribeEventsRequest(), metadata=AUTH
    )
    reader = asyncio.create_task(subscription.read())
    signal_process(pid, signal.SIGSTOP)  # the model hangs
    try:
        await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
        server.clock.advance(30)
        server.scheduler.tick()
        await wait_until(lambda: server.scheduler.status().analyses_running == 1)
        # The stop returns although the model never answers, and takes the model server along.
        await asyncio.wait_for(server.server.stop(1.0), 10)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert pid is not None
    assert risk.server is not None
    assert risk.server.pid == pid
    assert not process_alive(pid)
