"""The events pipeline on the real llama.cpp runtime with a tiny random model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from events_testlib import MARK_PERSON_UNSURE, EventsServer, frame_for, scene_png
from sidecar_testlib import AUTH

from gpu_server._generated import events_pb2
from gpu_server.llm.grammar import GrammarLimits
from gpu_server.llm.service import RiskAnalysis
from gpu_server.llm.settings import LlmSettings
from gpu_server.llm.testing import write_tiny_gguf

# Short answers keep a generation on the random model to a few hundred tokens.
LIMITS = GrammarLimits(summary=40, reasoning=80, recommended_action=40)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("llm") / "tiny-random.gguf")


def risk_for(model: Path, **settings: Any) -> RiskAnalysis:
    values: dict[str, Any] = {"model": str(model), "n_ctx": 8192, "n_threads": 2, "seed": 7}
    values.update(settings)
    return RiskAnalysis(LlmSettings(**values), model.parent, grammar_limits=LIMITS)


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_a_batch_is_assessed_by_the_model_with_live_progress(
    start_events: Any, tiny_gguf: Path
) -> None:
    server: EventsServer = await start_events(risk=risk_for(tiny_gguf))
    status = await server.status()
    assert status.events.llm_model == tiny_gguf.name

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
    await asyncio.wait_for(_until(lambda: server.pipeline.hub.subscribers > 0), 10)
    await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
    await server.close_due(30)
    (event,) = await server.events()
    await asyncio.sleep(0.1)  # notes are handed over from the model's thread
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
    start_events: Any, tiny_gguf: Path
) -> None:
    risk = risk_for(tiny_gguf, timeout_s=0.2)
    server: EventsServer = await start_events(risk=risk)
    analyzer = risk.analyzer
    assert analyzer is not None
    # Hold the model the way a hung llama.cpp call would, so the timing cannot vary.
    with analyzer._thread_lock:
        await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
        await server.close_due(30)
    await analyzer.wait_idle()
    (event,) = await server.events()
    assert event.kind == events_pb2.EVENT_KIND_SECURITY
    assert event.fallback
    assert "timed out" in event.fallback_reason
    assert event.model == "rules"


async def test_stopping_during_a_hung_analysis_ends_within_the_grace_period(
    start_events: Any, tiny_gguf: Path
) -> None:
    risk = risk_for(tiny_gguf, timeout_s=120)
    server: EventsServer = await start_events(risk=risk)
    analyzer = risk.analyzer
    assert analyzer is not None
    # A subscriber keeps a stream open, as Home Assistant does; gRPC waits for it to the end.
    subscription = server.stub.SubscribeEvents(
        events_pb2.SubscribeEventsRequest(), metadata=AUTH
    )
    reader = asyncio.create_task(subscription.read())
    analyzer._thread_lock.acquire()  # the model hangs the way a stuck llama.cpp call would
    try:
        await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p"))
        server.clock.advance(30)
        server.pipeline.tick()
        await asyncio.wait_for(_until(lambda: server.pipeline.processor.running == 1), 10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.server.stop(1.0), 10)
        assert loop.time() - started < 1.6
    finally:
        analyzer._thread_lock.release()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    await analyzer.wait_idle()
