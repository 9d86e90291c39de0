"""Text on vehicles: PP-OCR (RapidOCR on ONNX Runtime, models inside the wheel) on the lower part
of a vehicle box, where plates sit.

No plate detector ships in a package, so the OCR's own text detector finds the text lines in
that region. What it reads is untrusted: anyone can hold up a sign or print a sticker, so the
text only ever reaches the prompt through the sanitizer.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Final

from gpu_server import extras
from gpu_server.core.images import BgrImage
from gpu_server.enrich.faces import importable
from gpu_server.models.registry import MIB

OCR_MODEL_KEY: Final = "ocr-rapidocr-ppocrv4"
OCR_TASK: Final = "ocr"
# Resident size once loaded (measured by bench/enrichment.py on the CPU, rounded up).
OCR_MODEL_MEMORY: Final = 384 * MIB
# The share of a vehicle box, from its bottom, searched for the plate.
PLATE_REGION: Final = 0.6
_NOT_PLATE_CHARS: Final = re.compile(r"[^0-9A-Z]+")


def plates_unavailable() -> str | None:
    """Why plates cannot be read here (a missing package), or None."""
    if not importable("rapidocr_onnxruntime"):
        return extras.not_installed("plates", ["rapidocr_onnxruntime"])
    return None


def normalize_plate(text: str) -> str:
    """Letters and digits only, upper case: "ab-123 cd" and "AB123CD" are the same plate."""
    return _NOT_PLATE_CHARS.sub("", text.upper())


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the image's pixels


class PlateReader:
    """Reads text lines in a BGR image. Blocking; one call at a time."""

    def __init__(self) -> None:
        # RapidOCR logs every call at INFO; its own logger, not ours.
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        from rapidocr_onnxruntime import RapidOCR  # noqa: PLC0415 - optional package

        self._ocr: Any = RapidOCR()
        self._lock = threading.Lock()

    def read(self, image: BgrImage) -> list[TextLine]:
        with self._lock:
            result, _ = self._ocr(image)
        lines: list[TextLine] = []
        for points, text, confidence in result or ():
            xs = [int(point[0]) for point in points]
            ys = [int(point[1]) for point in points]
            lines.append(
                TextLine(str(text), float(confidence), (min(xs), min(ys), max(xs), max(ys)))
            )
        return lines
