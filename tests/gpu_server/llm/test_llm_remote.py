"""A remote OpenAI-compatible endpoint: the real llama.cpp server, and one that misbehaves.

The misbehaving endpoint is a real HTTP server on loopback (Starlette under uvicorn) that
answers HTTP 500, non-JSON, JSON of the wrong shape, or nothing for a long time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvicorn
from llm_testlib import TEST_LIMITS, llm_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from testlib.waiting import wait_until

from gpu_server.llm.authority import Authority
from gpu_server.llm.inputs import AnalysisInput, DetectionInput
from gpu_server.llm.model_server import ModelServer
from gpu_server.llm.service import LanguageModelState
from gpu_server.risk.analysis import RiskAnalysis
from gpu_server.risk.rules import assess_with_rules

MakeInput = Callable[..., AnalysisInput]
API_KEY = "sk-test-5f0c1d9e-never-log-me"
VALID = {
    "risk_score": 72,
    "risk_level": "high",
    "summary": "A person is at the door at night.",
    "reasoning": "Someone stands at the entry zone at 02:10.",
    "recommended_action": "Check the live view.",
}

# What small models write about a photo of a cat: claims nothing detected backs.
MADE_UP = {
    "risk_score": 90,
    "risk_level": "critical",
    "summary": "A person broke in and attacked the house.",
    "reasoning": "An intruder forced the door.",
    "recommended_action": "Call the police.",
}


class FakeEndpoint:
    """Answers /v1/chat/completions the way it is told to and records what it was sent."""

    # Modes that stream a JSON answer: out of range, and claims nothing detected backs.
    STREAMED: ClassVar[dict[str, dict[str, Any]]] = {
        "invalid_output": {**VALID, "risk_score": 400},
        "made_up": MADE_UP,
    }

    def __init__(self) -> None:
        self.mode = "valid"
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/models", self._models),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "nemotron-test"}]})

    async def _chat(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization", ""))
        self.requests.append(await request.json())
        if self.mode == "http500":
            return PlainTextResponse("upstream exploded", status_code=500)
        if self.mode == "nonjson":
            return PlainTextResponse("<html>gateway</html>", media_type="application/json")
        if self.mode == "wrongshape":
            return JSONResponse({"result": "ok"})
        if self.mode == "slow":
            await asyncio.sleep(30)
        if self.mode in self.STREAMED:
            return _stream(json.dumps(self.STREAMED[self.mode]))
        if self.mode == "whole_json":
            return JSONResponse(
                {"choices": [{"message": {"content": json.dumps(VALID)}, "finish_reason": "stop"}]}
            )
        return _stream(json.dumps(VALID))


def _stream(text: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(text), 7):
            delta = {"choices": [{"delta": {"content": text[start : start + 7]}}]}
            yield f"data: {json.dumps(delta)}\n\n".encode()
        done = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode()

    return StreamingResponse(chunks(), media_type="text/event-stream")


@pytest.fixture
async def endpoint() -> AsyncIterator[FakeEndpoint]:
    fake = FakeEndpoint()
    config = uvicorn.Config(fake.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started)
    fake.port = server.servers[0].sockets[0].getsockname()[1]
    yield fake
    server.should_exit = True
    await task


async def _remote(url: str, tmp_path: Path, **settings: Any) -> RiskAnalysis:
    remote: dict[str, Any] = {"url": url, "model": "nemotron-test", "api_key": API_KEY}
    remote.update(settings.pop("remote", {}))
    service = RiskAnalysis(
        llm_settings(remote=remote, **settings), tmp_path, data_dir=tmp_path,
        grammar_limits=TEST_LIMITS,
    )
    await service.start()
    return service


async def test_a_valid_answer_is_the_models_and_the_request_is_constrained(
    endpoint: FakeEndpoint, tmp_path: Path, make_input: MakeInput
) -> None:
    # A judge without a bound (the tests' settings): its score as it wrote it.
    service = await _remote(f"http://127.0.0.1:{endpoint.port}/v1", tmp_path)
    try:
        assessment = await service.assess(make_input())
        status = service.status()
    finally:
        await service.close()
    assert not assessment.fallback
    assert assessment.model == "nemotron-test"
    assert assessment.risk_score == 72
    assert status.authority is Authority.JUDGE
    (request,) = endpoint.requests
    assert request["model"] == "nemotron-test"
    assert request["stream"] is True
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["risk_score"] == {"type": "integer", "minimum": 0, "maximum": 100}
    assert endpoint.authorizations == [f"Bearer {API_KEY}"]
    assert status.state is LanguageModelState.READY
    assert status.backend == "remote"
    assert status.endpoint == f"http://127.0.0.1:{endpoint.port}/v1"


async def test_an_endpoint_that_ignores_streaming_still_works(
    endpoint: FakeEndpoint, tmp_path: Path, make_input: MakeInput
) -> None:
    endpoint.mode = "whole_json"
    service = await _remote(f"http://127.0.0.1:{endpoint.port}/v1", tmp_path)
    try:
        assessment = await service.assess(make_input())
    finally:
        await service.close()
    assert not assessment.fallback
    assert assessment.summary == VALID["summary"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("http500", "LLM failed: LlmHttpError: model endpoint answered HTTP 500: upstream"),
        ("nonjson", "LLM failed: LlmProtocolError: model endpoint answered non-JSON"),
        ("wrongshape", "LLM failed: LlmProtocolError: model endpoint answered JSON without"),
        ("invalid_output", "LLM output unusable: output did not validate: 1 error(s)"),
        ("slow", "LLM timed out after 0.5s"),
    ],
)
async def test_a_misbehaving_endpoint_means_rules_with_a_reason_and_no_key_in_sight(  # noqa: PLR0917
    endpoint: FakeEndpoint,
    tmp_path: Path,
    make_input: MakeInput,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    reason: str,
) -> None:
    endpoint.mode = mode
    caplog.set_level(logging.DEBUG)
    service = await _remote(f"http://127.0.0.1:{endpoint.port}/v1", tmp_path, timeout_s=0.5)
    try:
        assessment = await service.assess(make_input())
        status = service.status()
    finally:
        await service.close()
    assert assessment.fallback
    assert assessment.model == "rules"
    assert assessment.fallback_reason is not None
    assert assessment.fallback_reason.startswith(reason), assessment.fallback_reason
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(status)
    assert API_KEY not in assessment.model_dump_json()


async def test_an_unreachable_endpoint_is_reported_and_the_breaker_opens(
    tmp_path: Path, make_input: MakeInput, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = await _remote("http://127.0.0.1:9/v1", tmp_path, breaker_failures=2)
    try:
        assert service.status().state is LanguageModelState.UNREACHABLE
        reasons = [(await service.assess(make_input())).fallback_reason for _ in range(3)]
        status = service.status()
    finally:
        await service.close()
    for reason in reasons[:2]:
        assert reason is not None
        assert reason.startswith("LLM failed: model endpoint connection failed: ConnectError")
    assert reasons[2] is not None
    assert reasons[2].startswith("LLM circuit open after 2 failure(s)")
    assert status.state is LanguageModelState.UNREACHABLE
    assert API_KEY not in caplog.text


async def test_the_real_llama_cpp_server_as_a_remote_endpoint(
    model_server: ModelServer, tmp_path: Path, make_input: MakeInput
) -> None:
    # What a llama-server or llama-cpp-python server elsewhere looks like: grammar-constrained.
    service = await _remote(
        model_server.base_url,
        tmp_path,
        remote={
            "model": model_server.model_name,
            "api_key": model_server.api_key,
            "constraint": "grammar",
        },
    )
    try:
        assessment = await service.assess(make_input())
    finally:
        await service.close()
    assert not assessment.fallback, assessment.fallback_reason
    assert assessment.model == "tiny-random.gguf"


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(ValueError, match="api_key"):
        llm_settings(remote={"url": "http://user:secret@host:8000/v1", "model": "m"})


@pytest.mark.parametrize("authority", ["judge", "narrate"])
async def test_claims_the_detections_do_not_back_are_audited(
    endpoint: FakeEndpoint, tmp_path: Path, make_input: MakeInput, authority: str
) -> None:
    """A judge's text stands with the audit's notes and its score within the bound of the
    rules'. A narrator's unbacked text is not used: the rules' text goes out, saying why."""
    endpoint.mode = "made_up"
    cat_by_day = make_input(
        detections=(DetectionInput(label="cat", confidence=0.9),),
        local_time=make_input().local_time.replace(hour=14),
        untrusted_texts=(),
        other_cameras=(),
    )
    service = await _remote(
        f"http://127.0.0.1:{endpoint.port}/v1", tmp_path, authority=authority, judge_bound=15
    )
    try:
        assessment = await service.assess(cat_by_day)
    finally:
        await service.close()
    rules = assess_with_rules(cat_by_day, "test")
    assert service.authority is Authority(authority)
    assert not assessment.fallback
    assert assessment.model == "nemotron-test"
    if authority == "judge":
        # Held within the bound, its level is one step from the rules': a matter of judgement.
        assert assessment.audit_notes == (
            "mentions a person but none was detected",
            "describes an attack or break-in that nothing detected shows",
        )
        assert assessment.summary == MADE_UP["summary"]
        # 90 asked, at most the judge bound above the rules.
        assert assessment.risk_score == rules.risk_score + 15
    else:
        assert assessment.audit_notes == (
            "mentions a person but none was detected",
            "describes an attack or break-in that nothing detected shows",
        )
        assert assessment.risk_score == rules.risk_score
        assert assessment.summary == rules.summary
        assert "cat" in assessment.summary or "animal" in assessment.summary
        assert "the model's text was not used, as it mentions a person" in assessment.reasoning
        assert service.replaced == 1
