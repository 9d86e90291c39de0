"""Checks a language model's assessment against what was detected, before anyone reads it.

Small models write fluent text that need not match the frames: "a person broke in" for a photo
of a cat, or the same clause five times over. Each answer is compared with the detections and
with the rules' own level, and checked for running in circles; what does not hold becomes an
audit note on the event. When the model is not trusted (small models, by default), a level even
one step from the rules' is a note, and an answer with notes is replaced by the rules' plain
assessment.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Final

from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.schema import Assessment
from gpu_server.vocabulary import LabelGroup, RiskLevel, label_group

# Words that claim something was seen; the detections must back each claim.
_CLAIMS: Final = {
    LabelGroup.PERSON: frozenset({
        "person", "people", "man", "men", "woman", "women", "someone", "somebody", "intruder",
        "intruders", "burglar", "burglars", "thief", "thieves", "stranger", "strangers",
        "visitor", "child", "children", "trespasser",
    }),
    LabelGroup.VEHICLE: frozenset({
        "car", "cars", "vehicle", "vehicles", "truck", "van", "motorcycle", "bicycle", "bike",
    }),
    LabelGroup.ANIMAL: frozenset({"cat", "cats", "dog", "dogs", "animal", "animals", "fox"}),
}
_ATTACK: Final = frozenset({
    "attack", "attacked", "attacking", "break-in", "broke", "burglary", "forced", "weapon",
    "gun", "knife", "smashed", "robbery",
})
_NEGATIONS: Final = frozenset({"no", "not", "without", "nobody", "none", "never", "nothing"})
# A word this close after a negation is not a claim: "no sign of forced entry".
_NEGATION_REACH: Final = 4
_LEVEL_ORDER: Final = {
    RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2, RiskLevel.CRITICAL: 3,
}
# Levels this many steps apart are too far apart to be a matter of judgement (for a model not
# trusted, one step already is).
LEVEL_GAP: Final = 2
# A phrase of this many words said this often: the text runs in circles.
_PHRASE_WORDS: Final = 4
_PHRASE_REPEATS: Final = 3
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def _claimed(words: list[str], vocabulary: Iterable[str]) -> bool:
    wanted = frozenset(vocabulary)
    for index, word in enumerate(words):
        if word not in wanted:
            continue
        if not _NEGATIONS.intersection(words[max(0, index - _NEGATION_REACH) : index]):
            return True
    return False


def _repeats_itself(words: list[str]) -> bool:
    phrases = Counter(
        tuple(words[index : index + _PHRASE_WORDS])
        for index in range(len(words) - _PHRASE_WORDS + 1)
    )
    return any(count >= _PHRASE_REPEATS for count in phrases.values())


def audit(
    assessment: Assessment,
    analysis: AnalysisInput,
    rules: Assessment,
    *,
    level_gap: int = LEVEL_GAP,
) -> tuple[str, ...]:
    """What in the model's assessment the detections and the rules do not back."""
    words = _WORD.findall(f"{assessment.summary} {assessment.reasoning}".lower())
    seen = {label_group(detection.label) for detection in analysis.detections}
    notes = [
        f"mentions a {group.value} but none was detected"
        for group, vocabulary in _CLAIMS.items()
        if group not in seen and _claimed(words, vocabulary)
    ]
    if not analysis.scene_changed and LabelGroup.PERSON not in seen and _claimed(words, _ATTACK):
        notes.append("describes an attack or break-in that nothing detected shows")
    if _repeats_itself(words):
        notes.append("repeats itself")
    gap = abs(_LEVEL_ORDER[assessment.risk_level] - _LEVEL_ORDER[rules.risk_level])
    if gap >= level_gap:
        notes.append(
            f"its level {assessment.risk_level.value} is far from the rules' "
            f"{rules.risk_level.value}"
        )
    return tuple(notes)
