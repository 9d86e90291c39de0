"""YOLO weights exported by ultralytics for a faster runtime (ONNX Runtime, TensorRT), kept next
to the weights so that a restart loads the exported file instead of exporting again.

A cached file is reused while it is at least as new as the weights; its name carries the image
size it was made for, so another `detector.imgsz` makes (and keeps) another file.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from gpu_server import extras

_LOGGER = logging.getLogger(__name__)

Backend = Literal["pytorch", "onnx", "tensorrt"]
ExportBackend = Literal["onnx", "tensorrt"]

# Backend -> (ultralytics export format, file suffix, Detector.backend shown in the status).
FORMATS: dict[ExportBackend, tuple[str, str, str]] = {
    "onnx": ("onnx", ".onnx", "onnxruntime"),
    "tensorrt": ("engine", ".engine", "tensorrt"),
}


class BackendUnavailableError(RuntimeError):
    """The backend cannot run here (no CUDA device, a runtime package missing)."""


def cached_path(weights: Path, backend: ExportBackend, imgsz: int, batch: int = 1) -> Path:
    """Where the export of `weights` for `backend` is kept. A TensorRT engine is built for a
    largest batch, which its name carries too; an ONNX file takes any batch."""
    suffix = FORMATS[backend][1]
    batch_part = f".b{batch}" if backend == "tensorrt" else ""
    return weights.with_name(f"{weights.stem}.{imgsz}px{batch_part}{suffix}")


def is_fresh(exported: Path, weights: Path) -> bool:
    """True when `exported` exists and was made from the weights as they are now."""
    try:
        return exported.stat().st_mtime_ns >= weights.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def check_available(backend: ExportBackend, device: str) -> None:
    """Raise BackendUnavailableError with the reason when `backend` cannot run on `device`.

    Ultralytics would otherwise try to pip-install what is missing at run time.
    """
    if backend == "tensorrt" and not device.startswith("cuda"):
        raise BackendUnavailableError(f"TensorRT needs a CUDA device, not {device}")
    if (why := extras.why_missing("onnx")) is not None:
        raise BackendUnavailableError(why)
    if backend == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        raise BackendUnavailableError("TensorRT needs NVIDIA's tensorrt package")


def onnx_device(device: str) -> str:
    """ONNX Runtime runs on the CPU unless its CUDA build is installed."""
    if not device.startswith("cuda"):
        return device
    import onnxruntime  # noqa: PLC0415 - ONNX backend only

    providers: list[str] = onnxruntime.get_available_providers()
    return device if "CUDAExecutionProvider" in providers else "cpu"


def export(
    weights: Path, backend: ExportBackend, *, imgsz: int, device: str, batch: int
) -> Path:
    """Export `weights` with ultralytics into the cache file and return its path (blocking)."""
    fmt, _, _ = FORMATS[backend]
    target = cached_path(weights, backend, imgsz, batch)
    # Ultralytics writes `<stem>.onnx` beside its input, which could overwrite a file of the
    # user's: export a copy in a private folder, then move the result into place at once, so a
    # half-written file is never taken for a cached one.
    workdir = Path(tempfile.mkdtemp(prefix=".export-", dir=weights.parent))
    try:
        copy = workdir / weights.name
        shutil.copy2(weights, copy)
        from ultralytics import YOLO  # type: ignore[attr-defined]  # noqa: PLC0415

        # Dynamic shapes: one file serves every batch size up to `batch` and the rectangular
        # letterbox PyTorch uses, so both backends see the same pixels.
        # TensorRT in FP16: about twice FP32's speed on any GPU it supports.
        precision: dict[str, int] = {"quantize": 16} if backend == "tensorrt" else {}
        out = YOLO(str(copy)).export(
            format=fmt, imgsz=imgsz, dynamic=True, simplify=True, batch=batch, device=device,
            verbose=False, **precision,
        )
        if not out or not Path(str(out)).is_file():
            raise RuntimeError(f"ultralytics wrote no {fmt} file")
        os.replace(str(out), target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _LOGGER.info("exported %s for %s at %d px into %s", weights.name, backend, imgsz, target)
    return target


def stop_spinning(model: Any, path: Path, threads: int = 0) -> None:
    """Reopen the ONNX Runtime session of a loaded ultralytics `model` (exported file `path`,
    CPU) with worker threads that sleep instead of spinning while they wait for work, `threads`
    of them (0: one per core).

    Spinning pays off only on otherwise idle cores. In the sidecar the cores are shared with
    JPEG decoding, the language model and the host's other processes; there a spinning pool
    made ONNX Runtime slower than PyTorch, and a sleeping one about 1.5 times faster.
    """
    import onnxruntime  # noqa: PLC0415 - ONNX backend only

    backend = model.predictor.model.backend
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = backend.session.get_providers()
    backend.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
