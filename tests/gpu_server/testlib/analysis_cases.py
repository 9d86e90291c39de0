"""The labelled event descriptions (data/analysis_cases.yaml) as analysis inputs, and the
measure of how well a set of scores keeps the risk order a homeowner expects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any, Final

import yaml

from gpu_server.llm.inputs import (
    AnalysisInput,
    BaselineInput,
    CameraActivity,
    DetectionInput,
    PersonInput,
    PoseInput,
    UntrustedText,
    ZoneInput,
)

CASES_FILE: Final = Path(__file__).parents[1] / "data" / "analysis_cases.yaml"
# A Tuesday; every case happens on it, in UTC as the camera's local time.
_DAY: Final = datetime(2026, 6, 2, tzinfo=UTC)
_WINDOW: Final = timedelta(seconds=20)


@dataclass(frozen=True, slots=True)
class LabelledCase:
    case_id: str
    tier: int
    analysis: AnalysisInput


def _analysis(raw: dict[str, Any]) -> AnalysisInput:
    hours, minutes = (int(part) for part in str(raw["time"]).split(":"))
    end = _DAY.replace(hour=hours, minute=minutes)
    camera = str(raw["camera"])
    return AnalysisInput(
        camera_id=camera.lower().replace(" ", "_"),
        camera_name=camera,
        start=end - _WINDOW,
        end=end,
        local_time=end,
        detections=tuple(
            DetectionInput(label=label, confidence=confidence, zone=zone)
            for label, confidence, zone in raw.get("detections", [])
        ),
        zones=tuple(
            ZoneInput(name=name, kind=kind) for name, kind in raw.get("zones", {}).items()
        ),
        baseline=BaselineInput(anomaly_score=float(raw.get("anomaly", 0.0))),
        other_cameras=tuple(
            CameraActivity(camera_name=name, minutes_ago=minutes_ago, labels=tuple(labels))
            for name, minutes_ago, labels in raw.get("others", [])
        ),
        scene_changed=bool(raw.get("scene_changed", False)),
        people=tuple(PersonInput(name=name) for name in raw.get("people", [])),
        poses=tuple(
            PoseInput.model_validate({"person": person, "flags": flags})
            for person, flags in raw.get("poses", [])
        ),
        untrusted_texts=tuple(
            UntrustedText(source=source, text=text) for source, text in raw.get("texts", [])
        ),
        known_vehicles=tuple(raw.get("known_vehicles", [])),
    )


def load_cases(path: Path = CASES_FILE) -> list[LabelledCase]:
    raw_cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        LabelledCase(case_id=str(raw["id"]), tier=int(raw["tier"]), analysis=_analysis(raw))
        for raw in raw_cases
    ]


def order_agreement(tiers: Sequence[int], scores: Sequence[float | None]) -> float:
    """Of the pairs of cases in different tiers, the share whose scores are in the same order.

    Equal scores count half; a missing score (no valid answer) counts as a disagreement.
    """
    agree = 0.0
    pairs = 0
    for (tier_a, score_a), (tier_b, score_b) in combinations(zip(tiers, scores, strict=True), 2):
        if tier_a == tier_b:
            continue
        pairs += 1
        if score_a is None or score_b is None:
            continue
        if score_a == score_b:
            agree += 0.5
        elif (score_a > score_b) == (tier_a > tier_b):
            agree += 1.0
    return agree / pairs if pairs else 1.0
