"""Helpers for the enrichment tests: rendered plates, crops of real photos, a marked detector."""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.enrich.pipeline import Crop, cut_crops
from gpu_server.ingest.detector import Detector

# What the marked detector reports, keyed by the blue value of the top-left pixel.
MARK_PERSON = 201
MARK_CAR = 101


def plate_scene(text: str, width: int = 640, height: int = 480) -> BgrImage:
    """A grey 'car' with a white plate near its bottom, the text drawn in black (BGR)."""
    image = Image.new("RGB", (width, height), (70, 70, 80))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=56)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    plate_w, plate_h = right - left + 40, bottom - top + 30
    x0, y0 = (width - plate_w) // 2, height - plate_h - 40
    draw.rectangle((x0, y0, x0 + plate_w, y0 + plate_h), fill="white", outline="black", width=4)
    draw.text((x0 + 20 - left, y0 + 15 - top), text, fill="black", font=font)
    return np.asarray(image)[:, :, ::-1].copy()


def whole(label: str, image: BgrImage, confidence: float = 0.6) -> Detection:
    height, width = image.shape[:2]
    class_id = 0 if label == "person" else 2
    return Detection(label, class_id, confidence, 0.0, 0.0, float(width), float(height))


def crops_of(image: BgrImage, *detections: Detection, sha: str = "f") -> tuple[Crop, ...]:
    return cut_crops(
        sha, detections, image, (image.shape[1], image.shape[0]), max_person=6, max_vehicle=4
    )


def marked_png(image: BgrImage, mark: int) -> bytes:
    """The image as PNG (lossless, so the mark survives), marked for MarkedDetector."""
    pixels = image.copy()
    pixels[0, 0] = (mark, 0, 0)  # BGR: blue = mark
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return bytes(data)


def jpeg(image: BgrImage) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image[:, :, ::-1]).save(out, format="JPEG", quality=92)
    return out.getvalue()


class MarkedDetector(Detector):
    """A person or a car box over the whole frame, as the frame's mark says; the enrichment
    models behind it are the real ones."""

    name = "marked"
    backend = "test"
    device = "cpu"
    weights = ""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for image in images:
            mark = int(image[0, 0, 0])
            if mark == MARK_PERSON:
                out.append([whole("person", image)])
            elif mark == MARK_CAR:
                out.append([whole("car", image)])
            else:
                out.append([])
        return out
