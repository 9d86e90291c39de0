"""Object detectors: YOLO through ultralytics when its weights are in the models folder, else
the embedded SSD MobileNetV2 (`embedded_ssd.py`, fetched by the set-up), and OpenCV's HOG people
detector as the last resort that needs no weights, no GPU and no downloads.

Detectors are blocking; the batcher calls them from one worker thread, one batch at a time.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gpu_server import extras
from gpu_server.config import DetectorConfig, ServerConfig
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.errors import DetectorError
from gpu_server.ingest import exported
from gpu_server.ingest.detector import Detector, usable_cores

_LOGGER = logging.getLogger(__name__)

# Weights looked for in the models folder, best first.
PREFERRED_WEIGHTS = ("yolo26n.pt", "yolo11n.pt")
# What ultralytics may fetch when the user allows downloads.
DOWNLOADABLE_WEIGHTS = "yolo11n.pt"
# `detector.weights: hog` picks the HOG detector on purpose (then it is not a fallback), and
# `embedded` the embedded detector.
HOG_CHOICE = "hog"
EMBEDDED_CHOICE = "embedded"
# The extra each `detector.backend` needs (TensorRT also needs NVIDIA's own package).
BACKEND_EXTRAS: dict[str, extras.Extra] = {
    "pytorch": "yolo", "onnx": "onnx", "tensorrt": "onnx", "triton": "triton",
}


def detector_workers(config: DetectorConfig) -> int:
    """How many copies of the detector run batches side by side (see ingest/batching.py): the
    configured number, else two, or one on a single core. Two single-threaded copies beat one
    with two threads on two cores for PyTorch and ONNX Runtime alike (bench/detect_backends.py)."""
    if config.workers:
        return config.workers
    return 2 if usable_cores() >= 2 else 1


def threads_per_worker(config: DetectorConfig) -> int:
    """A detector copy's share of the cores: more threads than cores only fight each other."""
    return max(1, usable_cores() // detector_workers(config))


def _clip_box(
    box: Sequence[float], width: int, height: int
) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )


def resolve_device(device: str) -> str:
    """Map "auto" to the first CUDA device when torch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch  # noqa: PLC0415 - slow import the HOG path never needs

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def configure_ultralytics_env(config: ServerConfig) -> None:
    """Keep ultralytics from reaching the network or pip unless downloads are allowed.

    Ultralytics reads these when it is first imported, so call this before importing it.
    """
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config.data_dir / "ultralytics"))
    if not config.allow_downloads:
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "0"


class UltralyticsDetector(Detector):
    backend = "ultralytics"

    def __init__(
        self, weights: Path | str, *, device: str = "auto", confidence: float, imgsz: int,
        backend: str = "ultralytics", name: str = "",
    ) -> None:
        """`weights` is a .pt file, or a file exported from one (then `backend` names its
        runtime and `name` the model it was exported from)."""
        # Deferred: a heavy import, and it must follow configure_ultralytics_env.
        from ultralytics import YOLO  # type: ignore[attr-defined]  # noqa: PLC0415

        self.device = resolve_device(device)
        self.confidence = confidence
        self.imgsz = imgsz
        self.backend = backend
        # An exported file does not say which task it does; all of ours detect.
        self._model: Any = YOLO(str(weights), task="detect")
        path = Path(str(weights))
        self.path = path
        self.weights = path.name
        self.name = name or path.stem
        # ONNX Runtime threads once its session was reopened with sleeping threads.
        self.onnx_threads: int | None = None
        # False once the model is bound to something a copy would not have (a Triton server).
        self.replicable = True

    @property
    def model(self) -> Any:
        """The ultralytics model (YOLO) behind this detector."""
        return self._model

    def replicate(self) -> UltralyticsDetector | None:
        if not self.replicable:
            return None
        copy = UltralyticsDetector(
            self.path, device=self.device, confidence=self.confidence, imgsz=self.imgsz,
            backend=self.backend, name=self.name,
        )
        copy.warmup()
        if self.onnx_threads is not None:
            exported.stop_spinning(copy.model, self.path, self.onnx_threads)
            copy.onnx_threads = self.onnx_threads
        return copy

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        if not images:
            return []
        # One predict call for the whole batch: that is where a GPU earns its keep.
        results = self._model.predict(
            list(images), conf=self.confidence, imgsz=self.imgsz, verbose=False,
            device=self.device,
        )
        if len(results) != len(images):
            raise DetectorError(f"ultralytics returned {len(results)} results for {len(images)}")
        batch: list[list[Detection]] = []
        for image, result in zip(images, results, strict=True):
            height, width = image.shape[:2]
            names = result.names
            boxes = result.boxes
            xyxy = boxes.xyxy.cpu().numpy().tolist()
            confs = boxes.conf.cpu().numpy().tolist()
            classes = boxes.cls.cpu().numpy().astype(int).tolist()
            detections = []
            for box, conf, cls in zip(xyxy, confs, classes, strict=True):
                x1, y1, x2, y2 = _clip_box(box, width, height)
                detections.append(
                    Detection(str(names.get(cls, cls)), cls, float(conf), x1, y1, x2, y2)
                )
            batch.append(detections)
        return batch


class HogPeopleDetector(Detector):
    """OpenCV's pedestrian detector (HOG features + linear SVM): people only, CPU only."""

    name = "hog-people"
    backend = "opencv-hog"
    device = "cpu"
    weights = ""

    def __init__(self, *, confidence: float = 0.25, max_side: int = 640, nms_iou: float = 0.45):
        self.confidence = confidence
        # HOG cost grows with the pixel count; people in camera frames stay findable at 640 px.
        self.max_side = max_side
        self.nms_iou = nms_iou
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(
            np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32)
        )

    @staticmethod
    def svm_confidence(weight: float) -> float:
        """Map the SVM margin (0 at the decision boundary, ~1-3 for clear people) to 0..1."""
        return 1.0 - math.exp(-max(weight, 0.0))

    def _detect_one(self, image: BgrImage) -> list[Detection]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        # OpenCV crashes (not raises) on images smaller than the detection window: pad them.
        win_w, win_h = self._hog.winSize
        if small.shape[0] < win_h or small.shape[1] < win_w:
            small = cv2.copyMakeBorder(
                small, 0, max(0, win_h - small.shape[0]), 0, max(0, win_w - small.shape[1]),
                cv2.BORDER_CONSTANT, value=(0, 0, 0),
            )
        rects, weights = self._hog.detectMultiScale(
            small, winStride=(8, 8), padding=(8, 8), scale=1.05
        )
        if len(rects) == 0:
            return []
        scores = [self.svm_confidence(float(w)) for w in np.asarray(weights).ravel()]
        boxes = [[int(v) for v in rect] for rect in rects]
        keep = cv2.dnn.NMSBoxes(boxes, scores, self.confidence, self.nms_iou)
        detections = []
        for index in np.asarray(keep, dtype=int).ravel():
            x, y, w, h = boxes[index]
            x1, y1, x2, y2 = _clip_box(
                (x / scale, y / scale, (x + w) / scale, (y + h) / scale), width, height
            )
            detections.append(Detection("person", 0, scores[index], x1, y1, x2, y2))
        return detections

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        return [self._detect_one(image) for image in images]

    def replicate(self) -> HogPeopleDetector:
        return HogPeopleDetector(
            confidence=self.confidence, max_side=self.max_side, nms_iou=self.nms_iou
        )


@dataclass(frozen=True, slots=True)
class DetectorSelection:
    detector: Detector
    # Why the preferred detector is not in use; empty when it is.
    fallback_reason: str = ""

    @property
    def fallback(self) -> bool:
        return bool(self.fallback_reason)


def _find_weights(config: ServerConfig) -> tuple[Path | None, str]:
    """Return the weights to load, or None and why there are none."""
    models_dir = config.models_dir
    wanted = config.detector.weights
    if wanted:
        candidate = Path(wanted).expanduser()
        for path in (candidate, models_dir / candidate):
            if path.is_file():
                return path, ""
        if config.allow_downloads and candidate.name == DOWNLOADABLE_WEIGHTS:
            return models_dir / candidate.name, ""
        return None, f"weights {wanted!r} not found in {models_dir}; downloads disabled"
    for name in PREFERRED_WEIGHTS:
        if (models_dir / name).is_file():
            return models_dir / name, ""
    if config.allow_downloads:
        # Ultralytics fetches known asset names into the given path.
        return models_dir / DOWNLOADABLE_WEIGHTS, ""
    return None, f"no YOLO weights in {models_dir}; downloads disabled"


def _load_yolo(
    weights: Path, device: str, config: ServerConfig, *, backend: str = "ultralytics",
    name: str = "",
) -> UltralyticsDetector:
    """Load and warm up: ultralytics loads on the CPU and touches the device only in predict,
    so a missing or broken device shows up in the warm-up, not in the constructor."""
    det = config.detector
    if device == "cpu" and backend == "ultralytics":
        import torch  # noqa: PLC0415 - loaded by ultralytics already

        # One thread pool for the whole process, shared by the detector's copies.
        torch.set_num_threads(threads_per_worker(det))
    detector = UltralyticsDetector(
        weights, device=device, confidence=det.confidence, imgsz=det.imgsz, backend=backend,
        name=name,
    )
    detector.warmup()
    return detector


def _load_exported(
    config: ServerConfig, weights: Path, backend: exported.ExportBackend
) -> tuple[Detector | None, str]:
    """The detector exported for `backend` (from the cache, else exported now), warmed up, or
    None and why it cannot be had."""
    det = config.detector
    try:
        device = resolve_device(det.device)
        exported.check_available(backend, device)
        if backend == "onnx":
            device = exported.onnx_device(device)
    except Exception as exc:
        return None, f"{backend} backend unavailable: {_short(exc)}"
    batch = config.batching.max_batch_size
    cached = exported.cached_path(weights, backend, det.imgsz, batch)
    if exported.is_fresh(cached, weights):
        try:
            detector = _load_runtime(cached, backend, device, config, weights.stem)
        except Exception as exc:  # damaged or made by another runtime version: export again
            _LOGGER.warning("cached %s is unusable (%s): exporting again", cached, _short(exc))
        else:
            _LOGGER.info("reusing %s exported earlier", cached)
            return detector, ""
    try:
        path = exported.export(weights, backend, imgsz=det.imgsz, device=device, batch=batch)
        return _load_runtime(path, backend, device, config, weights.stem), ""
    except Exception as exc:  # an export that fails must not stop the server
        _LOGGER.debug("%s export of %s failed", backend, weights, exc_info=True)
        return None, f"{backend} export of {weights.name} failed: {_short(exc)}"


def _load_runtime(
    path: Path, backend: exported.ExportBackend, device: str, config: ServerConfig, name: str
) -> UltralyticsDetector:
    """An exported file loaded and warmed up (which makes ultralytics open its session)."""
    detector = _load_yolo(path, device, config, backend=exported.FORMATS[backend][2], name=name)
    if backend == "onnx" and device == "cpu":
        threads = threads_per_worker(config.detector)
        try:
            exported.stop_spinning(detector.model, path, threads)
            detector.onnx_threads = threads
        except Exception as exc:  # an ultralytics without this layout: keep its own session
            _LOGGER.warning("ONNX Runtime keeps its spinning threads: %s", _short(exc))
    return detector


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_embedded(config: ServerConfig) -> tuple[Detector | None, str]:
    """The embedded detector, warmed up, or None and why it cannot be had."""
    # Deferred: embedded_ssd subclasses Detector from this module.
    from gpu_server.ingest import embedded_ssd  # noqa: PLC0415

    path, reason = embedded_ssd.find_model(config.detector.embedded_model, config.models_dir)
    if path is None:
        return None, reason
    try:
        detector = embedded_ssd.EmbeddedSsdDetector(
            path, threads=min(embedded_ssd.MAX_THREADS, threads_per_worker(config.detector))
        )
        detector.warmup()
    except Exception as exc:  # a damaged file or a missing runtime must not stop the server
        _LOGGER.debug("embedded model %s failed", path, exc_info=True)
        return None, f"embedded model unusable: {_short(exc)}"
    return detector, ""


def _embedded_or_hog(
    config: ServerConfig, hog: HogPeopleDetector, why_not_yolo: str, *, yolo_wanted: bool
) -> DetectorSelection:
    """No YOLO: the embedded detector, else HOG. A fallback when YOLO was wanted (weights
    named in the configuration, or found but failing) or when only HOG is left."""
    embedded, why_not = _load_embedded(config)
    if embedded is not None:
        source = getattr(embedded, "model_path", embedded.weights)
        if yolo_wanted:
            _LOGGER.warning("using the embedded detector %s: %s", embedded.name, why_not_yolo)
            return DetectorSelection(embedded, why_not_yolo)
        _LOGGER.info(
            "using the embedded detector %s from %s on the CPU (%s)",
            embedded.name, source, why_not_yolo or "chosen in the configuration",
        )
        return DetectorSelection(embedded)
    reason = "; ".join(part for part in (why_not_yolo, why_not) if part)
    _LOGGER.warning("using the HOG people detector (people only): %s", reason)
    hog.warmup()
    return DetectorSelection(hog, reason)


def build_detector(config: ServerConfig) -> DetectorSelection:
    """Pick the detector the configuration asks for and warm it up (blocking).

    YOLO when its weights are in the models folder (or named), else the embedded detector, else
    the HOG people detector. YOLO that fails on its device is tried on the CPU first; whatever
    fails falls through to the next, and `fallback_reason` says why. Never raises for a model
    or device problem, so the server always starts.
    """
    det = config.detector
    hog = HogPeopleDetector(confidence=det.confidence, max_side=det.imgsz)
    if det.weights == HOG_CHOICE:
        _LOGGER.info("using the HOG people detector (chosen in the configuration)")
        hog.warmup()
        return DetectorSelection(hog)
    if det.weights == EMBEDDED_CHOICE:
        return _embedded_or_hog(config, hog, "", yolo_wanted=False)
    weights, reason = _find_weights(config)
    if weights is None:
        return _embedded_or_hog(config, hog, reason, yolo_wanted=bool(det.weights))
    return _yolo_or_next(config, weights, hog)


def _yolo_or_next(config: ServerConfig, weights: Path, hog: HogPeopleDetector) -> DetectorSelection:
    """YOLO exported for the configured backend, else YOLO in PyTorch on the configured device,
    else on the CPU, else the embedded detector or HOG."""
    det = config.detector
    if extras.why_missing("yolo") is not None:
        # No backend loads YOLO without torch and ultralytics: name the extra that brings them.
        why = extras.why_missing(BACKEND_EXTRAS[det.backend])
        return _embedded_or_hog(config, hog, f"YOLO {weights.name}: {why}", yolo_wanted=True)
    configure_ultralytics_env(config)
    if config.allow_downloads:
        config.models_dir.mkdir(parents=True, exist_ok=True)
    # Weights that ultralytics is yet to download are exported on the next start.
    if det.backend == "triton" and weights.is_file():
        return _triton_or_next(config, weights, hog)
    if det.backend in ("onnx", "tensorrt") and weights.is_file():
        fast, why_not = _load_exported(config, weights, det.backend)
        if fast is not None:
            _LOGGER.info(
                "using YOLO %s on %s (%s) on %s", fast.name, fast.backend, fast.weights, fast.device
            )
            return DetectorSelection(fast)
        _LOGGER.warning("%s; trying YOLO in PyTorch instead", why_not)
        selection = _pytorch_or_next(config, weights, hog)
        then = selection.fallback_reason or "running YOLO in PyTorch instead"
        return DetectorSelection(selection.detector, f"{why_not}; {then}")
    return _pytorch_or_next(config, weights, hog)


def _triton_or_next(
    config: ServerConfig, weights: Path, hog: HogPeopleDetector
) -> DetectorSelection:
    """The ONNX export with its network on the Triton server, else ONNX Runtime locally.

    The local session runs on the CPU: it is the fallback, and ultralytics binds a CUDA one to
    device memory, which a remote session cannot serve."""
    det = config.detector
    local_det = det.model_copy(update={"backend": "onnx", "device": "cpu"})
    selection = _yolo_or_next(config.model_copy(update={"detector": local_det}), weights, hog)
    local = selection.detector
    if selection.fallback or not isinstance(local, UltralyticsDetector):
        return selection
    if (why := extras.why_missing("triton")) is not None:
        _LOGGER.warning("%s; running ONNX Runtime locally", why)
        return DetectorSelection(local, f"{why}; running ONNX Runtime locally")
    from gpu_server.ingest import triton  # noqa: PLC0415 - needs tritonclient

    def show(up: bool) -> None:  # the status names the runtime that detects now
        local.backend = "triton" if up else exported.FORMATS["onnx"][2]

    # Copies would run ONNX Runtime locally: the Triton server does the scheduling instead.
    local.replicable = False
    try:
        triton.attach(local.model, det.triton_url, det.triton_model, show)
    except Exception as exc:  # a stopped server must not stop the sidecar
        reason = f"{_short(exc)}; running ONNX Runtime locally"
        _LOGGER.warning("%s", reason)
        return DetectorSelection(local, reason)
    show(True)
    _LOGGER.info("using YOLO %s on Triton at %s as %r, ONNX Runtime locally as the fallback",
                 local.name, det.triton_url, det.triton_model)
    return DetectorSelection(local)


def _pytorch_or_next(
    config: ServerConfig, weights: Path, hog: HogPeopleDetector
) -> DetectorSelection:
    """YOLO in PyTorch on the configured device, else on the CPU, else the embedded detector or
    HOG."""
    det = config.detector
    device = det.device
    try:
        device = resolve_device(det.device)
        detector = _load_yolo(weights, device, config)
    except Exception as exc:  # a corrupt file or a missing CUDA device must not stop the server
        first = f"YOLO {weights.name} failed on {device}: {_short(exc)}"
        _LOGGER.warning("%s", first, exc_info=True)
        if device == "cpu":
            return _embedded_or_hog(config, hog, first, yolo_wanted=True)
        try:
            detector = _load_yolo(weights, "cpu", config)
        except Exception as cpu_exc:
            reason = f"{first}; on cpu too: {_short(cpu_exc)}"
            _LOGGER.warning("YOLO %s failed on the CPU too", weights.name, exc_info=True)
            return _embedded_or_hog(config, hog, reason, yolo_wanted=True)
        reason = f"{first}; running YOLO on the CPU instead"
        _LOGGER.warning("%s", reason)
        return DetectorSelection(detector, reason)
    _LOGGER.info(
        "using YOLO %s: weights found at %s, on %s", detector.name, weights, detector.device
    )
    return DetectorSelection(detector)
