"""One object a detector found in a frame."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    class_id: int
    confidence: float
    # Box corners in pixels of the original image.
    x1: float
    y1: float
    x2: float
    y2: float
