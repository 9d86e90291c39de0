"""Draw detection boxes on a frame (blocking; run it in the executor)."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from .client import Detection

_LOGGER = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8\xff"

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


@cache
def placeholder_jpeg() -> bytes:
    """Return a small grey JPEG shown instead of a frame that cannot be decoded."""
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (96, 96, 96)).save(out, format="JPEG", quality=60)
    return out.getvalue()


def annotate_jpeg(image: bytes, detections: Sequence[Detection]) -> bytes:
    """Return the frame as JPEG with its boxes drawn; never raises for a bad image.

    A frame Pillow cannot decode is returned as it is when it is a JPEG, else (and always for
    a decompression bomb) a grey placeholder, so the bytes are a JPEG in every case.
    """
    try:
        return draw_detections(image, detections)
    except Image.DecompressionBombError as err:
        _LOGGER.warning("Not drawing on a frame that decodes too large: %s", err)
        return placeholder_jpeg()
    except (OSError, ValueError, SyntaxError, TypeError, MemoryError) as err:
        _LOGGER.debug("Cannot draw on the frame: %s", err)
        return image if image.startswith(_JPEG_MAGIC) else placeholder_jpeg()
