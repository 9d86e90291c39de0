"""The enrichment step: which models run for which boxes, inside the zoo's memory budget, and
what happens when a package is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from enrich_testlib import crops_of, plate_scene, whole

from gpu_server.config import EnrichConfig
from gpu_server.core.detection import Detection
from gpu_server.enrich.faces import FACE_MODEL_KEY, FACE_MODEL_MEMORY
from gpu_server.enrich.pipeline import MAX_CROP_SIDE, Enricher, cut_crops
from gpu_server.enrich.plates import OCR_MODEL_KEY, OCR_MODEL_MEMORY
from gpu_server.enrich.pose import POSE_MODEL_KEY, pose_unavailable
from gpu_server.errors import FeatureUnavailableError, InvalidRequestError, NotFoundError
from gpu_server.models.registry import MIB, ModelRegistry

Photos = dict[str, npt.NDArray[np.uint8]]
BIG = 4096 * MIB
# Person crops also go to the pose model where the set-up could fetch it (its own tests fail in
# CI when it could not); these tests are about faces and plates and hold either way.
POSE: tuple[str, ...] = (POSE_MODEL_KEY,) if pose_unavailable(None) is None else ()


def test_crops_follow_the_boxes_on_a_scaled_down_decode(photos: Photos) -> None:
    zidane = photos["zidane"]  # 1280 x 720
    half = np.ascontiguousarray(zidane[::2, ::2])  # as a scaled decode hands it over
    person = Detection("person", 0, 0.8, 700.0, 40.0, 1200.0, 720.0)
    car = Detection("car", 2, 0.5, 0.0, 400.0, 400.0, 700.0)
    dog = Detection("dog", 16, 0.9, 0.0, 0.0, 100.0, 100.0)
    crops = cut_crops("s", [car, dog, person], half, (1280, 720), max_person=6, max_vehicle=4)
    assert [crop.group.value for crop in crops] == ["person", "vehicle"]
    person_crop, car_crop = crops
    # Person: the box with a margin, clipped to the frame; in frame pixels again via to_frame.
    assert person_crop.origin == pytest.approx((650.0, 0.0), abs=2)
    assert person_crop.to_frame((0, 0, person_crop.pixels.shape[1], person_crop.pixels.shape[0]))[
        2:
    ] == pytest.approx((1250.0, 720.0), abs=3)
    # Vehicle: only the lower part, where plates are.
    assert car_crop.origin[1] == pytest.approx(700 - 300 * 0.6, abs=2)
    assert max(person_crop.pixels.shape[:2]) <= MAX_CROP_SIDE
    assert not np.shares_memory(car_crop.pixels, half)


async def test_each_model_runs_only_for_its_trigger_class(photos: Photos, tmp_path: Path) -> None:
    registry = ModelRegistry(BIG)
    enricher = Enricher(EnrichConfig(), tmp_path, registry)
    assert set(registry.status().registered) == {FACE_MODEL_KEY, OCR_MODEL_KEY, *POSE}

    nothing = await enricher.enrich([])
    assert (nothing.people, nothing.plates, registry.status().loads) == ((), (), 0)

    zidane = photos["zidane"]
    result = await enricher.enrich(crops_of(zidane, whole("person", zidane)))
    assert len(result.people) == 1
    assert result.people[0].unknown
    assert registry.is_loaded(FACE_MODEL_KEY)
    assert not registry.is_loaded(OCR_MODEL_KEY)
    assert set(result.timings_ms) == {"face_embedding"} | ({"pose"} if POSE else set())
    x1, y1, x2, y2 = result.people[0].box
    assert 820 < x1 < x2 < 1150  # the face, in the frame's pixels
    assert 50 < y1 < y2 < 360


async def test_enrol_from_an_event_face_then_recognise_and_remove(
    photos: Photos, tmp_path: Path
) -> None:
    enricher = Enricher(EnrichConfig(), tmp_path, ModelRegistry(BIG))
    zidane = photos["zidane"]
    first = await enricher.enrich(crops_of(zidane, whole("person", zidane)))
    face_id = first.people[0].face_id
    person = await enricher.enroll("Zidane", face_id=face_id)
    assert (person.name, person.embeddings) == ("Zidane", 1)

    # Another crop of the same photo, as another frame of the batch would show him; and an
    # astronaut in the same batch stays unknown.
    tighter = np.ascontiguousarray(zidane[60:600, 700:1250])
    astronaut = photos["astronaut"]
    again = await enricher.enrich(
        crops_of(tighter, whole("person", tighter, 0.9), sha="b")
        + crops_of(astronaut, whole("person", astronaut), sha="c")
    )
    by_frame = {(p.frame_sha256, p.name) for p in again.people}
    assert by_frame == {("b", "Zidane"), ("c", None)}

    assert await enricher.remove("Zidane") == 1
    assert enricher.people() == []
    after = await enricher.enrich(crops_of(tighter, whole("person", tighter)))
    assert after.people[0].unknown


async def test_the_same_face_in_several_frames_is_one_sighting(
    photos: Photos, tmp_path: Path
) -> None:
    enricher = Enricher(EnrichConfig(), tmp_path, ModelRegistry(BIG))
    zidane = photos["zidane"]
    crops = [crop for sha in "abc" for crop in crops_of(zidane, whole("person", zidane), sha=sha)]
    result = await enricher.enrich(crops)
    assert len(result.people) == 1


async def test_enrol_from_an_image_and_refusals(photos: Photos, tmp_path: Path) -> None:
    import cv2

    enricher = Enricher(EnrichConfig(), tmp_path, ModelRegistry(BIG))
    ok, png = cv2.imencode(".png", photos["astronaut"])
    assert ok
    person = await enricher.enroll("Eileen", image=bytes(png))
    assert person.embeddings == 1
    ok, coffee = cv2.imencode(".png", photos["coffee"])
    with pytest.raises(InvalidRequestError, match="no face"):
        await enricher.enroll("Eileen", image=bytes(coffee))
    with pytest.raises(InvalidRequestError, match="not a JPEG or PNG"):
        await enricher.enroll("Eileen", image=b"not an image")
    with pytest.raises(NotFoundError):
        await enricher.enroll("Eileen", face_id="0123456789abcdef")
    with pytest.raises(InvalidRequestError):
        await enricher.enroll("Eileen")


async def test_registry_budget_holds_one_model_at_a_time(photos: Photos, tmp_path: Path) -> None:
    budget = max(FACE_MODEL_MEMORY, OCR_MODEL_MEMORY)
    registry = ModelRegistry(budget)
    enricher = Enricher(EnrichConfig(), tmp_path, registry)
    zidane, scene = photos["zidane"], plate_scene("KA 55 XY")
    crops = crops_of(zidane, whole("person", zidane)) + crops_of(scene, whole("car", scene))
    result = await enricher.enrich(crops)
    assert len(result.people) == 1
    assert [plate.normalized for plate in result.plates] == ["KA55XY"]
    status = registry.status()
    assert status.used_bytes <= budget
    # Faces (and pose) first, then OCR, which needs the room of both.
    assert (status.loads, status.unloads) == (2 + len(POSE), 1 + len(POSE))
    assert [model.key for model in status.loaded] == [OCR_MODEL_KEY]
    # Faces again: OCR makes room for it.
    await enricher.enrich(crops_of(zidane, whole("person", zidane)))
    assert [model.key for model in registry.status().loaded] == [FACE_MODEL_KEY, *POSE]
    assert registry.status().used_bytes <= budget


async def test_a_budget_too_small_for_a_model_turns_it_off_with_a_reason(tmp_path: Path) -> None:
    registry = ModelRegistry(min(FACE_MODEL_MEMORY, OCR_MODEL_MEMORY))
    status = Enricher(EnrichConfig(), tmp_path, registry).status()
    faces_fit = FACE_MODEL_MEMORY <= OCR_MODEL_MEMORY
    assert (status.faces_available, status.plates_available) == (faces_fit, not faces_fit)
    reason = status.plates_reason if faces_fit else status.faces_reason
    assert "more than the whole budget" in reason


async def test_a_missing_package_is_reported_and_the_rest_still_works(
    photos: Photos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import rapidocr_onnxruntime` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    registry = ModelRegistry(BIG)
    enricher = Enricher(EnrichConfig(), tmp_path, registry)
    status = enricher.status()
    assert not status.plates_available
    assert "rapidocr_onnxruntime" in status.plates_reason
    assert "scripts/setup_sidecar_env --with plates" in status.plates_reason
    assert status.faces_available
    assert registry.status().registered == (FACE_MODEL_KEY, *POSE)

    zidane, scene = photos["zidane"], plate_scene("KA 55 XY")
    result = await enricher.enrich(
        crops_of(zidane, whole("person", zidane)) + crops_of(scene, whole("car", scene))
    )
    assert len(result.people) == 1
    assert result.plates == ()
    assert result.notes == (f"plates: {status.plates_reason}",)


async def test_missing_face_packages_refuse_enrolment_clearly(
    photos: Photos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)
    enricher = Enricher(EnrichConfig(), tmp_path, ModelRegistry(BIG))
    assert "dlib-bin" in enricher.status().faces_reason
    with pytest.raises(FeatureUnavailableError, match="dlib-bin"):
        await enricher.enroll("Anna", image=b"\x89PNG")
    zidane = photos["zidane"]
    result = await enricher.enrich(crops_of(zidane, whole("person", zidane)))
    assert result.people == ()
    assert result.notes[0].startswith("faces: the faces extra is not installed (missing dlib-bin)")


async def test_turned_off_cuts_no_crops(photos: Photos, tmp_path: Path) -> None:
    enricher = Enricher(EnrichConfig(enabled=False), tmp_path, ModelRegistry(BIG))
    assert not enricher.wants_crops
    assert enricher.status().faces_reason == "enrichment is turned off"
