"""Domain errors and the one place that maps them to gRPC status codes."""

from __future__ import annotations

import enum
import logging

import grpc

_LOGGER = logging.getLogger(__name__)

GENERIC_INTERNAL_MESSAGE = "internal server error; the frame may be resent later"


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

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class FrameRejectedError(SidecarError):
    """The client sent a frame the server refuses to analyse."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BackpressureError(FrameRejectedError):
    """The event outbox is full; the client keeps the frame and resends it later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str) -> None:
        super().__init__(RejectReason.BACKPRESSURE, message)


class InvalidSettingsError(SidecarError):
    """Configure was given settings that cannot be applied (bad zone, unknown time zone)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DetectorError(SidecarError):
    """The detector failed or returned something unusable."""


class StaleCursorError(SidecarError):
    """An ack names another outbox, or a sequence this outbox never wrote: nothing is removed."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class CursorOutOfRangeError(SidecarError):
    """A sequence number beyond what any outbox can hold (SQLite's signed 64-bit integers)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class ShuttingDownError(SidecarError):
    """The server is stopping and no longer takes work."""

    code = grpc.StatusCode.UNAVAILABLE


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the gRPC code and client-facing message for an exception.

    Errors we did not raise on purpose become INTERNAL with a generic message so that no
    internals leak to clients; they are logged with their traceback instead.
    """
    if isinstance(exc, FrameRejectedError):
        return exc.code, str(exc)
    if isinstance(exc, SidecarError):
        _LOGGER.warning("request failed: %s", exc)
        return exc.code, str(exc)
    _LOGGER.error("unexpected error while handling a request", exc_info=exc)
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE


def code_number(code: grpc.StatusCode) -> int:
    """The numeric google.rpc.Code of a grpc.StatusCode (0 OK, 3 INVALID_ARGUMENT, ...)."""
    number: int = code.value[0]
    return number
