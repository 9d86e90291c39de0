"""gRPC status codes as the client's own errors: one table, and the decorator of every call.

No gRPC error leaves the client: each becomes a `HomeSecurityAIError`, of the kind its status
code has (a refused token, an unreachable sidecar, a refusal), or else the base error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Final, ParamSpec, TypeVar

import grpc
from grpc import aio

from .errors import (
    AuthFailed,
    CannotConnect,
    FailedPrecondition,
    HomeSecurityAIError,
    NotFound,
    NotSupported,
    ResourceExhausted,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")

# The sidecar could not be reached, or did not answer in time.
CONNECT_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)

# Status codes with an error of their own, and how each reads.
_ERRORS: Final[dict[grpc.StatusCode, tuple[type[HomeSecurityAIError], str]]] = {
    grpc.StatusCode.UNAUTHENTICATED: (AuthFailed, "The sidecar refused the token"),
    grpc.StatusCode.UNIMPLEMENTED: (
        NotSupported,
        "The sidecar does not support this call; update it",
    ),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        ResourceExhausted,
        "The sidecar call ran out of resources",
    ),
    grpc.StatusCode.NOT_FOUND: (NotFound, "The sidecar does not know it"),
    grpc.StatusCode.FAILED_PRECONDITION: (
        FailedPrecondition,
        "The sidecar refused the call's premise",
    ),
}


def error_for_status(code: grpc.StatusCode | None, details: str | None) -> HomeSecurityAIError:
    """The client's error for a call that ended with `code` (None: unknown)."""
    if code is not None and code in _ERRORS:
        kind, meaning = _ERRORS[code]
        return kind(f"{meaning}: {details}")
    if code in CONNECT_CODES:
        return CannotConnect(f"Cannot reach the sidecar ({code}): {details}")
    return HomeSecurityAIError(f"The sidecar answered with an error ({code}): {details}")


def map_rpc_error(err: grpc.RpcError) -> HomeSecurityAIError:
    """The client's error for a gRPC error; one without a status code becomes the base error."""
    if isinstance(err, aio.AioRpcError):
        return error_for_status(err.code(), err.details())
    return error_for_status(None, str(err))


def maps_rpc_errors(
    call: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Raise the client's own error, caused by the gRPC one, when `call` raises a gRPC error;
    every other exception passes through as it is."""

    @functools.wraps(call)
    async def mapped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await call(*args, **kwargs)
        except grpc.RpcError as err:
            raise map_rpc_error(err) from err

    return mapped
