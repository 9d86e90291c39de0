"""BlazePose on real photos: landmarks of a standing person inside the person box, `lying` once
the same crop is turned on its side, and the flags through the pipeline, the prompt and the
rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gpu_server.config import EnrichConfig
from gpu_server.core.detection import Detection
from gpu_server.core.enrichment import EnrichmentResult, PersonPose
from gpu_server.enrich.pipeline import Crop, Enricher, cut_crops
from gpu_server.enrich.pose import (
    NUM_ANCHORS,
    PoseModel,
    find_models,
    pose_anchors,
    pose_unavailable,
)
from gpu_server.enrich.posture import VISIBLE, PoseFlag, posture_flags
from gpu_server.events.builder import with_enrichment
from gpu_server.events.model import EventKind, SecurityEvent
from gpu_server.grpc_api.convert import event_from_pb, event_to_pb
from gpu_server.llm.inputs import AnalysisInput, DetectionInput, PoseInput, ZoneInput
from gpu_server.llm.templates import PromptLibrary, build_prompt
from gpu_server.models.registry import ModelRegistry
from gpu_server.risk.rules import POSE_BONUS, assess_with_rules
from gpu_server.vocabulary import RiskZoneKind

Photos = dict[str, npt.NDArray[np.uint8]]

# The man on the left of ultralytics' bus.jpg, standing, as the embedded detector boxes him.
BUS_PERSON = (25.0, 333.0, 231.0, 934.0)
# Ultralytics' zidane.jpg: the man on the right, standing, the upper body in view.
ZIDANE_PERSON = (745.0, 40.0, 1150.0, 720.0)


def person_crop(image: npt.NDArray[np.uint8], box: tuple[float, float, float, float]) -> Crop:
    detection = Detection("person", 0, 0.9, *box)
    (crop,) = cut_crops(
        "f", [detection], image, (image.shape[1], image.shape[0]), max_person=1, max_vehicle=0
    )
    return crop


def test_anchors_match_the_detector() -> None:
    anchors = pose_anchors()
    assert anchors.shape == (NUM_ANCHORS, 2)
    assert anchors.min() > 0.0
    assert anchors.max() < 1.0


def test_standing_person_has_landmarks_in_the_box_and_no_flag(
    pose_model: PoseModel, photos: Photos
) -> None:
    crop = person_crop(photos["bus"], BUS_PERSON)
    pose = pose_model.pose(crop.pixels)
    assert pose is not None
    assert pose.score > 0.9
    seen = pose.visibility >= VISIBLE
    assert seen.sum() >= 25  # the whole body is in view
    height, width = crop.pixels.shape[:2]
    x, y = pose.points[seen, 0], pose.points[seen, 1]
    assert x.min() >= -0.02 * width
    assert x.max() <= 1.02 * width
    assert y.min() >= -0.02 * height
    assert y.max() <= 1.02 * height
    # Head over shoulders over hips over knees over ankles.
    nose, shoulders, hips = pose.points[0, 1], pose.points[11:13, 1], pose.points[23:25, 1]
    knees, ankles = pose.points[25:27, 1], pose.points[27:29, 1]
    assert nose < shoulders.min() < shoulders.max() < hips.min()
    assert hips.max() < knees.min()
    assert knees.max() < ankles.min()
    assert posture_flags(pose.points, pose.visibility) == ()


@pytest.mark.parametrize(
    "turn", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE], ids=["cw", "ccw"]
)
@pytest.mark.parametrize(("photo", "box"), [("bus", BUS_PERSON), ("zidane", ZIDANE_PERSON)])
def test_the_same_person_turned_on_the_side_is_lying(
    pose_model: PoseModel,
    photos: Photos,
    photo: str,
    box: tuple[float, float, float, float],
    turn: int,
) -> None:
    crop = person_crop(photos[photo], box)
    upright = pose_model.pose(crop.pixels)
    assert upright is not None
    assert PoseFlag.LYING not in posture_flags(upright.points, upright.visibility)
    turned = np.ascontiguousarray(cv2.rotate(crop.pixels, turn))
    pose = pose_model.pose(turned)
    assert pose is not None
    assert posture_flags(pose.points, pose.visibility) == (PoseFlag.LYING,)


def test_no_pose_without_a_person(pose_model: PoseModel, photos: Photos) -> None:
    assert pose_model.pose(photos["coffee"]) is None


def test_missing_models_are_a_reason_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HSAI_POSE_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert find_models(tmp_path)[0] is None
    reason = pose_unavailable(tmp_path)
    assert reason is not None
    assert "scripts/setup_sidecar_env" in reason


def test_the_folder_the_set_up_was_told_wins(
    pose_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HSAI_POSE_MODEL_DIR", str(pose_models))
    assert find_models(tmp_path) == (pose_models, "")
    monkeypatch.setenv("HSAI_POSE_MODEL_DIR", str(tmp_path))
    assert find_models(None)[0] is None


def analysis(*, night: bool) -> AnalysisInput:
    when = datetime(2026, 1, 5, 3 if night else 14, 0, tzinfo=UTC)
    return AnalysisInput(
        camera_id="door",
        camera_name="Front door",
        start=when,
        end=when,
        local_time=when,
        detections=(DetectionInput(label="person", confidence=0.5, zone="Door"),),
        zones=(ZoneInput(name="Door", kind=RiskZoneKind.ENTRY),),
    )


async def enriched(
    tmp_path: Path, pose_models: Path, crops: tuple[Crop, ...]
) -> EnrichmentResult:
    enricher = Enricher(
        EnrichConfig(reid=False), tmp_path, ModelRegistry(1024 * 1024 * 1024), pose_models
    )
    assert enricher.status().pose_available, enricher.status().pose_reason
    return await enricher.enrich(crops)


async def test_poses_reach_the_event_result_and_the_prompt(
    tmp_path: Path, pose_models: Path, photos: Photos
) -> None:
    standing = person_crop(photos["bus"], BUS_PERSON)
    pixels = np.ascontiguousarray(cv2.rotate(photos["bus"], cv2.ROTATE_90_CLOCKWISE))
    height = photos["bus"].shape[0]
    x1, y1, x2, y2 = BUS_PERSON
    # The same person box in the turned frame (x' = height - y, y' = x).
    lying_box = (height - y2, x1, height - y1, x2)
    lying = cut_crops(
        "g",
        [Detection("person", 0, 0.8, *lying_box)],
        pixels,
        (pixels.shape[1], pixels.shape[0]),
        max_person=1,
        max_vehicle=0,
    )
    result = await enriched(tmp_path, pose_models, (standing, *lying))
    assert [(pose.person, pose.frame_sha256, pose.flags) for pose in result.poses] == [
        (1, "f", ()),
        (2, "g", ("lying",)),
    ]
    assert result.timings_ms["pose"] > 0
    # The box of the landmarks lies on the person, in pixels of the frame.
    bx1, by1, bx2, by2 = result.poses[0].box
    assert x1 - 20 < bx1 < bx2 < x2 + 20
    assert y1 - 20 < by1 < by2 < y2 + 20

    built = build_prompt(
        PromptLibrary.builtin().select("v2"),
        with_enrichment(analysis(night=True), result),
        budget=4000,
        count_prompt=lambda system, user: (len(system) + len(user)) // 3,
        count_line=lambda line: len(line) // 3,
    )
    assert "person 2 is lying" in built.user
    assert "person 1 is" not in built.user


@pytest.mark.parametrize("night", [True, False])
def test_climbing_at_an_entry_at_night_adds_a_little(night: bool) -> None:
    plain = analysis(night=night)
    climbing = plain.model_copy(update={"poses": (PoseInput(person=1, flags=("climbing",)),)})
    base = assess_with_rules(plain, "test")
    posed = assess_with_rules(climbing, "test")
    if night:
        assert posed.risk_score - base.risk_score == POSE_BONUS
        assert "climbing or crouching" in posed.reasoning
    else:
        assert posed.risk_score == base.risk_score


def test_poses_survive_the_contract() -> None:
    pose = PersonPose(2, "f", (1.0, 2.0, 30.0, 40.0), ("crouching", "climbing"), 0.875)
    event = SecurityEvent(
        event_id="e",
        camera_id="door",
        kind=EventKind.SECURITY,
        started_at_ms=1,
        ended_at_ms=2,
        frame_sha256s=("f",),
        poses=(pose,),
    )
    message = event_to_pb(event)
    assert list(message.poses[0].flags) == ["crouching", "climbing"]
    assert event_from_pb(message).poses == (pose,)
