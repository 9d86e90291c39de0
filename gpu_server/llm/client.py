"""An OpenAI-compatible chat-completions client: the one way the sidecar talks to a model.

The same client serves the local model server the sidecar supervises and any remote endpoint
(llama.cpp's llama-server, vLLM, Ollama, NVIDIA NIM). Answers are streamed, so progress can be
shown token by token and the time to the first token measured, and so that giving up on a slow
answer closes the connection, which tells the server to stop generating.

The API key goes in the Authorization header only; no message this module writes contains it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from gpu_server.llm.errors import LlmHttpError, LlmProtocolError, LlmUnreachableError

TokenCallback = Callable[[str], None]

_CONNECT_TIMEOUT_S: Final = 5.0
_DETAIL_MAX_CHARS: Final = 120

# httpx logs every request at INFO; one line per analysis is noise in the sidecar's log.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str
    # Images shown with the text (a vision-language model), as data: URLs.
    images: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        if not self.images:
            return {"role": self.role, "content": self.content}
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.content}]
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in self.images]
        return {"role": self.role, "content": parts}


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str
    completion_tokens: int
    # Seconds from sending the request to the first generated text.
    time_to_first_token_s: float
    elapsed_s: float
    # As the endpoint reported it, when it did.
    prompt_tokens: int | None = None


def _detail(text: str) -> str:
    """A short, single-line excerpt of an error body for a fallback reason."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_MAX_CHARS else flat[: _DETAIL_MAX_CHARS - 3] + "..."


class ChatClient:
    """Talks to one endpoint; `base_url` ends before `/chat/completions` (usually in `/v1`)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        tokenize_url: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        # llama-cpp-python's server counts tokens with the model's own tokenizer here.
        self.tokenize_url = tokenize_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(None, connect=_CONNECT_TIMEOUT_S)
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)
        self._sync_http = httpx.Client(headers=headers, timeout=httpx.Timeout(30.0))

    async def list_models(self, timeout_s: float) -> list[str]:
        """The models the endpoint serves; raises when it does not answer."""
        try:
            response = await self._http.get(f"{self.base_url}/models", timeout=timeout_s)
        except httpx.TransportError as exc:
            raise LlmUnreachableError(
                f"cannot reach the model endpoint: {_transport(exc)}"
            ) from exc
        body = _json_body(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise LlmProtocolError("model endpoint's /models answer has no data list")
        return [str(item.get("id", "")) for item in data if isinstance(item, dict)]

    def count_tokens(self, text: str) -> int:
        """Blocking: the model's own token count of `text` (needs `tokenize_url`)."""
        if self.tokenize_url is None:
            raise LlmProtocolError("this endpoint cannot count tokens")
        try:
            response = self._sync_http.post(
                self.tokenize_url, json={"input": text, "model": self.model}
            )
        except httpx.TransportError as exc:
            raise LlmUnreachableError(f"cannot reach the model server: {_transport(exc)}") from exc
        body = _json_body(response)
        count = body.get("count") if isinstance(body, dict) else None
        if not isinstance(count, int):
            raise LlmProtocolError("token count answer has no count")
        return count

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
        on_token: TokenCallback | None = None,
    ) -> Completion:
        """Stream one chat completion. Cancel the awaiting task to give up: the stream closes."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message.as_json() for message in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if seed is not None:
            body["seed"] = seed
        body.update(extra or {})
        started = time.perf_counter()
        try:
            async with self._http.stream(
                "POST", f"{self.base_url}/chat/completions", json=body
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise LlmHttpError(response.status_code, _detail(response.text))
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignores `stream` answers with one JSON document.
                    await response.aread()
                    return _whole_completion(response, started)
                return await _read_stream(response, started, on_token)
        except httpx.TransportError as exc:
            raise LlmUnreachableError(
                f"model endpoint connection failed: {_transport(exc)}"
            ) from exc

    async def aclose(self) -> None:
        await self._http.aclose()
        self._sync_http.close()


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent-events stream."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


async def _read_stream(
    response: httpx.Response, started: float, on_token: TokenCallback | None
) -> Completion:
    """Collect a streamed chat completion, handing each piece of text to `on_token`."""
    first: float | None = None
    pieces: list[str] = []
    finish_reason = ""
    prompt_tokens: int | None = None
    async for payload in _sse_data(response):
        if payload == "[DONE]":
            break
        chunk = _parse_json(payload)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            prompt_tokens = usage["prompt_tokens"]
        choice = _first_choice(chunk, allow_empty=True)
        if choice is None:
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(text, str) and text:
            first = first or time.perf_counter()
            pieces.append(text)
            if on_token is not None:
                on_token(text)
        if choice.get("finish_reason"):
            finish_reason = str(choice["finish_reason"])
    if not finish_reason:
        raise LlmUnreachableError("model endpoint ended the answer without finishing it")
    now = time.perf_counter()
    return Completion(
        text="".join(pieces),
        finish_reason=finish_reason,
        completion_tokens=len(pieces),
        time_to_first_token_s=(first or now) - started,
        elapsed_s=now - started,
        prompt_tokens=prompt_tokens,
    )


def _transport(exc: httpx.TransportError) -> str:
    kind = type(exc).__name__
    return f"{kind}: {exc}" if str(exc) else kind


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise LlmProtocolError(f"model endpoint answered non-JSON: {_detail(text)!r}") from None
    if not isinstance(value, dict):
        raise LlmProtocolError("model endpoint answered JSON that is not an object")
    return value


def _json_body(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise LlmHttpError(response.status_code, _detail(response.text))
    return _parse_json(response.text)


def _first_choice(chunk: Mapping[str, Any], *, allow_empty: bool = False) -> dict[str, Any] | None:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        if "error" in chunk:
            detail = _detail(str(chunk["error"]))
            raise LlmProtocolError(f"model endpoint reported an error: {detail}")
        raise LlmProtocolError("model endpoint answered JSON without choices")
    if not choices:
        if allow_empty:
            return None
        raise LlmProtocolError("model endpoint answered no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise LlmProtocolError("model endpoint answered a choice that is not an object")
    return choice


def _whole_completion(response: httpx.Response, started: float) -> Completion:
    body = _parse_json(response.text)
    choice = _first_choice(body)
    assert choice is not None
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise LlmProtocolError("model endpoint answered a choice without message content")
    usage = body.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    elapsed = time.perf_counter() - started
    completion_tokens = usage.get("completion_tokens")
    prompt_tokens = usage.get("prompt_tokens")
    return Completion(
        text=text,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        completion_tokens=completion_tokens if isinstance(completion_tokens, int) else 0,
        time_to_first_token_s=elapsed,
        elapsed_s=elapsed,
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
    )
