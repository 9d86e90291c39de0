"""The picture a vision-language model is shown: a frame with its detections drawn, bounded.

Drawing the boxes tells the model which things the detector means, so its description and the
detection list speak of the same objects. The frame is scaled to at most KEY_FRAME_MAX_SIDE
pixels on its long side and sent as a JPEG, which keeps the request small and the image tokens
few whatever the camera's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np

from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.llm.sanitizer import clean
from gpu_server.vocabulary import LabelGroup, is_security_finding, label_group

KEY_FRAME_MAX_SIDE: Final = 768
KEY_FRAME_QUALITY: Final = 85
_CAPTION_CHARS: Final = 32
# BGR colours per kind of finding; other objects in grey.
_COLOURS: Final = {
    LabelGroup.PERSON: (60, 60, 230),
    LabelGroup.VEHICLE: (230, 140, 40),
    LabelGroup.ANIMAL: (60, 200, 60),
    LabelGroup.OTHER: (160, 160, 160),
}


def key_frame_score(detections: Sequence[Detection]) -> float:
    """How good a frame is as its window's key frame: its most confident finding."""
    return max(
        (det.confidence for det in detections if is_security_finding(det.label)), default=0.0
    )


def box_caption(det: Detection) -> str:
    """The label drawn beside a box. A model reads it off the picture, so it goes through the
    prompt's sanitizer like every text a model is given (a custom model's class names are
    anyone's words)."""
    return f"{clean(det.label, _CAPTION_CHARS)[0]} {det.confidence:.2f}"


def annotated_jpeg(
    pixels: BgrImage, detections: Sequence[Detection], size: tuple[int, int]
) -> bytes:
    """Blocking: the frame, scaled down, with each detection's box and label, as a JPEG.

    `size` is the original frame's width and height, in whose pixels the boxes are given; the
    decoded `pixels` may already be scaled down.
    """
    height, width = pixels.shape[:2]
    factor = min(1.0, KEY_FRAME_MAX_SIDE / max(height, width))
    if factor < 1.0:
        image = cv2.resize(
            pixels,
            (max(1, round(width * factor)), max(1, round(height * factor))),
            interpolation=cv2.INTER_AREA,
        )
    else:
        image = np.array(pixels, copy=True)
    ratio = image.shape[1] / size[0] if size[0] else 1.0
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for det in detections:
        colour = _COLOURS[label_group(det.label)]
        left, top = round(det.x1 * ratio), round(det.y1 * ratio)
        right, bottom = round(det.x2 * ratio), round(det.y2 * ratio)
        cv2.rectangle(image, (left, top), (right, bottom), colour, thickness)
        cv2.putText(
            image, box_caption(det), (left + 2, max(12, top - 4)), cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness, colour, thickness, cv2.LINE_AA,
        )
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, KEY_FRAME_QUALITY])
    if not ok:
        raise ValueError("could not encode the key frame")
    return bytes(encoded)
