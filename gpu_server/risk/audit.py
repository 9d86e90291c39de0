"""Checks a language model's assessment against what was detected, before anyone reads it.

Small models write fluent text that need not match the frames: "a person broke in" for a photo
of a cat, or the same clause five times over. Each answer is compared with the detections and
with the rules' own level, and checked for running in circles; what does not hold becomes an
audit note on the event. A narrating model's text with a note is not used (the rules' text
goes out); a judging model's text stands with its notes (see llm/authority.py).

Every assessment, the rules' own included, is also scored on a rubric of four points from 1
to 5: does it use the context it was given, does it hold together, does the evidence justify
its level, and can the household act on it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Final

from gpu_server.llm.inputs import AnalysisInput
from gpu_server.llm.schema import Assessment, AuditRubric
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
# Rubric: words that show the text took in a part of the context.
_NIGHT_WORDS: Final = frozenset({"night", "dark", "midnight", "overnight", "late"})
_SCENE_WORDS: Final = frozenset({
    "scene", "view", "moved", "covered", "blocked", "tamper", "tampered", "tampering",
    "re-aimed", "blinded", "obscured",
})
_ANOMALY_WORDS: Final = frozenset({"unusual", "usual", "normal", "anomaly", "anomalous", "rare"})
_OTHER_CAMERA_WORDS: Final = frozenset({"camera", "cameras", "elsewhere", "earlier"})
# An anomaly score from which the baseline is worth mentioning.
_NOTABLE_ANOMALY: Final = 0.5
# A summary longer than this is no longer a glance at a phone.
_SUMMARY_WORDS: Final = 35
_GAP_SCORE: Final = {0: 5, 1: 4, 2: 2, 3: 1}


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
    """What in the model's assessment the detections and the rules do not back.

    A vision-language model's description of the key frame is held to the same detections:
    what it says it saw must be among them.
    """
    text = f"{assessment.scene_description} {assessment.summary} {assessment.reasoning}"
    words = _WORD.findall(text.lower())
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
            f"rates it {assessment.risk_level.value} where the rules rate it "
            f"{rules.risk_level.value}"
        )
    return tuple(notes)


def _mentions(words: set[str], phrase: str) -> bool:
    """Whether every word of a name ("back garden") is in the text."""
    wanted = _WORD.findall(phrase.lower())
    return bool(wanted) and all(word in words for word in wanted)


def _names(group: LabelGroup) -> frozenset[str]:
    return _CLAIMS.get(group, frozenset()) | {group.value}


def _context_used(words: set[str], analysis: AnalysisInput) -> int:
    """1 to 5: how much of the context the analysis had does the text take in."""
    groups = {label_group(detection.label) for detection in analysis.detections}
    parts = [bool(words & _names(group)) for group in groups]
    for zone in {detection.zone for detection in analysis.detections if detection.zone}:
        kind = analysis.zone_kind(zone)
        parts.append(_mentions(words, zone) or (kind is not None and kind.value in words))
    if analysis.is_night and analysis.detections:
        parts.append(bool(words & _NIGHT_WORDS))
    if analysis.scene_changed:
        parts.append(bool(words & _SCENE_WORDS))
    if analysis.baseline is not None and analysis.baseline.anomaly_score >= _NOTABLE_ANOMALY:
        parts.append(bool(words & _ANOMALY_WORDS))
    if analysis.other_cameras and analysis.detections:
        parts.append(
            bool(words & _OTHER_CAMERA_WORDS)
            or any(_mentions(words, other.camera_name) for other in analysis.other_cameras)
        )
    if not parts:
        return 5
    return 1 + round(4 * sum(parts) / len(parts))


def rubric(assessment: Assessment, analysis: AnalysisInput, rules: Assessment) -> AuditRubric:
    """Score the assessment's text against the frames, the context and the rules' level."""
    text_words = _WORD.findall(f"{assessment.summary} {assessment.reasoning}".lower())
    words = set(text_words)
    seen = {label_group(detection.label) for detection in analysis.detections}

    unbacked = sum(
        group not in seen and _claimed(text_words, vocabulary)
        for group, vocabulary in _CLAIMS.items()
    )
    if not analysis.scene_changed and LabelGroup.PERSON not in seen:
        unbacked += _claimed(text_words, _ATTACK)
    coherent = 5 - 2 * unbacked - 2 * _repeats_itself(text_words)
    if not assessment.reasoning:
        coherent = min(coherent, 3)

    gap = abs(_LEVEL_ORDER[assessment.risk_level] - _LEVEL_ORDER[rules.risk_level])
    justified = _GAP_SCORE[gap]
    if seen and not any(words & _names(group) for group in seen):
        justified -= 1  # a level with no word about what was seen

    actionable = 5
    if not assessment.recommended_action:
        actionable -= 3
    elif len(_WORD.findall(assessment.recommended_action.lower())) < 3:
        actionable -= 1
    summary_words = len(_WORD.findall(assessment.summary.lower()))
    if summary_words == 0:
        actionable -= 2
    elif summary_words > _SUMMARY_WORDS:
        actionable -= 1

    return AuditRubric(
        context_used=_context_used(words, analysis),
        coherent=_clamp(coherent),
        justified=_clamp(justified),
        actionable=_clamp(actionable),
    )


def _clamp(value: int) -> int:
    return max(1, min(5, value))

