"""Re-identification across cameras: faces first, clothing colours as the weaker cue, within
a time-to-live, kept across a restart."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from enrich_testlib import crops_of, whole

from gpu_server.config import EnrichConfig
from gpu_server.enrich.appearance import AppearanceModel
from gpu_server.enrich.pipeline import Enricher
from gpu_server.enrich.reid import (
    COLOUR_MATCH,
    INDEX_FILE,
    AppearanceIndex,
    colour_descriptor,
    colour_similarity,
)
from gpu_server.models.registry import MIB, ModelRegistry

Photos = dict[str, npt.NDArray[np.uint8]]
NOW = 1_767_614_400_000


def _elsewhere(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The same person as another camera sees them: framed a little differently, brighter."""
    return np.asarray(cv2.convertScaleAbs(image[20:-10, 15:-5], alpha=1.1, beta=10), np.uint8)


def test_clothing_colours_tell_the_same_person_from_others(photos: Photos) -> None:
    astronaut = colour_descriptor(photos["astronaut"])
    assert colour_similarity(astronaut, colour_descriptor(_elsewhere(photos["astronaut"]))) >= (
        COLOUR_MATCH
    )
    for other in ("zidane", "bus", "cat"):
        assert colour_similarity(astronaut, colour_descriptor(photos[other])) < COLOUR_MATCH


def test_the_index_links_other_cameras_within_its_time_to_live(
    photos: Photos, tmp_path: Path
) -> None:
    index = AppearanceIndex(tmp_path, ttl_s=600, face_distance=0.6)
    astronaut = colour_descriptor(photos["astronaut"])
    index.add("driveway", [astronaut], [], NOW)
    elsewhere = [colour_descriptor(_elsewhere(photos["astronaut"]))]
    (found,) = index.match("porch", elsewhere, [], NOW + 40_000)
    assert (found.camera_id, found.cue, found.seconds_ago) == ("driveway", "colour", 40.0)
    assert index.match("driveway", elsewhere, [], NOW + 40_000) == []  # its own camera
    assert index.match("porch", [colour_descriptor(photos["zidane"])], [], NOW + 40_000) == []
    assert index.match("porch", elsewhere, [], NOW + 601_000) == []  # past the time-to-live

    # A face says more than colours, and a face that differs is not overruled by them.
    face = np.full(128, 0.1, np.float32)
    index.add("garden", [astronaut], [face], NOW + 10_000)
    by_face = index.match("porch", elsewhere, [face + 0.01], NOW + 40_000)
    assert [(item.camera_id, item.cue) for item in by_face] == [
        ("garden", "face"),
        ("driveway", "colour"),
    ]
    stranger = np.full(128, -0.1, np.float32)
    unlike = index.match("porch", elsewhere, [stranger], NOW + 40_000)
    # The garden still matches by its colour sighting; its face sighting does not.
    assert [(item.camera_id, item.cue) for item in unlike] == [
        ("garden", "colour"),
        ("driveway", "colour"),
    ]


def test_the_index_outlives_a_restart_and_survives_a_damaged_file(
    photos: Photos, tmp_path: Path
) -> None:
    index = AppearanceIndex(tmp_path, ttl_s=600, face_distance=0.6)
    index.add("driveway", [colour_descriptor(photos["astronaut"])], [], NOW)
    index.flush(NOW)
    again = AppearanceIndex(tmp_path, ttl_s=600, face_distance=0.6)
    elsewhere = [colour_descriptor(_elsewhere(photos["astronaut"]))]
    assert [item.camera_id for item in again.match("porch", elsewhere, [], NOW + 5_000)] == [
        "driveway"
    ]
    (tmp_path / INDEX_FILE).write_text("{not json", encoding="utf-8")
    assert AppearanceIndex(tmp_path, ttl_s=600, face_distance=0.6).match(
        "porch", elsewhere, [], NOW
    ) == []


async def test_the_enricher_reidentifies_a_face_seen_on_another_camera(
    photos: Photos, tmp_path: Path
) -> None:
    """Zidane on the driveway, then on the porch 40 s later: linked by his face."""
    enricher = Enricher(EnrichConfig(), tmp_path, ModelRegistry(4096 * MIB))
    zidane = photos["zidane"]
    first = await enricher.enrich(
        crops_of(zidane, whole("person", zidane)), camera_id="driveway", now_ms=NOW
    )
    assert first.reidentified == ()
    mirrored = np.ascontiguousarray(zidane[:, ::-1])
    later = await enricher.enrich(
        crops_of(mirrored, whole("person", mirrored)), camera_id="porch", now_ms=NOW + 40_000
    )
    (seen,) = later.reidentified
    assert (seen.camera_id, seen.cue, seen.seconds_ago) == ("driveway", "face", 40.0)
    # Turned off, nothing is kept or linked.
    off = Enricher(EnrichConfig(reid=False), tmp_path / "off", ModelRegistry(4096 * MIB))
    assert off.reid is None


def _tiny_appearance_model(folder: Path) -> None:
    """A CLIP-class vision model with random weights, saved as a user would put one in the
    models folder (real transformers code, no download)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=64, patch_size=16, projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder)


async def test_an_appearance_model_in_the_models_folder_links_people(
    photos: Photos, tmp_path: Path
) -> None:
    """With a CLIP-class model in the models folder, the same crop on another camera is linked
    by its appearance embedding (cosine 1 for the same pixels), loaded through the zoo."""
    models = tmp_path / "models"
    _tiny_appearance_model(models / "appearance")
    registry = ModelRegistry(4096 * MIB)
    enricher = Enricher(EnrichConfig(), tmp_path / "data", registry, models)
    assert "appearance-clip" in registry.status().registered
    astronaut = photos["astronaut"]
    crops = crops_of(astronaut, whole("person", astronaut))
    await enricher.enrich(crops, camera_id="driveway", now_ms=NOW)
    assert registry.is_loaded("appearance-clip")
    later = await enricher.enrich(crops, camera_id="porch", now_ms=NOW + 30_000)
    found = {(item.camera_id, item.cue) for item in later.reidentified}
    # The astronaut's face may be found too; either way the appearance cue links the crop.
    assert found & {("driveway", "appearance"), ("driveway", "face")}
    appearance = AppearanceIndex(None, ttl_s=600, face_distance=0.6)
    model = AppearanceModel(models / "appearance")
    (one,), (two,) = model.embed([astronaut]), model.embed([astronaut.copy()])
    appearance.add("driveway", [], [], NOW, [one])
    (match,) = appearance.match("porch", [], [], NOW + 1_000, [two])
    assert (match.cue, round(match.similarity, 3)) == ("appearance", 1.0)
    # Without a model folder, nothing is registered and colours are used.
    plain = ModelRegistry(4096 * MIB)
    Enricher(EnrichConfig(), tmp_path / "plain", plain, tmp_path / "empty")
    assert "appearance-clip" not in plain.status().registered
