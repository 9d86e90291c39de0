"""Faces and known people, with dlib's real face models on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gpu_server.enrich.faces import EMBEDDING_SIZE, FaceModel
from gpu_server.enrich.gallery import GALLERY_FILE, PeopleGallery
from gpu_server.enrich.pipeline import _scaled
from gpu_server.errors import InvalidRequestError

Photos = dict[str, npt.NDArray[np.uint8]]


def first_face(model: FaceModel, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    faces = model.faces(image)
    assert faces, "no face found"
    assert faces[0].embedding.shape == (EMBEDDING_SIZE,)
    return faces[0].embedding


def test_face_in_zidane_is_found_with_its_box(face_model: FaceModel, photos: Photos) -> None:
    faces = face_model.faces(photos["zidane"])
    assert faces
    x1, y1, x2, y2 = faces[0].box
    # The face of the man on the right, in the upper half of the photo.
    assert 820 < x1 < x2 < 1150
    assert 50 < y1 < y2 < 360


def test_enrolled_face_is_recognised_in_another_crop_and_a_stranger_is_not(
    face_model: FaceModel, photos: Photos, tmp_path: Path
) -> None:
    zidane = photos["zidane"]
    gallery = PeopleGallery(tmp_path, match_distance=0.6)
    # Enrolled from the whole photo, scaled down; recognised in a tighter crop, mirrored.
    whole, _ = _scaled(zidane, 640)
    gallery.enroll("Zidane", first_face(face_model, whole))
    other_crop = np.ascontiguousarray(zidane[0:720, 560:1280][:, ::-1])
    seen = gallery.match(first_face(face_model, other_crop))
    assert seen.name == "Zidane"
    assert 0.0 <= seen.distance < 0.6

    stranger = gallery.match(first_face(face_model, photos["astronaut"]))
    assert stranger.name is None
    assert stranger.distance > 0.6
    for face in face_model.faces(photos["bus"]):
        assert gallery.match(face.embedding).name is None


def test_an_empty_gallery_knows_nobody(
    face_model: FaceModel, photos: Photos, tmp_path: Path
) -> None:
    match = PeopleGallery(tmp_path, 0.6).match(first_face(face_model, photos["astronaut"]))
    assert match.name is None
    assert match.distance == -1.0


def test_removing_a_person_deletes_their_embeddings_on_disk(
    face_model: FaceModel, photos: Photos, tmp_path: Path
) -> None:
    gallery = PeopleGallery(tmp_path, 0.6)
    zidane_face = first_face(face_model, photos["zidane"])
    gallery.enroll("Anna", first_face(face_model, photos["astronaut"]))
    gallery.enroll(
        "Anna", first_face(face_model, np.ascontiguousarray(photos["astronaut"][:, ::-1]))
    )
    gallery.enroll("Zidane", zidane_face)
    assert [(p.name, p.embeddings) for p in gallery.people()] == [("Anna", 2), ("Zidane", 1)]

    # A new gallery on the same folder reads what was enrolled.
    reopened = PeopleGallery(tmp_path, 0.6)
    assert [p.name for p in reopened.people()] == ["Anna", "Zidane"]

    assert reopened.remove("Anna") == 2
    assert reopened.remove("Anna") == 0
    stored = json.loads((tmp_path / GALLERY_FILE).read_text())
    assert list(stored["people"]) == ["Zidane"]
    assert "Anna" not in (tmp_path / GALLERY_FILE).read_text()
    after = PeopleGallery(tmp_path, 0.6)
    assert after.match(first_face(face_model, photos["astronaut"])).name is None
    assert after.match(zidane_face).name == "Zidane"


def test_names_are_cleaned_and_checked(tmp_path: Path) -> None:
    gallery = PeopleGallery(tmp_path, 0.6)
    vector = np.zeros(EMBEDDING_SIZE, np.float32)
    assert gallery.enroll('  Anna "the <|im_start|>boss"\n', vector).name == "Anna 'the boss'"
    for bad in ("", "   ", "\x00\x01", "x" * 61):
        with pytest.raises(InvalidRequestError):
            gallery.enroll(bad, vector)


def test_an_unreadable_gallery_is_kept_aside_not_lost(tmp_path: Path) -> None:
    (tmp_path / GALLERY_FILE).write_text("{not json")
    gallery = PeopleGallery(tmp_path, 0.6)
    assert gallery.people() == []
    assert (tmp_path / f"{GALLERY_FILE}.unreadable").read_text() == "{not json"
