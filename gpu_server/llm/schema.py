"""The risk assessment every analysis ends in, whether a language model or the rules wrote it."""

from __future__ import annotations

import unicodedata
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpu_server.vocabulary import SCORE_MAX, SCORE_MIN, RiskLevel, level_for_score

SUMMARY_MAX_CHARS: Final = 200
SCENE_MAX_CHARS: Final = 300
REASONING_MAX_CHARS: Final = 600
ACTION_MAX_CHARS: Final = 200

# The order the model must write the keys in; the grammar and the prompt both use it.
FIELD_ORDER: Final = ("risk_score", "risk_level", "summary", "reasoning", "recommended_action")
# A model that is shown the key frame first says what it sees, then judges it.
VISION_FIELD_ORDER: Final = ("scene_description", *FIELD_ORDER)


def field_order(vision: bool) -> tuple[str, ...]:
    return VISION_FIELD_ORDER if vision else FIELD_ORDER


# Control, format (zero-width, bidi), surrogate, private-use and unassigned characters.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def visible_text(text: str) -> str:
    """Drop characters that do not display, so an event text shows exactly what it says."""
    return "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE_CATEGORIES)


class ModelOutput(BaseModel):
    """Exactly what the model is asked to write, validated before anything trusts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk_score: int = Field(ge=SCORE_MIN, le=SCORE_MAX, strict=True)
    risk_level: RiskLevel
    summary: str = Field(max_length=SUMMARY_MAX_CHARS)
    reasoning: str = Field(max_length=REASONING_MAX_CHARS)
    recommended_action: str = Field(max_length=ACTION_MAX_CHARS)
    # What a vision-language model saw in the key frame; empty for a text-only model.
    scene_description: str = Field(default="", max_length=SCENE_MAX_CHARS)

    @field_validator(
        "summary", "reasoning", "recommended_action", "scene_description", mode="after"
    )
    @classmethod
    def _visible(cls, value: str) -> str:
        # The grammar already keeps control characters out; this also catches the rarer
        # invisible ones and anything a model without the grammar would write.
        return visible_text(value).strip()


class AuditRubric(BaseModel):
    """How well an assessment's text serves the household, each from 1 (poor) to 5 (good)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context_used: int = Field(ge=1, le=5)  # the objects, zones, time and cameras it was given
    coherent: int = Field(ge=1, le=5)  # no claims the frames do not show, no repetition
    justified: int = Field(ge=1, le=5)  # the level is one the evidence supports
    actionable: int = Field(ge=1, le=5)  # a short, clear summary and a concrete action

    @property
    def score(self) -> float:
        return (self.context_used + self.coherent + self.justified + self.actionable) / 4


class Assessment(BaseModel):
    """A scored, explained security event, plus where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk_score: int = Field(ge=SCORE_MIN, le=SCORE_MAX)
    risk_level: RiskLevel
    summary: str = Field(max_length=SUMMARY_MAX_CHARS)
    reasoning: str = Field(max_length=REASONING_MAX_CHARS)
    recommended_action: str = Field(max_length=ACTION_MAX_CHARS)
    # What a vision-language model saw in the key frame (audited like the rest of its text).
    scene_description: str = Field(default="", max_length=SCENE_MAX_CHARS)
    # True when the rules wrote this because no model answered in time or at all.
    fallback: bool = False
    # The rules' fail-safe holds (a confident person at night or at an entry point, and no model
    # weighed it): it pages before any per-camera minimum is applied.
    failsafe: bool = False
    fallback_reason: str | None = None
    # Set when the model's level disagreed with its own score; the score won.
    level_corrected: bool = False
    model_risk_level: RiskLevel | None = None
    # Which model (file name) or "rules" produced the assessment, and with which prompt.
    model: str = "rules"
    prompt_version: str | None = None
    # Some untrusted text in the input looked like an attempt to steer the analysis.
    suspicious_input: bool = False
    # What in a model's text the detections or the rules did not back (see risk/audit.py).
    audit_notes: tuple[str, ...] = ()
    audit_rubric: AuditRubric | None = None


def reconcile(
    output: ModelOutput,
    *,
    model: str,
    prompt_version: str | None,
    suspicious_input: bool = False,
) -> Assessment:
    """Turn validated model output into an Assessment, trusting the score over the level.

    A small model often writes a level that contradicts its own score; the score is the finer
    signal and drives automations, so the level is recomputed from it and the change flagged.
    """
    expected = level_for_score(output.risk_score)
    corrected = output.risk_level != expected
    return Assessment(
        risk_score=output.risk_score,
        risk_level=expected,
        summary=output.summary,
        reasoning=output.reasoning,
        recommended_action=output.recommended_action,
        scene_description=output.scene_description,
        level_corrected=corrected,
        model_risk_level=output.risk_level if corrected else None,
        model=model,
        prompt_version=prompt_version,
        suspicious_input=suspicious_input,
    )
