"""Bearer-token check on every RPC, health and reflection included."""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

_LOGGER = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R")

AUTHORIZATION = "authorization"
_SCHEME = "bearer "
REFUSAL_LOG_INTERVAL_S = 60.0
REFUSAL_LOG_MAX_PEERS = 1024


def _presented_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text[: len(_SCHEME)].lower() == _SCHEME:
                return text[len(_SCHEME) :].strip()
            return ""
    return None


def peer_address(peer: str) -> str:
    """The address of a gRPC peer without its port ("ipv4:10.0.0.5:51234" -> "10.0.0.5").

    Every connection comes from a new port, so refusals are counted per address.
    """
    kind, _, rest = peer.partition(":")
    if kind in {"ipv4", "ipv6"} and ":" in rest:
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


@dataclass
class _Refusals:
    reported_at: float
    unreported: int = 0


class RefusalLog:
    """Logs refused calls at most once per address and interval, counting the ones in between.

    A client retrying a wrong token in a loop would otherwise fill the log. The table of
    addresses is bounded: the least recently refused address is forgotten first.
    """

    def __init__(
        self,
        *,
        interval_s: float = REFUSAL_LOG_INTERVAL_S,
        max_peers: int = REFUSAL_LOG_MAX_PEERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._max_peers = max_peers
        self._clock = clock
        self._peers: OrderedDict[str, _Refusals] = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def refused(self, peer: str, method: str, reason: str) -> None:
        address = peer_address(peer)
        now = self._clock()
        entry = self._peers.pop(address, None)
        if entry is not None and now - entry.reported_at < self._interval_s:
            entry.unreported += 1
        else:
            if entry is None or entry.unreported == 0:
                _LOGGER.warning("refused %s from %s: %s", method, address, reason)
            else:
                _LOGGER.warning(
                    "refused %s from %s: %s (and %d more calls from there since the last report)",
                    method, address, reason, entry.unreported,
                )
            entry = _Refusals(reported_at=now)
        self._peers[address] = entry
        while len(self._peers) > self._max_peers:
            self._peers.popitem(last=False)


def _denying_handler(
    handler: grpc.RpcMethodHandler[Q, R] | None, message: str, log: RefusalLog, method: str
) -> grpc.RpcMethodHandler[Q, R] | None:
    """A handler of the same shape as `handler` that ends the call with UNAUTHENTICATED.

    The shape must match so that gRPC does not wait for a request message it will never use.
    """

    async def deny(_request: object, context: grpc.aio.ServicerContext[Q, R]) -> None:
        log.refused(context.peer(), method, message)
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


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str, *, refusals: RefusalLog | None = None) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._token = token.encode()
        self.refusals = refusals if refusals is not None else RefusalLog()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Q, R] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Q, R] | None:
        handler = await continuation(handler_call_details)
        presented = _presented_token(handler_call_details.invocation_metadata)
        if presented is None:
            message = "missing 'authorization: Bearer <token>' metadata"
        elif not hmac.compare_digest(presented.encode(), self._token):
            message = "invalid bearer token"
        else:
            return handler
        return _denying_handler(handler, message, self.refusals, handler_call_details.method)
