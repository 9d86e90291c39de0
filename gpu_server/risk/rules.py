"""Rule-based risk assessment, used whenever no language model answers, so no event is lost.

The rules mirror what the prompt asks the model to weigh (object type, zone, time of day,
baseline anomaly, scene change), so switching between the two changes the wording more than
the score. Each rule that fires adds a line to the reasoning, which keeps the score explainable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from gpu_server.core.clock import hour_of_week
from gpu_server.feedback.context import finding_of
from gpu_server.llm.inputs import HOUSEHOLD_SOURCE, AnalysisInput, DetectionInput, DwellInput
from gpu_server.llm.sanitizer import injection_reasons, sanitize_name
from gpu_server.llm.schema import (
    ACTION_MAX_CHARS,
    REASONING_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    Assessment,
)
from gpu_server.llm.templates import duration_phrase, returning_phrase
from gpu_server.vocabulary import (
    SCORE_MAX,
    SCORE_MIN,
    LabelGroup,
    RiskLevel,
    RiskZoneKind,
    label_group,
    level_for_score,
)

RULES_MODEL: Final = "rules"
DETECTOR_ONLY_MODEL: Final = "detector"

# Base weight per kind of object, scaled by detection confidence.
PERSON_WEIGHT: Final = 45
VEHICLE_WEIGHT: Final = 30
OTHER_WEIGHT: Final = 15
ANIMAL_WEIGHT: Final = 8
ZONE_BONUS: Final = {
    RiskZoneKind.ENTRY: 20,
    RiskZoneKind.SENSITIVE: 20,
    RiskZoneKind.PERIMETER: 10,
    RiskZoneKind.OTHER: 0,
}
NIGHT_BONUS: Final = 15
ANOMALY_WEIGHT: Final = 25
CROWD_SIZE: Final = 3
CROWD_BONUS: Final = 5
CROSS_CAMERA_MINUTES: Final = 10.0
CROSS_CAMERA_BONUS: Final = 5
STEERING_BONUS: Final = 10
# Someone climbing or crouching at night while a person is in an entry zone: a modest nudge (a
# pose from a few frames is a weak cue; the person and the zone already carry the score).
POSE_BONUS: Final = 5
POSE_FLAGS: Final = frozenset({"climbing", "crouching"})
# Loitering: a person who has stayed in an entry or sensitive zone longer than the configured
# time (`events.loiter_s`) rather than walked past. The longest stay counts, once; from
# LOITER_LONG_S on, more.
LOITER_BONUS: Final = 15
LOITER_LONG_S: Final = 300.0
LOITER_LONG_BONUS: Final = 25
# A covered, moved or blinded camera is treated as high risk whatever else was seen.
TAMPER_FLOOR: Final = 70
# Fail-safe: with no model to weigh the context, a confident person at night or at an entry
# point is never scored below high, and the event says so (`failsafe`): Home Assistant's alert
# decision lets it page whatever the camera's minimum level.
FAILSAFE_PERSON_CONFIDENCE: Final = 0.6
# The detector "sure" confidence that FAILSAFE_PERSON_CONFIDENCE is stated for.
SURE_REFERENCE: Final = 0.9
FAILSAFE_FLOOR: Final = 60
FAILSAFE_ZONES: Final = frozenset({RiskZoneKind.ENTRY, RiskZoneKind.SENSITIVE})
# A case the household has called a false alarm often enough (see feedback/) weighs this much
# less, and is exempt from the fail-safe floor: the household has said what it is.
CALIBRATION_DISCOUNT: Final = 25

ACTIONS: Final = {
    RiskLevel.LOW: "No action needed; the event is kept for reference.",
    RiskLevel.MEDIUM: "Check the camera's recent snapshots when convenient.",
    RiskLevel.HIGH: "Check the live view now and make sure doors and windows are locked.",
    RiskLevel.CRITICAL: "Check the live view immediately and contact help if someone is at risk.",
}


_WEIGHTS: Final = {
    LabelGroup.PERSON: PERSON_WEIGHT,
    LabelGroup.VEHICLE: VEHICLE_WEIGHT,
    LabelGroup.ANIMAL: ANIMAL_WEIGHT,
    LabelGroup.OTHER: OTHER_WEIGHT,
}


def _calibrated(analysis: AnalysisInput, detection: DetectionInput) -> int:
    """False alarms the household counted for this detection's case at this hour (0: none
    enough to lower it)."""
    finding = finding_of(detection.label, detection.zone)
    hour = hour_of_week(analysis.local_time)
    for case in analysis.feedback:
        if (
            case.calibrated
            and case.hour_of_week == hour
            and case.label == finding.label
            and (case.zone or "") == finding.zone
        ):
            return case.false_alarms
    return 0


def _posed_at_entry_at_night(analysis: AnalysisInput) -> bool:
    if not analysis.is_night:
        return False
    if not any(POSE_FLAGS.intersection(pose.flags) for pose in analysis.poses):
        return False
    return any(
        label_group(detection.label) is LabelGroup.PERSON
        and analysis.zone_kind(detection.zone) is RiskZoneKind.ENTRY
        for detection in analysis.detections
    )


def _longest_stay(analysis: AnalysisInput) -> DwellInput | None:
    return max(analysis.dwell, key=lambda stay: stay.seconds, default=None)


def loiter_bonus(stay: DwellInput) -> int:
    """The rules' bonus for loitering this long: LOITER_BONUS, LOITER_LONG_BONUS at most."""
    return LOITER_LONG_BONUS if stay.seconds >= LOITER_LONG_S else LOITER_BONUS


def place_phrase(zone: str) -> str:
    """A zone's name as a place in a sentence: "Back door" is "the back door". A name of
    someone's place stays as it is ("Anna's shed"); "NE gate" keeps its capitals."""
    words = (sanitize_name(zone).text or "zone").split(" ")
    if words[0].endswith(("'s", "\N{RIGHT SINGLE QUOTATION MARK}s")):
        return " ".join(words)
    if words[0].lower() == "the" and len(words) > 1:
        words = words[1:]
    # Ordinary words lose their capital; acronyms and names in mixed case keep theirs.
    return "the " + " ".join(
        word[0].lower() + word[1:] if word[:1].isupper() and word[1:].islower() else word
        for word in words
    )


def _failsafe(analysis: AnalysisInput) -> str | None:
    """Why this window must be at least high without a model's judgement, or None."""
    # 0.6 for a detector sure at 0.9 (YOLO); lower for one whose scores run lower.
    confident = FAILSAFE_PERSON_CONFIDENCE * analysis.detector_sure_confidence / SURE_REFERENCE
    for detection in analysis.detections:
        if label_group(detection.label) is not LabelGroup.PERSON:
            continue
        if _calibrated(analysis, detection):
            continue
        if detection.confidence < confident:
            continue
        if analysis.is_night:
            return "a confident person at night"
        if analysis.zone_kind(detection.zone) in FAILSAFE_ZONES:
            return "a confident person at an entry point or sensitive zone"
    return None


_PLURALS: Final = {
    LabelGroup.PERSON: "people",
    LabelGroup.VEHICLE: "vehicles",
    LabelGroup.ANIMAL: "animals",
    LabelGroup.OTHER: "other objects",
}


def _counted(kind: LabelGroup, count: int) -> str:
    """"1 person", "4 people", "2 other objects"."""
    if count == 1:
        return f"1 {'other object' if kind is LabelGroup.OTHER else kind.value}"
    return f"{count} {_PLURALS[kind]}"


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _steering(analysis: AnalysisInput) -> bool:
    """Whether text in the scene tries to instruct the system (the household's notes aside)."""
    return any(
        injection_reasons(item.text)
        for item in analysis.untrusted_texts
        if item.source != HOUSEHOLD_SOURCE
    )


def _strongest(analysis: AnalysisInput) -> tuple[float, str] | None:
    """The detection that weighs most, with its weight and how it came about."""
    best: tuple[float, str] | None = None
    for detection in analysis.detections:
        kind = label_group(detection.label)
        value = _WEIGHTS[kind] * (0.5 + 0.5 * detection.confidence)
        zone_kind = analysis.zone_kind(detection.zone)
        if zone_kind is not None:
            bonus = ZONE_BONUS[zone_kind]
            # An animal in the doorway is still an animal.
            value += bonus / 2 if kind is LabelGroup.ANIMAL else bonus
        where = f" in {zone_kind.value} zone" if zone_kind else ""
        note = ""
        if false_alarms := _calibrated(analysis, detection):
            value = max(0.0, value - CALIBRATION_DISCOUNT)
            note = (
                f", a false alarm {false_alarms} times at this hour by the household's word "
                f"(-{CALIBRATION_DISCOUNT})"
            )
        if best is None or value > best[0]:
            best = (
                value,
                f"{kind} ({detection.label}) at {detection.confidence:.2f}{where}{note}",
            )
    return best


def _loitering(analysis: AnalysisInput) -> tuple[int, str] | None:
    """The bonus for the longest stay in an entry or sensitive zone, and its factor line."""
    stay = _longest_stay(analysis)
    if stay is None:
        return None
    bonus = loiter_bonus(stay)
    kind = analysis.zone_kind(stay.zone)
    where = f"{kind.value} zone" if kind is not None else "a zone"
    return bonus, f"a person loitering in {where} for {duration_phrase(stay)} (+{bonus})"


def _counts(analysis: AnalysisInput) -> Counter[LabelGroup]:
    """How many of each kind were there: the most in one frame, not the sum over frames."""
    kinds = Counter(label_group(detection.label) for detection in analysis.detections)
    for group, detected in kinds.items():
        if (peak := analysis.seen_at_once.get(group.value)) is not None:
            kinds[group] = max(1, min(detected, peak))
    return kinds


def _summary(analysis: AnalysisInput, level: RiskLevel, kinds: Counter[LabelGroup]) -> str:
    camera = sanitize_name(analysis.camera_name).text or analysis.camera_id
    seen = ", ".join(_counted(kind, count) for kind, count in sorted(kinds.items())) or "nothing"
    summary = f"{level.value.capitalize()} risk on {camera}: {seen} detected ({analysis.daypart})."
    if analysis.scene_changed:
        # Whatever else the window held stays in the sentence: a covered camera after a person.
        also = f"; {seen} detected" if kinds else ""
        summary = (
            f"{level.value.capitalize()} risk on {camera}: the scene changed suddenly{also} "
            f"({analysis.daypart})."
        )
    if analysis.returning:
        summary = f"{summary[:-1]}; {returning_phrase(analysis.returning[0])}."
    if (stay := _longest_stay(analysis)) is not None:
        summary = (
            f"{summary[:-1]}; a person has stood at {place_phrase(stay.zone)} for "
            f"{duration_phrase(stay)}."
        )
    return summary


def assess_with_rules(analysis: AnalysisInput, reason: str) -> Assessment:
    """Score the window by rule; `reason` says why the rules ran instead of a model."""
    score = 0.0
    factors: list[str] = []
    kinds = _counts(analysis)

    best = _strongest(analysis)
    if best is not None:
        score += best[0]
        factors.append(f"strongest detection: {best[1]} (+{best[0]:.0f})")

    people_or_vehicles = kinds[LabelGroup.PERSON] + kinds[LabelGroup.VEHICLE]
    if analysis.is_night and analysis.detections:
        bonus = NIGHT_BONUS if people_or_vehicles else NIGHT_BONUS // 3
        score += bonus
        factors.append(f"night time (+{bonus})")
    if kinds[LabelGroup.PERSON] >= CROWD_SIZE:
        score += CROWD_BONUS
        factors.append(f"{kinds[LabelGroup.PERSON]} people (+{CROWD_BONUS})")
    if analysis.baseline is not None and analysis.baseline.anomaly_score > 0:
        bonus = round(ANOMALY_WEIGHT * analysis.baseline.anomaly_score)
        score += bonus
        factors.append(f"anomaly score {analysis.baseline.anomaly_score:.2f} (+{bonus})")
    recent = [
        activity
        for activity in analysis.other_cameras
        if activity.minutes_ago <= CROSS_CAMERA_MINUTES
        and any(label_group(label) is LabelGroup.PERSON for label in activity.labels)
    ]
    if recent and people_or_vehicles:
        score += CROSS_CAMERA_BONUS
        factors.append(f"people on {len(recent)} other camera(s) recently (+{CROSS_CAMERA_BONUS})")
    if (loitering := _loitering(analysis)) is not None:
        score += loitering[0]
        factors.append(loitering[1])
    if _posed_at_entry_at_night(analysis):
        score += POSE_BONUS
        factors.append(f"a person climbing or crouching at an entry at night (+{POSE_BONUS})")
    steering = _steering(analysis)
    if steering:
        score += STEERING_BONUS
        factors.append(f"text in view tries to instruct the system (+{STEERING_BONUS})")
    failsafe = _failsafe(analysis)
    if score < FAILSAFE_FLOOR and failsafe:
        score = FAILSAFE_FLOOR
        factors.append(f"{failsafe}: at least {FAILSAFE_FLOOR}")
    if analysis.scene_changed and score < TAMPER_FLOOR:
        score = TAMPER_FLOOR
        factors.append(f"scene change or tampering: at least {TAMPER_FLOOR}")

    risk_score = int(min(max(round(score), SCORE_MIN), SCORE_MAX))
    level = level_for_score(risk_score)
    summary = _summary(analysis, level, kinds)
    reasoning = f"Rule-based assessment ({reason}). " + (
        "; ".join(factors) if factors else "no risk factors"
    )
    return Assessment(
        risk_score=risk_score,
        risk_level=level,
        summary=_cap(summary, SUMMARY_MAX_CHARS),
        reasoning=_cap(reasoning + ".", REASONING_MAX_CHARS),
        recommended_action=_cap(ACTIONS[level], ACTION_MAX_CHARS),
        fallback=True,
        fallback_reason=reason,
        failsafe=failsafe is not None,
        model=RULES_MODEL,
        suspicious_input=steering,
    )


def assess_by_detector_only(
    labels: Sequence[tuple[str, float]], *, tamper: bool, sure_confidence: float, reason: str
) -> Assessment | None:
    """The last resort when not even the rules could score a window: a confident person or
    vehicle, or a tampered camera, still pages (high); None when nothing does."""
    confident = FAILSAFE_PERSON_CONFIDENCE * sure_confidence / SURE_REFERENCE
    found = sorted({
        group.value
        for label, confidence in labels
        if (group := label_group(label)) in (LabelGroup.PERSON, LabelGroup.VEHICLE)
        and confidence >= confident
    })
    if not found and not tamper:
        return None
    seen = ", ".join(found) if found else "a tampered camera"
    return Assessment(
        risk_score=FAILSAFE_FLOOR,
        risk_level=level_for_score(FAILSAFE_FLOOR),
        summary=_cap(f"Detected {seen}; this could not be assessed.", SUMMARY_MAX_CHARS),
        reasoning=_cap(
            f"Detector-only rule ({reason}): {seen} detected with confidence; "
            f"at least {FAILSAFE_FLOOR} so that it pages.",
            REASONING_MAX_CHARS,
        ),
        recommended_action=ACTIONS[level_for_score(FAILSAFE_FLOOR)],
        fallback=True,
        fallback_reason=_cap(reason, 200),
        failsafe=True,
        model=DETECTOR_ONLY_MODEL,
    )
