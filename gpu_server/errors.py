"""The errors the sidecar raises on purpose; `grpc_api/status_codes.py` gives their codes."""

from __future__ import annotations

import enum


class RejectReason(enum.Enum):
    """Why a frame was refused; names match the contract's REJECT_REASON_* values."""

    EMPTY = "empty"
    NOT_AN_IMAGE = "not_an_image"
    TRUNCATED = "truncated"
    DIMENSIONS_TOO_LARGE = "dimensions_too_large"
    DECOMPRESSION_BOMB = "decompression_bomb"
    TOO_MANY_BYTES = "too_many_bytes"
    HASH_MISMATCH = "hash_mismatch"
    INVALID_CAMERA_ID = "invalid_camera_id"
    INTERNAL = "internal"
    BACKPRESSURE = "backpressure"


class SidecarError(Exception):
    """Base of the errors the server raises on purpose; the message is safe to show clients."""


class FrameRejectedError(SidecarError):
    """The client sent a frame the server refuses to analyze."""


    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BackpressureError(FrameRejectedError):
    """The event outbox is full; the client keeps the frame and resends it later."""


    def __init__(self, message: str) -> None:
        super().__init__(RejectReason.BACKPRESSURE, message)


class InvalidSettingsError(SidecarError):
    """Configure was given settings that cannot be applied (bad zone, unknown time zone)."""


class DetectorError(SidecarError):
    """The detector failed or returned something unusable."""


class StaleCursorError(SidecarError):
    """An ack names another outbox, or a sequence this outbox never wrote: nothing is removed."""


class CursorOutOfRangeError(SidecarError):
    """A sequence number beyond what any outbox can hold (SQLite's signed 64-bit integers)."""


class UnknownEventError(SidecarError):
    """Feedback names an event the server never made, or no longer keeps."""


class ShuttingDownError(SidecarError):
    """The server is stopping and no longer takes work."""


class InvalidRequestError(SidecarError):
    """A request whose arguments cannot be used (an empty name, an image without a face)."""


class NotFoundError(SidecarError):
    """A request names something the server does not have (a face it no longer remembers)."""


class FeatureUnavailableError(SidecarError):
    """The request needs a part that is not installed or failed to load (see GetStatus)."""
