"""The one entry point the events use: always returns an Assessment, by model or by rules.

The language model (llm/service.py) is asked when it may be; whatever goes wrong, the rules
answer instead and the assessment says why, so an event is never lost.

What the model's answer may change follows its measured quality (llm/authority.py): a judge's
score is held within a bound of the rules', a narrator only writes the text on the rules' score,
and a model that is off is never asked.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gpu_server.config import LlmSettings
from gpu_server.llm.authority import Authority
from gpu_server.llm.grammar import GrammarLimits
from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.model_server import ModelServer
from gpu_server.llm.schema import REASONING_MAX_CHARS, Assessment
from gpu_server.llm.service import LanguageModel, LanguageModelStatus, TokenCallback, shorten
from gpu_server.risk.audit import LEVEL_GAP, audit, rubric
from gpu_server.risk.rules import assess_with_rules
from gpu_server.vocabulary import SCORE_MAX, SCORE_MIN, level_for_score

_LOGGER = logging.getLogger(__name__)


def bounded(answer: Assessment, rules: Assessment, bound: int) -> Assessment:
    """A judging model's answer with its score kept within `bound` points of the rules'."""
    low, high = max(SCORE_MIN, rules.risk_score - bound), min(SCORE_MAX, rules.risk_score + bound)
    score = min(max(answer.risk_score, low), high)
    if score == answer.risk_score:
        return answer
    return answer.model_copy(update={"risk_score": score, "risk_level": level_for_score(score)})


def narrated(answer: Assessment, rules: Assessment) -> Assessment:
    """A narrating model's sentences on the rules' score, level and recommended action."""
    return answer.model_copy(
        update={
            "risk_score": rules.risk_score,
            "risk_level": rules.risk_level,
            "recommended_action": rules.recommended_action,
            "level_corrected": False,
            "model_risk_level": None,
        }
    )


def _rules_reasoning(rules: Assessment, why: str) -> str:
    """The rules' reasoning, saying why the model's text was not used."""
    text = rules.reasoning.replace("checking the model's answer", shorten(why), 1)
    return text[:REASONING_MAX_CHARS]


class RiskAnalysis:
    """Asks the model when one is configured and may answer, else the rules; then decides."""

    def __init__(
        self,
        settings: LlmSettings,
        models_dir: Path,
        *,
        data_dir: Path | None = None,
        grammar_limits: GrammarLimits | None = None,
    ) -> None:
        self.settings = settings
        self.model = LanguageModel(
            settings, models_dir, data_dir=data_dir, grammar_limits=grammar_limits
        )
        self.fallbacks = 0
        # Model answers whose text the audit did not keep; the rules' text went out instead.
        self.replaced = 0

    # What the events part and the status read of the model ----------------------------------

    @property
    def prompt_versions(self) -> tuple[str, ...]:
        return self.model.prompt_versions

    @property
    def model_name(self) -> str | None:
        return self.model.model_name

    @property
    def unavailable_reason(self) -> str:
        return self.model.unavailable_reason

    @property
    def server(self) -> ModelServer | None:
        return self.model.server

    @property
    def authority(self) -> Authority:
        return self.model.authority

    @property
    def sees_images(self) -> bool:
        return self.model.sees_images

    def prompt_version_for(self, analysis: AnalysisInput) -> str:
        return self.model.prompt_version_for(analysis)

    async def start(self) -> None:
        await self.model.start()

    async def close(self, grace_s: float = 5.0) -> None:
        await self.model.close(grace_s)

    def status(self) -> LanguageModelStatus:
        return self.model.status(fallbacks=self.fallbacks, replaced=self.replaced)

    # Assessing -----------------------------------------------------------------------------

    async def assess(
        self,
        analysis: AnalysisInput,
        *,
        urgent: bool = False,
        on_token: TokenCallback | None = None,
        timeout_s: float | None = None,
        image: bytes | None = None,
    ) -> Assessment:
        """Never raises for a model problem: the rules answer instead, with the reason.

        `urgent` analyses (a fast-path person, a tampered camera) go ahead of ordinary ones.
        timeout_s overrides the configured timeout, counted from now. `image`, the event's key
        frame (JPEG), is shown to a model that can look and ignored otherwise.
        """
        if self.model.backend is not None and self.model.authority is Authority.OFF:
            # Chosen, not a failure: the rules are this installation's analysis.
            why = "in the settings" if self.settings.authority == "off" else "as measured"
            rules = assess_with_rules(analysis, f"the language model is off {why}")
            return rules.model_copy(
                update={
                    "fallback": False,
                    "fallback_reason": None,
                    "audit_rubric": rubric(rules, analysis, rules),
                }
            )
        answer, asked = await self.model.ask(
            analysis, urgent=urgent, on_token=on_token, timeout_s=timeout_s, image=image
        )
        if isinstance(answer, str):
            return self._rules(analysis, answer)
        return self._checked(answer, asked)

    def _checked(self, answer: Assessment, analysis: AnalysisInput) -> Assessment:
        """The model's answer as far as its authority goes, with the audit's notes."""
        rules = assess_with_rules(analysis, "checking the model's answer")
        if self.model.authority is Authority.JUDGE:
            answer = bounded(answer, rules, self.settings.judge_bound)
            notes = audit(answer, analysis, rules, level_gap=LEVEL_GAP)
        else:
            # Narration: the rules' score and level, the model's words if they hold.
            answer = narrated(answer, rules)
            notes = audit(answer, analysis, rules)
            if notes:
                self.replaced += 1
                _LOGGER.info(
                    "The sentences of %s were not kept: %s",
                    self.model.model_name, "; ".join(notes),
                )
                answer = rules.model_copy(
                    update={
                        "reasoning": _rules_reasoning(
                            rules, f"the model's text was not used, as it {notes[0]}"
                        ),
                        "fallback": False,
                        "fallback_reason": None,
                        "model": answer.model,
                        "prompt_version": answer.prompt_version,
                    }
                )
        return answer.model_copy(
            update={"audit_notes": notes, "audit_rubric": rubric(answer, analysis, rules)}
        )

    def _rules(self, analysis: AnalysisInput, reason: str) -> Assessment:
        self.fallbacks += 1
        rules = assess_with_rules(analysis, reason)
        return rules.model_copy(update={"audit_rubric": rubric(rules, analysis, rules)})
