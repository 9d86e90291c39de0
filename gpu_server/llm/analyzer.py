"""One local GGUF model turning an AnalysisInput into an Assessment through llama.cpp.

The prompt is the model's own chat template around a static system text and a per-analysis data
block. Because the system text comes first and never changes, llama.cpp finds it already in the
KV cache and evaluates only the data block; `GenerationStats` shows how many prompt tokens were
reused. Generation is constrained by the hand-written grammar, so the output parses.

llama.cpp calls block and cannot be interrupted from outside. The async entry point runs them in
a worker thread, one at a time per model, gives up waiting after a timeout, asks the running
generation to stop at its next token, and refuses to start another until that one has ended.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar
from pydantic import ValidationError

from gpu_server.llm.errors import (
    GrammarError,
    LlmBusyError,
    LlmCancelledError,
    LlmOutputError,
    LlmTimeoutError,
)
from gpu_server.llm.grammar import DEFAULT_LIMITS, GrammarLimits, build_grammar, worst_case_tokens
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.schema import Assessment, ModelOutput, reconcile
from gpu_server.llm.settings import DEFAULT_N_CTX, DEFAULT_SEED, DEFAULT_TEMPERATURE
from gpu_server.llm.templates import CHATML_TEMPLATE, BuiltPrompt, PromptLibrary, build_prompt
from gpu_server.llm.tokens import DEFAULT_MARGIN_TOKENS, LlamaTokenCounter, prompt_budget

TokenCallback = Callable[[str], None]


def check_grammar(llm: llama_cpp.Llama, grammar: str) -> LlamaGrammar:
    """Parse the grammar once with llama.cpp itself before any generation uses it.

    llama-cpp-python hands a grammar to the sampler chain without checking that llama.cpp
    accepted it, and a rejected one crashes the process at the first generation.
    """
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise GrammarError("llama.cpp could not parse the assessment grammar")
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(grammar, verbose=False)


__all__ = [
    "AnalysisOutcome",
    "GenerationStats",
    "GrammarError",
    "LlmAnalyzer",
    "LlmBusyError",
    "LlmCancelledError",
    "LlmOutputError",
    "LlmTimeoutError",
    "TokenCallback",
    "UsageTotals",
    "check_grammar",
    "gpu_offload_supported",
]


def gpu_offload_supported() -> bool:
    """True when this llama.cpp build can put layers on a GPU."""
    return bool(llama_cpp.llama_supports_gpu_offload())


@dataclass(frozen=True, slots=True)
class GenerationStats:
    prompt_tokens: int
    # Prompt tokens llama.cpp actually decoded; the rest came from the KV cache.
    prompt_tokens_evaluated: int
    completion_tokens: int
    finish_reason: str
    elapsed_s: float

    @property
    def prompt_tokens_reused(self) -> int:
        return self.prompt_tokens - self.prompt_tokens_evaluated


@dataclass(slots=True)
class UsageTotals:
    """Running totals since load, for status pages: how much the KV cache saves."""

    generations: int = 0
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    completion_tokens: int = 0

    @property
    def prompt_tokens_reused(self) -> int:
        return self.prompt_tokens - self.prompt_tokens_evaluated

    def add(self, stats: GenerationStats) -> None:
        self.generations += 1
        self.prompt_tokens += stats.prompt_tokens
        self.prompt_tokens_evaluated += stats.prompt_tokens_evaluated
        self.completion_tokens += stats.completion_tokens


@dataclass(frozen=True, slots=True)
class AnalysisOutcome:
    assessment: Assessment
    stats: GenerationStats
    prompt: BuiltPrompt
    raw_output: str


class LlmAnalyzer:
    """Owns one loaded model; analyse() is blocking, analyze_async() is the server's entry."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int | None = None,
        seed: int = DEFAULT_SEED,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int | None = None,
        grammar_limits: GrammarLimits = DEFAULT_LIMITS,
        prompts: PromptLibrary | None = None,
        margin_tokens: int = DEFAULT_MARGIN_TOKENS,
        warm_prefix: bool = True,
    ) -> None:
        self.model_path = model_path
        self.model_name = model_path.name
        self._seed = seed
        self._temperature = temperature
        # By default enough tokens for the longest answer the grammar allows, so a generation
        # always ends by the grammar and never mid-string.
        self.max_tokens = (
            max_tokens if max_tokens is not None else worst_case_tokens(grammar_limits)
        )
        self.n_gpu_layers = (
            n_gpu_layers if n_gpu_layers is not None else (-1 if gpu_offload_supported() else 0)
        )
        self._prompts = prompts or PromptLibrary.builtin()
        self._llm = llama_cpp.Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=self.n_gpu_layers,
            seed=seed,
            verbose=False,
        )
        self.n_ctx = self._llm.n_ctx()
        self.budget = prompt_budget(self.n_ctx, self.max_tokens, margin_tokens)
        self._grammar = check_grammar(self._llm, build_grammar(grammar_limits))
        self._formatter = self._chat_formatter()
        self._line_counter = LlamaTokenCounter(self._llm)
        # Sizes of the batches handed to llama.cpp's decode during the current generation; the
        # first one is the part of the prompt that was not already in the KV cache.
        self._eval_sizes: list[int] = []
        original_eval = self._llm.eval

        def counting_eval(tokens: Sequence[int]) -> None:
            self._eval_sizes.append(len(tokens))
            original_eval(tokens)

        self._llm.eval = counting_eval  # type: ignore[method-assign]
        self._thread_lock = threading.Lock()
        self._async_lock = asyncio.Lock()
        self._inflight: asyncio.Future[AnalysisOutcome] | None = None
        self.prefix_tokens = 0
        self.totals = UsageTotals()
        if warm_prefix:
            self.warm_prefix()

    def _chat_formatter(self) -> Jinja2ChatFormatter:
        metadata = self._llm.metadata
        template = metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE

        def token_text(token: int) -> str:
            if token < 0:
                return ""
            return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

        return Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(self._llm.token_eos()),
            bos_token=token_text(self._llm.token_bos()),
            add_generation_prompt=True,
        )

    # Prompt assembly -----------------------------------------------------------------------

    def format_chat(self, system: str, user: str) -> str:
        response = self._formatter(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}]
        )
        return response.prompt

    def tokenize_prompt(self, text: str) -> list[int]:
        # add_bos lets the vocabulary decide; special parses chat markers as control tokens.
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def count_line(self, text: str) -> int:
        return self._line_counter.count(text)

    def count_chat(self, system: str, user: str) -> int:
        return len(self.tokenize_prompt(self.format_chat(system, user)))

    def build(self, analysis: AnalysisInput) -> BuiltPrompt:
        return build_prompt(
            self._prompts.select(analysis.prompt_version),
            analysis,
            budget=self.budget,
            count_prompt=self.count_chat,
            count_line=self.count_line,
        )

    def static_prefix_tokens(self, version: str | None = None) -> list[int]:
        """The tokens every prompt of this template version starts with."""
        system = self._prompts.select(version).system
        first = self.tokenize_prompt(self.format_chat(system, "A"))
        second = self.tokenize_prompt(self.format_chat(system, "B"))
        shared = 0
        for left, right in zip(first, second, strict=False):
            if left != right:
                break
            shared += 1
        return first[:shared]

    def warm_prefix(self, version: str | None = None) -> int:
        """Decode the static prefix now, so the first analysis already reuses it."""
        prefix = self.static_prefix_tokens(version)
        with self._thread_lock:
            self._llm.reset()  # type: ignore[no-untyped-call]  # unannotated upstream
            self._llm.eval(prefix)
        self.prefix_tokens = len(prefix)
        return self.prefix_tokens

    # Generation ----------------------------------------------------------------------------

    def analyze(
        self,
        analysis: AnalysisInput,
        *,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> AnalysisOutcome:
        """Blocking: build the prompt, generate under the grammar, validate, reconcile.

        on_token gets each piece of generated text from the calling thread; from async code
        hand it to the loop with loop.call_soon_threadsafe.
        """
        stop = cancel or threading.Event()
        with self._thread_lock:
            started = time.perf_counter()
            built = self.build(analysis)
            tokens = self.tokenize_prompt(self.format_chat(built.system, built.user))

            def should_stop(_ids: npt.NDArray[np.intc], _logits: npt.NDArray[np.single]) -> bool:
                return stop.is_set()

            self._eval_sizes.clear()
            # generate() rather than create_completion(): the latter re-detokenizes the whole
            # prompt for every generated token, which costs seconds on a long prompt.
            self._llm.set_seed(self._seed)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            scanner = _JsonEndScanner()
            pieces: list[str] = []
            finish_reason = "length"
            generated = 0
            eos = self._llm.token_eos()
            for token in self._llm.generate(
                tokens,
                temp=self._temperature,
                top_k=40,
                top_p=0.95,
                min_p=0.05,
                repeat_penalty=1.0,
                grammar=self._grammar,
                stopping_criteria=llama_cpp.StoppingCriteriaList([should_stop]),
            ):
                if token == eos:
                    finish_reason = "stop"
                    break
                generated += 1
                piece = decoder.decode(self._llm.detokenize([token]))
                if piece:
                    pieces.append(piece)
                    if on_token is not None:
                        on_token(piece)
                # The grammar allows nothing after the closing brace but an end token, so
                # stopping here saves sampling it.
                if scanner.feed(piece):
                    finish_reason = "stop"
                    break
                if generated >= self.max_tokens:
                    break
            if stop.is_set():
                finish_reason = "cancelled"
            evaluated = self._eval_sizes[0] if self._eval_sizes else 0
            stats = GenerationStats(
                prompt_tokens=len(tokens),
                prompt_tokens_evaluated=evaluated,
                completion_tokens=generated,
                finish_reason=finish_reason,
                elapsed_s=time.perf_counter() - started,
            )
            self.totals.add(stats)
        raw = "".join(pieces)
        if stop.is_set():
            raise LlmCancelledError("generation was stopped before it finished")
        if finish_reason == "length":
            raise LlmOutputError(f"output was cut off at max_tokens={self.max_tokens}")
        try:
            output = ModelOutput.model_validate_json(raw)
        except ValidationError as exc:
            raise LlmOutputError(f"output did not validate: {exc.error_count()} error(s)") from exc
        assessment = reconcile(
            output,
            model=self.model_name,
            prompt_version=built.version,
            suspicious_input=built.suspicious,
        )
        return AnalysisOutcome(assessment=assessment, stats=stats, prompt=built, raw_output=raw)

    @property
    def busy(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    async def analyze_async(
        self,
        analysis: AnalysisInput,
        *,
        timeout_s: float,
        on_token: TokenCallback | None = None,
    ) -> AnalysisOutcome:
        """Analyse in a worker thread; raise LlmTimeoutError after timeout_s (the whole wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            await asyncio.wait_for(self._async_lock.acquire(), timeout=timeout_s)
        except TimeoutError:
            raise LlmTimeoutError(f"LLM timed out after {timeout_s:g}s waiting its turn") from None
        try:
            previous = self._inflight
            if previous is not None and not previous.done():
                # A timed-out generation is still winding down; the model can run one at a time.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        asyncio.shield(previous), timeout=max(deadline - loop.time(), 0.0)
                    )
                if not previous.done():
                    raise LlmBusyError("LLM still busy with an earlier analysis")
            cancel = threading.Event()
            future = asyncio.ensure_future(
                asyncio.to_thread(self.analyze, analysis, on_token=on_token, cancel=cancel)
            )
            future.add_done_callback(_retrieve_exception)
            self._inflight = future
            try:
                return await asyncio.wait_for(
                    asyncio.shield(future), timeout=max(deadline - loop.time(), 0.0)
                )
            except TimeoutError:
                cancel.set()
                raise LlmTimeoutError(f"LLM timed out after {timeout_s:g}s") from None
            except asyncio.CancelledError:
                cancel.set()
                raise
        finally:
            self._async_lock.release()

    async def wait_idle(self) -> None:
        """Wait for a generation that outlived its caller (tests and shutdown use this)."""
        if self._inflight is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._inflight)

    def close(self) -> None:
        with self._thread_lock:
            self._llm.close()


class _JsonEndScanner:
    """Tracks string and nesting state of streamed JSON to see where the top object closes."""

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._started = False

    def feed(self, text: str) -> bool:
        """Feed more output; True once the outermost object has closed."""
        for char in text:
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
                self._started = True
            elif char in "}]":
                self._depth -= 1
                if self._started and self._depth == 0:
                    return True
        return False


def _retrieve_exception(future: asyncio.Future[AnalysisOutcome]) -> None:
    # The caller may have stopped waiting; read the result so asyncio does not log it as lost.
    if not future.cancelled():
        future.exception()
