"""Bearer-token check on every RPC, health and reflection included."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

_LOGGER = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
_SCHEME = "bearer "


def _presented_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text[: len(_SCHEME)].lower() == _SCHEME:
                return text[len(_SCHEME) :].strip()
            return ""
    return None


def _denying_handler(handler: Any, message: str) -> Any:
    """A handler of the same shape as `handler` that ends the call with UNAUTHENTICATED.

    The shape must match so that gRPC does not wait for a request message it will never use.
    """

    async def deny(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler is None:
        return None
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        presented = _presented_token(handler_call_details.invocation_metadata)
        if presented is None:
            message = "missing 'authorization: Bearer <token>' metadata"
        elif not hmac.compare_digest(presented.encode(), self._token):
            message = "invalid bearer token"
        else:
            return handler
        _LOGGER.warning("refused %s: %s", handler_call_details.method, message)
        return _denying_handler(handler, message)
