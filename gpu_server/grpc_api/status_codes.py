"""The one table from domain errors to gRPC status codes, and the client-facing message."""

from __future__ import annotations

import logging
from typing import Final

import grpc

from gpu_server.errors import (
    BackpressureError,
    CursorOutOfRangeError,
    DetectorError,
    FeatureUnavailableError,
    FrameRejectedError,
    InvalidRequestError,
    InvalidSettingsError,
    NotFoundError,
    ShuttingDownError,
    SidecarError,
    StaleCursorError,
    UnknownEventError,
)

_LOGGER = logging.getLogger(__name__)

GENERIC_INTERNAL_MESSAGE: Final = "internal server error; the frame may be resent later"
# A message (and its log line) says at most this much: an error that quotes the caller's input
# must not hand a megabyte back, nor write one to the log.
MESSAGE_MAX_CHARS: Final = 300

# Most specific first: the first class an error is an instance of decides its code.
STATUS_CODES: Final[tuple[tuple[type[SidecarError], grpc.StatusCode], ...]] = (
    (BackpressureError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (FrameRejectedError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidSettingsError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (FeatureUnavailableError, grpc.StatusCode.FAILED_PRECONDITION),
    (StaleCursorError, grpc.StatusCode.FAILED_PRECONDITION),
    (CursorOutOfRangeError, grpc.StatusCode.OUT_OF_RANGE),
    (UnknownEventError, grpc.StatusCode.NOT_FOUND),
    (ShuttingDownError, grpc.StatusCode.UNAVAILABLE),
    (DetectorError, grpc.StatusCode.INTERNAL),
    (SidecarError, grpc.StatusCode.INTERNAL),
)


def code_for(exc: SidecarError) -> grpc.StatusCode:
    for kind, code in STATUS_CODES:
        if isinstance(exc, kind):
            return code
    raise AssertionError("unreachable: SidecarError is in the table")  # pragma: no cover


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the gRPC code and client-facing message for an exception.

    Errors we did not raise on purpose become INTERNAL with a generic message so that no
    internals leak to clients; they are logged with their traceback instead.
    """
    if isinstance(exc, FrameRejectedError):
        return code_for(exc), _short(str(exc))
    if isinstance(exc, SidecarError):
        message = _short(str(exc))
        _LOGGER.warning("request failed: %s", message)
        return code_for(exc), message
    _LOGGER.error("unexpected error while handling a request", exc_info=exc)
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE


def _short(message: str) -> str:
    if len(message) <= MESSAGE_MAX_CHARS:
        return message
    return message[: MESSAGE_MAX_CHARS - 3] + "..."


def code_number(code: grpc.StatusCode) -> int:
    """The numeric google.rpc.Code of a grpc.StatusCode (0 OK, 3 INVALID_ARGUMENT, ...)."""
    number: int = code.value[0]
    return number
