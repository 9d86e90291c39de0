"""A vision-language model behind the OpenAI-compatible server: llama.cpp's real multimodal path.

llama-cpp-python's own server, on loopback, serves the tiny random VLM of `testlib.tiny_vlm` with
each chat handler that takes images; requests carry the image as a base64 data URL, as the
sidecar sends a camera frame. The answers are random text, so only their shape is checked, and
the prompt's token count shows that the image went through the vision tower into the context.

Without llama.cpp's multimodal library these tests skip and say why; with HSAI_REQUIRE_VLM set
they fail instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testlib.required import required
from testlib.tiny_vlm import (
    CHAT_FORMATS,
    IMAGE_TOKENS,
    RunningVlmServer,
    encode_image,
    image_data_url,
    mtmd_missing,
    serve_tiny_vlm,
    user_message,
    write_tiny_vlm,
)

QUESTION = "Is anyone at the door?"
# A JSON object with a short plain string: whatever the random weights pick, it parses.
RISK_GRAMMAR = r"""
root ::= "{\"risk\": " [0-9] ", \"note\": \"" [a-z0-9 ]{0,8} "\"}"
"""


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    reason = mtmd_missing()
    if reason is not None:
        # Where the set-up builds llama.cpp with its multimodal library, this path must run.
        required(None, reason, "HSAI_REQUIRE_VLM")
    return write_tiny_vlm(tmp_path_factory.mktemp("vlm-models"))


@pytest.fixture(scope="module", params=CHAT_FORMATS)
def vlm_server(
    request: pytest.FixtureRequest,
    tiny_vlm: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningVlmServer]:
    text, projector = tiny_vlm
    work_dir = tmp_path_factory.mktemp("vlm-server")
    with serve_tiny_vlm(text, projector, work_dir, chat_format=request.param) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0) as client:
        yield client


def _chat(
    http: httpx.Client, server: RunningVlmServer, *image_urls: str, **fields: Any
) -> httpx.Response:
    body = {
        "model": server.model,
        "messages": [
            {"role": "system", "content": "You describe what a security camera sees."},
            user_message(QUESTION, *image_urls),
        ],
        "max_tokens": 8,
        "temperature": 0.0,
        **fields,
    }
    return http.post(f"{server.base_url}/chat/completions", json=body)


def _answer(response: httpx.Response, server: RunningVlmServer) -> dict[str, Any]:
    assert response.status_code == 200, f"{response.text}\n{server.log_tail()}"
    answer: dict[str, Any] = response.json()
    assert answer["object"] == "chat.completion"
    [choice] = answer["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in {"stop", "length"}
    return answer


def test_a_camera_frame_is_encoded_into_the_prompt(
    vlm_server: RunningVlmServer, http: httpx.Client
) -> None:
    frame = image_data_url(encode_image(640, 480))
    started = time.perf_counter()
    with_image = _answer(_chat(http, vlm_server, frame), vlm_server)
    elapsed = time.perf_counter() - started
    without_image = _answer(_chat(http, vlm_server), vlm_server)

    grown = with_image["usage"]["prompt_tokens"] - without_image["usage"]["prompt_tokens"]
    # The frame took the projector's fixed number of positions in the context: it was decoded,
    # run through the vision tower and fed to the language model, not dropped or read as text.
    assert grown == IMAGE_TOKENS, vlm_server.log_tail()
    assert "image slice encoded" in vlm_server.log_path.read_text(errors="replace")
    assert elapsed < 30.0


@pytest.mark.parametrize(
    ("size", "image_format", "mime"),
    [
        ((640, 480), "PNG", "image/png"),
        ((1920, 1080), "JPEG", "image/jpeg"),
        ((48, 64), "JPEG", "image/jpeg"),
    ],
)
def test_any_frame_size_and_png_take_the_same_room(
    vlm_server: RunningVlmServer,
    http: httpx.Client,
    size: tuple[int, int],
    image_format: str,
    mime: str,
) -> None:
    reference = _answer(_chat(http, vlm_server, image_data_url(encode_image())), vlm_server)
    url = image_data_url(encode_image(*size, image_format), mime)
    answer = _answer(_chat(http, vlm_server, url), vlm_server)
    assert answer["usage"]["prompt_tokens"] == reference["usage"]["prompt_tokens"]


def test_two_frames_take_twice_the_room(vlm_server: RunningVlmServer, http: httpx.Client) -> None:
    frame = image_data_url(encode_image())
    one = _answer(_chat(http, vlm_server, frame), vlm_server)
    two = _answer(_chat(http, vlm_server, frame, frame), vlm_server)
    assert two["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"] + IMAGE_TOKENS


def test_a_grammar_shapes_the_answer_about_a_frame(
    vlm_server: RunningVlmServer, http: httpx.Client
) -> None:
    frame = image_data_url(encode_image())
    response = _chat(http, vlm_server, frame, grammar=RISK_GRAMMAR, max_tokens=64, seed=3)
    answer = _answer(response, vlm_server)
    assert answer["choices"][0]["finish_reason"] == "stop"
    parsed = json.loads(answer["choices"][0]["message"]["content"])
    assert set(parsed) == {"risk", "note"}
    assert 0 <= parsed["risk"] <= 9


def test_an_answer_about_a_frame_streams(vlm_server: RunningVlmServer, http: httpx.Client) -> None:
    frame = image_data_url(encode_image())
    body = {
        "model": vlm_server.model,
        "messages": [user_message(QUESTION, frame)],
        "max_tokens": 8,
        "temperature": 0.0,
        "stream": True,
    }
    events: list[str] = []
    with http.stream("POST", f"{vlm_server.base_url}/chat/completions", json=body) as response:
        assert response.status_code == 200, vlm_server.log_tail()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[0].get("role") == "assistant"
    assert any(delta.get("content") for delta in deltas)
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


def test_an_image_llama_cpp_cannot_decode_is_refused_and_serving_goes_on(
    vlm_server: RunningVlmServer, http: httpx.Client
) -> None:
    # llama.cpp decodes with stb_image: JPEG, PNG, GIF, BMP, but no WebP. The sidecar sends JPEG.
    webp = image_data_url(encode_image(64, 64, "WEBP"), "image/webp")
    refused = _chat(http, vlm_server, webp)
    assert refused.status_code >= 400
    assert "bitmap" in refused.text
    _answer(_chat(http, vlm_server, image_data_url(encode_image())), vlm_server)


def test_the_tiny_vlm_is_small_and_the_same_for_a_seed(tmp_path: Path) -> None:
    started = time.perf_counter()
    first = write_tiny_vlm(tmp_path / "first")
    elapsed = time.perf_counter() - started
    second = write_tiny_vlm(tmp_path / "second")
    assert sum(path.stat().st_size for path in first) < 2_000_000
    assert elapsed < 1.0
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]
