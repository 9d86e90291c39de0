"""The embedded detector's Open Images model: SSD MobileNetV2 with its raw outputs decoded here.

The model (Apache-2.0) is the object detector of MediaPipe's Objectron solution, in the npm
package `@mediapipe/objectron`. It knows 23 classes, among them people, cars, generic vehicles,
bicycles, dogs and cats, and scores people low (0.3 to 0.6 for clearly visible ones). It is
used only when chosen (`detector.embedded_model: openimages`).

The network outputs raw SSD box encodings and class logits for 1917 fixed anchors; the anchors,
the box decoding, the score threshold and the non-maximum suppression are done here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

MODEL_FILE: Final = "ssd_mobilenetv2_oidv4_fp16.tflite"
LABELS_FILE: Final = "oidv4_labelmap.txt"
FOLDER: Final = "ssd-mobilenetv2-oidv4"
SHA256: Final = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
NAME: Final = "SSD MobileNetV2 (Open Images)"

# The model's fixed geometry: a 300x300 RGB input; 1917 anchors from six feature maps (strides
# 16 to 512); 24 classes, the first of them the background.
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

# People score lower with this model than cats or dogs (0.3 to 0.6 for clearly visible ones);
# on the benchmark photos nothing scored a false person above 0.3.
DEFAULT_CONFIDENCE: Final = 0.3
# Its clear people score about 0.5: the fast path's threshold unless one is configured.
SURE_CONFIDENCE: Final = 0.5
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
    """The label map, one Open Images name a line, the background first."""
    labels = path.read_text(encoding="utf-8").splitlines()
    if len(labels) != NUM_CLASSES:
        raise ValueError(f"{path} has {len(labels)} labels, the model has {NUM_CLASSES}")
    return labels


@dataclass(frozen=True, slots=True)
class _Raw:
    encodings: npt.NDArray[np.float32]  # (anchors, 4)
    logits: npt.NDArray[np.float32]  # (anchors, classes)


class OpenImagesHead:
    """Decodes the Open Images model's raw outputs into scored boxes."""

    sure_confidence = SURE_CONFIDENCE

    def __init__(self, labels_path: Path, confidence: float | None = None) -> None:
        raw_labels = read_labels(labels_path)
        self.labels = [LABEL_NAMES.get(label, label.lower()) for label in raw_labels]
        self.confidence = DEFAULT_CONFIDENCE if confidence is None else confidence
        self.nms_iou = DEFAULT_NMS_IOU
        # Class columns (after the background) that may win an anchor.
        self._reported = np.asarray(
            [i for i, label in enumerate(raw_labels) if i > 0 and label not in IGNORED_LABELS],
            dtype=np.intp,
        )
        self._anchors = ssd_anchors()
        self._boxes_index = -1
        self._classes_index = -1

    def bind(self, interpreter: Any) -> None:
        """Find the two output tensors by their shapes; ValueError when they are not there."""
        outputs = {tuple(d["shape"]): d["index"] for d in interpreter.get_output_details()}
        boxes = outputs.get((1, NUM_ANCHORS, 4))
        classes = outputs.get((1, NUM_ANCHORS, NUM_CLASSES))
        if boxes is None or classes is None:
            raise ValueError("the outputs are not 1917 anchors' boxes and 24 classes' logits")
        self._boxes_index = boxes
        self._classes_index = classes

    def read(self, interpreter: Any) -> _Raw:
        """Copies of the outputs of the last invocation."""
        return _Raw(
            np.array(interpreter.get_tensor(self._boxes_index)[0], dtype=np.float32),
            np.array(interpreter.get_tensor(self._classes_index)[0], dtype=np.float32),
        )

    def decode(self, raw: _Raw, width: int, height: int) -> list[tuple[int, float, list[float]]]:
        """(class, score, corners in pixels of a `width` x `height` canvas), best first."""
        # Sigmoid per class; the background (class 0) and ignored classes never win.
        reported = raw.logits[:, self._reported]
        best = np.argmax(reported, axis=1)
        best_logit = reported[np.arange(reported.shape[0]), best]
        scores = 1.0 / (1.0 + np.exp(-best_logit.astype(np.float64)))
        keep = scores >= self.confidence
        boxes = decode_boxes(raw.encodings[keep], self._anchors[keep])
        return self._suppress(
            boxes * np.asarray([width, height, width, height], dtype=np.float32),
            scores[keep].astype(np.float32),
            self._reported[best[keep]],
        )

    def _suppress(
        self, pixels: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
        classes: npt.NDArray[np.intp],
    ) -> list[tuple[int, float, list[float]]]:
        """Per-group non-maximum suppression, in pixels."""
        groups: dict[str, list[int]] = {}
        for index, cls in enumerate(classes.tolist()):
            label = self.labels[cls]
            groups.setdefault(_GROUPS.get(label, label), []).append(index)
        kept: list[tuple[int, float, list[float]]] = []
        for members in groups.values():
            boxes = [
                [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
                for x1, y1, x2, y2 in pixels[members].tolist()
            ]
            member_scores = [float(scores[i]) for i in members]
            chosen = cv2.dnn.NMSBoxes(boxes, member_scores, self.confidence, self.nms_iou)
            for pick in np.asarray(chosen, dtype=int).ravel().tolist():
                index = members[pick]
                kept.append((int(classes[index]), member_scores[pick], pixels[index].tolist()))
        kept.sort(key=lambda item: -item[1])
        return kept[:MAX_DETECTIONS]
