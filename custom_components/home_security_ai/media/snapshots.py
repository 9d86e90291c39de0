"""Snapshots: frames with their detections drawn, for the camera entities and for events.

The camera entities show the last analyzed frame with its boxes; every security event gets
the frame with its most telling detections saved as a JPEG in the media folder, under
``<media>/home_security_ai/<camera id>/<day>/<incident id>/<event id>.jpg`` (media_files.py).
Drawing blocks: it runs in the executor.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from homeassistant.core import HomeAssistant
from PIL import Image, ImageDraw, ImageFont

from ..cameras import CameraState
from ..client import Detection, SecurityEvent
from ..delivery.spool import FrameSpool
from ..files import write_atomic
from .media_files import integration_folder, local_day, media_root, snapshot_path

# media_root is here too because events/event_stream.py takes it from here.
__all__ = [
    "annotate_jpeg",
    "async_save_event_snapshot",
    "draw_detections",
    "media_root",
    "placeholder_jpeg",
]

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


def _save(path: Path, image: bytes, detections: Sequence[Detection]) -> None:
    """Draw the boxes and write the snapshot (runs in the executor)."""
    data = annotate_jpeg(image, detections)  # a JPEG in every case, as the name says
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


async def async_save_event_snapshot(
    hass: HomeAssistant,
    event: SecurityEvent,
    spool: FrameSpool,
    camera: CameraState | None,
) -> Path | None:
    """Save the event's frame with the most telling detections, boxes drawn; return its path.

    The frame comes from the spool (the event's frames are still there until it is stored),
    else from the camera's last analyzed frame; None when neither has one of the event's frames
    or the file cannot be written.
    """
    by_frame: dict[str, list[Detection]] = {}
    for det in event.detections:
        by_frame.setdefault(det.frame_sha256, []).append(det.detection)
    candidates = sorted(
        by_frame,
        key=lambda sha: max(det.confidence for det in by_frame[sha]),
        reverse=True,
    ) + [sha for sha in reversed(event.frame_sha256s) if sha not in by_frame]
    image: bytes | None = None
    chosen = ""
    for sha in candidates:
        image = await spool.async_read_hash(sha)
        if image is None and camera is not None and camera.last_image is not None:
            frame = spool.get(camera.last_image_ref or "")
            if frame is not None and frame.sha256 == sha:
                image = camera.last_image
        if image is not None:
            chosen = sha
            break
    if image is None:
        _LOGGER.debug("No frame of event %s is left for a snapshot", event.event_id)
        return None
    incident = event.incident
    path = snapshot_path(
        integration_folder(hass),
        event.camera_id,
        event.event_id or str(event.sequence),
        local_day(incident.started_at_ms if incident else event.created_at_ms),
        incident.incident_id if incident else None,
    )
    try:
        await hass.async_add_executor_job(_save, path, image, by_frame.get(chosen, []))
    except OSError as err:
        _LOGGER.warning("Cannot save the snapshot of event %s: %s", event.event_id, err)
        return None
    return path
