"""One risk assessment from a language model: prompt in, validated Assessment out.

The prompt is a static system text (the brief) and a per-analysis user message (the data).
Because the brief comes first and never changes, a llama.cpp server finds it already in its KV
cache and decodes only the data; the time to the first token shows it. The answer is
constrained by the grammar (or a JSON schema, for endpoints that take one) and then validated,
so only a well-formed assessment ever leaves this module.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from gpu_server.llm.client import ChatClient, ChatMessage, TokenCallback
from gpu_server.llm.errors import LlmOutputError
from gpu_server.llm.grammar import (
    DEFAULT_LIMITS,
    GrammarLimits,
    build_grammar,
    response_schema,
    worst_case_tokens,
)
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.schema import Assessment, ModelOutput, reconcile
from gpu_server.llm.settings import OutputConstraint
from gpu_server.llm.templates import BuiltPrompt, PromptLibrary, build_prompt
from gpu_server.llm.tokens import DEFAULT_MARGIN_TOKENS, prompt_budget

# Tokens a chat template adds around two messages and the answer's opening (role markers).
TEMPLATE_ALLOWANCE_TOKENS: Final = 24
# Without the model's tokenizer: at most this many UTF-8 bytes per token, rounded up. Real
# tokenizers average 3-4 bytes a token on English; 2 keeps the estimate on the safe side.
ESTIMATE_BYTES_PER_TOKEN: Final = 2
# Sampling as the grammar-constrained local model has always used it.
_LLAMA_SAMPLING: Final = {"top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0}


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / ESTIMATE_BYTES_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    time_to_first_token_s: float
    elapsed_s: float


@dataclass(slots=True)
class UsageTotals:
    """Running totals since start, for status pages."""

    generations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, stats: GenerationStats) -> None:
        self.generations += 1
        self.prompt_tokens += stats.prompt_tokens
        self.completion_tokens += stats.completion_tokens


@dataclass(frozen=True, slots=True)
class AnalysisOutcome:
    assessment: Assessment
    stats: GenerationStats
    prompt: BuiltPrompt
    raw_output: str


class ModelAssessor:
    """Writes assessments with one model behind one ChatClient."""

    def __init__(
        self,
        client: ChatClient,
        *,
        model_name: str,
        prompts: PromptLibrary,
        n_ctx: int,
        constraint: OutputConstraint,
        seed: int | None,
        temperature: float,
        max_tokens: int | None = None,
        grammar_limits: GrammarLimits = DEFAULT_LIMITS,
        llama_sampling: bool = False,
        margin_tokens: int = DEFAULT_MARGIN_TOKENS,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self._prompts = prompts
        self._seed = seed
        self._temperature = temperature
        # By default enough tokens for the longest answer the grammar allows, so a generation
        # always ends by the grammar and never mid-string.
        self.max_tokens = (
            max_tokens if max_tokens is not None else worst_case_tokens(grammar_limits)
        )
        self.budget = prompt_budget(n_ctx, self.max_tokens, margin_tokens)
        self._extra: dict[str, Any] = _constraint_body(constraint, grammar_limits)
        if llama_sampling:
            self._extra.update(_LLAMA_SAMPLING)
        self._count: Callable[[str], int] = (
            client.count_tokens if client.tokenize_url is not None else estimate_tokens
        )
        self._system_tokens: dict[str, int] = {}
        self.totals = UsageTotals()

    def count_chat(self, system: str, user: str) -> int:
        """Blocking: tokens of the whole prompt, the template's markers allowed for."""
        if system not in self._system_tokens:
            self._system_tokens[system] = self._count(system)
        return self._system_tokens[system] + self._count(user) + TEMPLATE_ALLOWANCE_TOKENS

    def build(self, analysis: AnalysisInput) -> BuiltPrompt:
        """Blocking (it may ask the model server to count tokens)."""
        return build_prompt(
            self._prompts.select(analysis.prompt_version),
            analysis,
            budget=self.budget,
            count_prompt=self.count_chat,
            count_line=self._count,
        )

    async def warm(self, version: str | None = None) -> None:
        """Have the server decode the static brief now, so the first analysis reuses it."""
        system = self._prompts.select(version).system
        await self.client.complete(
            [ChatMessage("system", system), ChatMessage("user", "Ready?")],
            max_tokens=1,
            temperature=self._temperature,
            seed=self._seed,
        )

    async def assess(
        self, analysis: AnalysisInput, *, on_token: TokenCallback | None = None
    ) -> AnalysisOutcome:
        built = await asyncio.to_thread(self.build, analysis)
        completion = await self.client.complete(
            [ChatMessage("system", built.system), ChatMessage("user", built.user)],
            max_tokens=self.max_tokens,
            temperature=self._temperature,
            seed=self._seed,
            extra=self._extra,
            on_token=on_token,
        )
        stats = GenerationStats(
            prompt_tokens=completion.prompt_tokens or built.tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
            time_to_first_token_s=completion.time_to_first_token_s,
            elapsed_s=completion.elapsed_s,
        )
        self.totals.add(stats)
        raw = completion.text
        if completion.finish_reason == "length":
            raise LlmOutputError(f"output was cut off at max_tokens={self.max_tokens}")
        try:
            output = ModelOutput.model_validate_json(_json_object(raw))
        except ValidationError as exc:
            raise LlmOutputError(f"output did not validate: {exc.error_count()} error(s)") from exc
        assessment = reconcile(
            output,
            model=self.model_name,
            prompt_version=built.version,
            suspicious_input=built.suspicious,
        )
        return AnalysisOutcome(assessment=assessment, stats=stats, prompt=built, raw_output=raw)


def _constraint_body(constraint: OutputConstraint, limits: GrammarLimits) -> dict[str, Any]:
    if constraint is OutputConstraint.GRAMMAR:
        # llama.cpp's servers: keep the prompt in the KV cache, so the next one reuses the brief.
        return {"grammar": build_grammar(limits), "cache_prompt": True}
    if constraint is OutputConstraint.JSON_SCHEMA:
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "risk_assessment",
                    "strict": True,
                    "schema": response_schema(limits),
                },
            }
        }
    return {}


def _json_object(text: str) -> str:
    """The answer without a Markdown fence around it, which unconstrained models like to add."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        stripped = stripped.removeprefix("json").strip()
    return stripped
