"""The sidecar's optional package sets ("extras"): what each one brings and how to install it.

The embedded default (the LiteRT detector, llama.cpp) needs none of them. A setting that asks
for one whose packages are missing falls back as before, and the status names the extra:
`scripts/setup_sidecar_env --with NAME` installs `requirements/sidecar-NAME.txt`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Final, Literal

Extra = Literal["yolo", "onnx", "triton", "faces", "plates", "reid"]

_YOLO: Final = ("torch", "torchvision", "ultralytics")
# ultralytics exports the YOLO weights for ONNX Runtime, and Triton serves that ONNX file: each
# of these extras brings the one before it.
_ONNX: Final = (*_YOLO, "onnx", "onnxslim", "onnxruntime")

# The top-level modules each extra makes importable.
MODULES: Final[dict[Extra, tuple[str, ...]]] = {
    "yolo": _YOLO,
    "onnx": _ONNX,
    "triton": (*_ONNX, "tritonclient"),
    "faces": ("dlib", "face_recognition_models"),
    "plates": ("rapidocr_onnxruntime",),
    # A CLIP-class appearance model runs in transformers on torch.
    "reid": ("torch", "transformers"),
}


def install_command(extra: Extra) -> str:
    return f"scripts/setup_sidecar_env --with {extra}"


def not_installed(extra: Extra, missing: Iterable[str]) -> str:
    """The sentence the status and the log carry for a missing extra."""
    return (
        f"the {extra} extra is not installed (missing {', '.join(missing)}): "
        f"{install_command(extra)}"
    )


def why_missing(extra: Extra) -> str | None:
    """Why `extra` cannot be used here, or None when all its modules are installed. Looks the
    modules up without importing them: torch alone takes seconds."""
    missing = [name for name in MODULES[extra] if importlib.util.find_spec(name) is None]
    return not_installed(extra, missing) if missing else None
