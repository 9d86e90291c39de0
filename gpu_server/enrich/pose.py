"""Body landmarks in person crops: MediaPipe's BlazePose (pose detector + full landmark model).

Both models (Apache-2.0) ship inside the `mediapipe` wheel; `scripts/fetch_pose_models` (run by
`scripts/setup_sidecar_env`) takes them out once, checks their SHA-256s and keeps them in a
cache folder. They run with LiteRT (`ai-edge-litert`) on the CPU; nothing is downloaded at run
time.

Two stages, as in MediaPipe's pose graph: the detector finds the person's hip centre and a point
that gives the body's size and rotation; a square around them, turned so the body stands up, is
warped to the landmark model's input, and its 33 body landmarks are mapped back to the image.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from gpu_server.core.images import BgrImage
from gpu_server.enrich.faces import importable
from gpu_server.ingest.embedded_ssd import setup_cache, sha256_of, usable_threads
from gpu_server.models.registry import MIB

POSE_MODEL_KEY: Final = "pose-blazepose-full"
POSE_TASK: Final = "pose"
# Resident size of both interpreters once loaded (measured by bench/enrichment.py on the CPU,
# rounded up).
POSE_MODEL_MEMORY: Final = 96 * MIB
MODEL_FOLDER: Final = "blazepose-full"
MODEL_DIR_ENV: Final = "HSAI_POSE_MODEL_DIR"
DETECTOR_FILE: Final = "pose_detection.tflite"
DETECTOR_SHA256: Final = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
LANDMARK_FILE: Final = "pose_landmark_full.tflite"
LANDMARK_SHA256: Final = "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"
SETUP_HINT: Final = "run scripts/setup_sidecar_env (it fetches the pose models)"

# The detector: a 224x224 RGB input in [-1, 1]; SSD anchors from five layers (strides 8, 16, 32,
# 32, 32; layers of one stride share a grid), two 1:1 anchors per cell and layer, of fixed size.
DETECTOR_SIZE: Final = 224
NUM_ANCHORS: Final = 2254
ANCHOR_STRIDES: Final = (8, 16, 32, 32, 32)
# Each anchor regresses a box (x, y, w, h) and four keypoints (x, y), in input pixels.
NUM_REGRESSORS: Final = 12
HIP_KEYPOINT: Final = 0  # the hip centre
SIZE_KEYPOINT: Final = 1  # a point whose distance from the hip centre sizes the body
# Scores are logits, clipped before the sigmoid as in MediaPipe's graph.
SCORE_CLIP: Final = 100.0
MIN_DETECTION_SCORE: Final = 0.5
# The region: a square of side 2 * |keypoint 1 - keypoint 0|, enlarged by this.
ROI_SCALE: Final = 1.25

# The landmark model: a 256x256 RGB input in [0, 1]; 39 landmarks (33 of the body, then
# auxiliary ones) of x, y, z, visibility and presence, x and y in input pixels, the last two
# logits; and one pose presence score, already a probability.
LANDMARK_SIZE: Final = 256
NUM_LANDMARKS: Final = 39
BODY_LANDMARKS: Final = 33
LANDMARK_VALUES: Final = 5
MIN_PRESENCE: Final = 0.5


@dataclass(frozen=True, slots=True)
class Pose:
    """The 33 body landmarks of one person, in pixels of the image the model saw."""

    points: npt.NDArray[np.float32]  # (33, 2): x, y
    visibility: npt.NDArray[np.float32]  # (33,), 0..1
    score: float  # the landmark model's pose presence, 0..1


def default_cache_dir() -> Path:
    """Where the set-up keeps the models."""
    return setup_cache(MODEL_FOLDER)


def find_models(models_dir: Path | None) -> tuple[Path | None, str]:
    """The folder holding both models, or None and why there is none: `$HSAI_POSE_MODEL_DIR`
    (where scripts/fetch_pose_models put them) when set, else the models folder (or its
    `blazepose-full` folder), else the cache."""
    if explicit := os.environ.get(MODEL_DIR_ENV):
        candidates = [Path(explicit).expanduser()]
    else:
        candidates = [] if models_dir is None else [models_dir, models_dir / MODEL_FOLDER]
        candidates.append(default_cache_dir())
    for folder in candidates:
        if (folder / DETECTOR_FILE).is_file() and (folder / LANDMARK_FILE).is_file():
            return folder, ""
    where = ", ".join(str(folder) for folder in candidates)
    return None, f"pose models not found (looked in {where}); {SETUP_HINT}"


def pose_unavailable(models_dir: Path | None) -> str | None:
    """Why poses cannot be found here (LiteRT or the models missing), or None."""
    if not importable("ai_edge_litert.interpreter"):
        return "not installed: ai-edge-litert (requirements/sidecar.txt)"
    folder, reason = find_models(models_dir)
    return reason if folder is None else None


def pose_anchors() -> npt.NDArray[np.float32]:
    """Anchor centres (x, y), normalized, in the order of the detector's outputs.

    Consecutive layers with the same stride share one grid: each cell gets two anchors per such
    layer (aspect ratio 1 and the interpolated scale, both of fixed size), so 28x28x2 + 14x14x2 +
    7x7x6 = 2254.
    """
    rows: list[tuple[float, float]] = []
    layer = 0
    while layer < len(ANCHOR_STRIDES):
        stride = ANCHOR_STRIDES[layer]
        same = 1
        while layer + same < len(ANCHOR_STRIDES) and ANCHOR_STRIDES[layer + same] == stride:
            same += 1
        cells = math.ceil(DETECTOR_SIZE / stride)
        for y in range(cells):
            for x in range(cells):
                rows.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * (2 * same))
        layer += same
    anchors = np.asarray(rows, dtype=np.float32)
    if anchors.shape != (NUM_ANCHORS, 2):
        raise AssertionError(f"built {anchors.shape[0]} anchors, the detector has {NUM_ANCHORS}")
    return anchors


def roi_transform(
    hip: npt.NDArray[np.float64], size_point: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64] | None:
    """The 2x3 affine map from image pixels to the landmark model's input: a square centred on
    the hip, of side 2 * ROI_SCALE * |size_point - hip|, turned so that hip -> size_point points
    up. None for a degenerate region."""
    direction = size_point - hip
    length = float(np.hypot(direction[0], direction[1]))
    if length < 1.0:
        return None
    up = direction / length
    right = np.array([-up[1], up[0]])  # up turned a quarter clockwise (y runs down)
    half = length * ROI_SCALE
    top_left = hip + half * (up - right)
    top_right = hip + half * (up + right)
    bottom_left = hip - half * (up + right)
    source = np.asarray([top_left, top_right, bottom_left], dtype=np.float32)
    target = np.asarray(
        [[0, 0], [LANDMARK_SIZE, 0], [0, LANDMARK_SIZE]], dtype=np.float32
    )
    return np.asarray(cv2.getAffineTransform(source, target), dtype=np.float64)


def _sigmoid(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    clipped = np.clip(values.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    return np.asarray(1.0 / (1.0 + np.exp(-clipped)), dtype=np.float32)


class PoseModel:
    """The pose of the most prominent person in a BGR image. Blocking; safe from several
    threads (one call at a time)."""

    def __init__(self, folder: Path, *, threads: int | None = None, verify: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - optional

        self.threads = threads or usable_threads()
        detector_path = folder / DETECTOR_FILE
        landmark_path = folder / LANDMARK_FILE
        if verify:
            pinned = ((detector_path, DETECTOR_SHA256), (landmark_path, LANDMARK_SHA256))
            for path, expected in pinned:
                if sha256_of(path) != expected:
                    raise ValueError(f"{path} is damaged or not the expected model; {SETUP_HINT}")
        self._detector: Any = Interpreter(model_path=str(detector_path), num_threads=self.threads)
        self._landmarks: Any = Interpreter(model_path=str(landmark_path), num_threads=self.threads)
        self._detector.allocate_tensors()
        self._landmarks.allocate_tensors()
        self._detector_io = self._outputs(
            self._detector,
            (1, DETECTOR_SIZE, DETECTOR_SIZE, 3),
            {"boxes": (1, NUM_ANCHORS, NUM_REGRESSORS), "scores": (1, NUM_ANCHORS, 1)},
        )
        self._landmark_io = self._outputs(
            self._landmarks,
            (1, LANDMARK_SIZE, LANDMARK_SIZE, 3),
            {"landmarks": (1, NUM_LANDMARKS * LANDMARK_VALUES), "presence": (1, 1)},
        )
        self._anchors = pose_anchors()
        self._lock = threading.Lock()

    @staticmethod
    def _outputs(
        interpreter: Any, input_shape: tuple[int, ...], wanted: dict[str, tuple[int, ...]]
    ) -> dict[str, int]:
        """Tensor indices by role, found by shape: the models name them Identity, Identity_1..."""
        [image_in] = interpreter.get_input_details()
        if tuple(image_in["shape"]) != input_shape:
            raise ValueError(f"the pose model's input is {image_in['shape']}, not {input_shape}")
        by_shape = {tuple(d["shape"]): d["index"] for d in interpreter.get_output_details()}
        found = {"input": int(image_in["index"])}
        for role, shape in wanted.items():
            if shape not in by_shape:
                raise ValueError(f"the pose model has no output of shape {shape} ({role})")
            found[role] = int(by_shape[shape])
        return found

    def pose(self, image: BgrImage) -> Pose | None:
        """The landmarks of the most confident person the detector finds, or None."""
        rgb = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        with self._lock:
            found = self._detect(rgb)
            if found is None:
                return None
            transform = roi_transform(*found)
            if transform is None:
                return None
            return self._landmark(rgb, transform)

    def _detect(
        self, rgb: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
        """The hip centre and the size point of the best detection, in image pixels."""
        height, width = rgb.shape[:2]
        side = max(height, width)
        # Padded to a square around the image (not stretched), as the detector was trained.
        left, top = (side - width) // 2, (side - height) // 2
        square = cv2.copyMakeBorder(
            rgb, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=0
        )
        resized = cv2.resize(square, (DETECTOR_SIZE, DETECTOR_SIZE), interpolation=cv2.INTER_AREA)
        tensor = resized.astype(np.float32)[np.newaxis] * (1.0 / 127.5) - 1.0
        io = self._detector_io
        self._detector.set_tensor(io["input"], tensor)
        self._detector.invoke()
        scores = _sigmoid(np.array(self._detector.get_tensor(io["scores"])[0, :, 0]))
        best = int(np.argmax(scores))
        if scores[best] < MIN_DETECTION_SCORE:
            return None
        raw = np.array(self._detector.get_tensor(io["boxes"])[0, best], dtype=np.float64)
        anchor = self._anchors[best].astype(np.float64)
        scale = side / DETECTOR_SIZE
        offset = np.array([left, top], dtype=np.float64)

        def keypoint(index: int) -> npt.NDArray[np.float64]:
            start = 4 + 2 * index
            normalized = raw[start : start + 2] / DETECTOR_SIZE + anchor
            return np.asarray(normalized * DETECTOR_SIZE * scale - offset, dtype=np.float64)

        return keypoint(HIP_KEYPOINT), keypoint(SIZE_KEYPOINT)

    def _landmark(
        self, rgb: npt.NDArray[np.uint8], transform: npt.NDArray[np.float64]
    ) -> Pose | None:
        warped = cv2.warpAffine(
            rgb,
            transform,
            (LANDMARK_SIZE, LANDMARK_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        tensor = warped.astype(np.float32)[np.newaxis] * (1.0 / 255.0)
        io = self._landmark_io
        self._landmarks.set_tensor(io["input"], tensor)
        self._landmarks.invoke()
        presence = float(np.array(self._landmarks.get_tensor(io["presence"])).reshape(-1)[0])
        if presence < MIN_PRESENCE:
            return None
        values = np.array(self._landmarks.get_tensor(io["landmarks"])[0], dtype=np.float64)
        values = values.reshape(NUM_LANDMARKS, LANDMARK_VALUES)[:BODY_LANDMARKS]
        back = cv2.invertAffineTransform(transform)
        points = values[:, :2] @ back[:, :2].T + back[:, 2]
        return Pose(
            points=points.astype(np.float32),
            visibility=_sigmoid(values[:, 3].astype(np.float32)),
            score=presence,
        )
