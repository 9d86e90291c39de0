"""Draw detection boxes on a frame (blocking; run it in the executor)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .client import Detection

_COLOURS = ("#ff3b30", "#34c759", "#007aff", "#ff9500", "#af52de", "#5ac8fa", "#ffcc00")


def _colour(label: str) -> str:
    return _COLOURS[sum(label.encode()) % len(_COLOURS)]


def draw_detections(image: bytes, detections: Sequence[Detection]) -> bytes:
    """Return the image as JPEG with a labelled box around every detection."""
    with Image.open(io.BytesIO(image)) as source:
        picture = source.convert("RGB")
    if detections:
        draw = ImageDraw.Draw(picture)
        width = max(2, round(min(picture.size) / 200))
        font = ImageFont.load_default(size=max(12, round(min(picture.size) / 30)))
        for det in detections:
            colour = _colour(det.label)
            box = (det.box.x1, det.box.y1, det.box.x2, det.box.y2)
            draw.rectangle(box, outline=colour, width=width)
            text = f"{det.label} {det.confidence:.0%}"
            left, top, right, bottom = draw.textbbox((det.box.x1, det.box.y1), text, font=font)
            height = bottom - top
            label_top = det.box.y1 - height - 2 * width
            if label_top < 0:
                label_top = det.box.y1
            draw.rectangle(
                (left, label_top, right + 2 * width, label_top + height + 2 * width), fill=colour
            )
            draw.text(
                (det.box.x1 + width, label_top + width - (top - det.box.y1)),
                text,
                fill="white",
                font=font,
            )
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85)
    return out.getvalue()
