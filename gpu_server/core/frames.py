"""A frame once detected: what dedupe remembers and what the event windows receive."""

from __future__ import annotations

from dataclasses import dataclass

from gpu_server.core.detection import Detection


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """What dedupe remembers per content hash."""

    detections: tuple[Detection, ...]
    width: int
    height: int
    detector: str


@dataclass(frozen=True, slots=True)
class AcceptedFrame:
    """A newly taken frame, handed to the sink before its ack goes out."""

    camera_id: str
    sha256: str
    captured_at_ms: int  # client clock; 0 when the client did not say
    result: DetectionResult
