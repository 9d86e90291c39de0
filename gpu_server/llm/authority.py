"""What a language model may do with an event, decided by how well it measured.

A model *judges* (its score is used within a bound of the rules'), *narrates* (the rules score;
the model's sentences are used when the audit keeps them) or is *off* (not called at all). The
decision comes from a quality record: the result of `bench/analysis_quality.py` on the labelled
event descriptions, for that model file or endpoint model. Records ship with the sidecar for the
models it knows, and the bench writes new ones into the data folder. A model with no record
narrates: the rules keep the score until its quality is known.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_LOGGER = logging.getLogger(__name__)

# The records that ship with the sidecar, one JSON file per measured model.
BUILTIN_RECORDS: Final = Path(__file__).with_name("quality")
# Where the bench saves a record for the sidecar that owns a data folder.
RECORDS_FOLDER: Final = "llm/quality"

# A model narrates only when most of its answers parse and most of its sentences survive the
# audit: otherwise the event would wait for text that is thrown away.
NARRATE_MIN_VALID: Final = 0.9
NARRATE_MIN_KEPT: Final = 0.7
# It judges only when, in addition, it orders the cases as a household would and its answers
# survive the audit with its own level.
JUDGE_MIN_ORDER: Final = 0.8
JUDGE_MIN_KEPT: Final = 0.8


class Authority(enum.StrEnum):
    JUDGE = "judge"
    NARRATE = "narrate"
    OFF = "off"


class QualityRecord(BaseModel):
    """One model measured on the labelled event descriptions."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The GGUF file name, or the model name a remote endpoint serves.
    model: str
    # The file's size, so a re-quantised file of the same name is not mistaken for it; 0 for
    # a remote model.
    size_bytes: int = Field(default=0, ge=0)
    cases: int = Field(ge=1)
    # Answers that parsed into an assessment.
    valid: int = Field(ge=0)
    # Sentences the audit kept when the rules score (narration), and answers it kept with the
    # model's own level (judgement).
    narration_kept: int = Field(ge=0)
    judgement_kept: int = Field(ge=0)
    # Of the pairs of cases a household ranks differently, the share the model's scores order
    # the same way (ties count half).
    order_agreement: float = Field(ge=0.0, le=1.0)
    latency_p50_s: float = Field(default=0.0, ge=0.0)
    latency_p95_s: float = Field(default=0.0, ge=0.0)
    measured_on: str = ""

    def matches(self, model: str, size_bytes: int) -> bool:
        return self.model == model and self.size_bytes in (0, size_bytes)


@dataclass(frozen=True, slots=True)
class Decision:
    authority: Authority
    # One sentence a user reads in the status: what was measured and what follows.
    reason: str


def decide(record: QualityRecord) -> Decision:
    """The most a model may do, given its measured quality."""
    valid = record.valid / record.cases
    narrated = record.narration_kept / record.cases
    judged = record.judgement_kept / record.cases
    measured = (
        f"measured on {record.cases} cases: {valid:.0%} valid answers, "
        f"{narrated:.0%} of its sentences kept, risk order {record.order_agreement:.0%}"
    )
    if valid < NARRATE_MIN_VALID or narrated < NARRATE_MIN_KEPT:
        return Decision(Authority.OFF, f"off: {measured}; too few answers would be used")
    if record.order_agreement >= JUDGE_MIN_ORDER and judged >= JUDGE_MIN_KEPT:
        return Decision(Authority.JUDGE, f"judges: {measured}")
    return Decision(Authority.NARRATE, f"narrates: {measured}; the rules keep the score")


def load_records(*folders: Path) -> list[QualityRecord]:
    """Every readable record in the folders, later folders first (they override)."""
    records: list[QualityRecord] = []
    for folder in reversed(folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                records.append(QualityRecord.model_validate(json.loads(path.read_text())))
            except (OSError, ValueError, ValidationError) as exc:
                _LOGGER.warning("ignoring the quality record %s: %s", path.name, exc)
    return records


def find_record(
    records: list[QualityRecord], model: str, size_bytes: int
) -> QualityRecord | None:
    return next((record for record in records if record.matches(model, size_bytes)), None)


def record_file_name(model: str) -> str:
    """A file name for a model's record: its name with anything unusual replaced."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:120]
    return f"{safe or 'model'}.json"
