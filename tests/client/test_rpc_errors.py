"""gRPC errors as the client's own: the table of status codes and the decorator of the calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from custom_components.home_security_ai.client import (
    AuthFailed,
    CameraSettings,
    CannotConnect,
    FailedPrecondition,
    FeedbackVerdict,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    NotFound,
    NotSupported,
    ResourceExhausted,
)
from custom_components.home_security_ai.client.rpc_errors import maps_rpc_errors


def _rpc_error(code: grpc.StatusCode, details: str = "the details") -> aio.AioRpcError:
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details)


# Every status code a call can end with, and the client's error for it.
EXPECTED: dict[grpc.StatusCode, type[HomeSecurityAIError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthFailed,
    grpc.StatusCode.UNIMPLEMENTED: NotSupported,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: CannotConnect,
    grpc.StatusCode.DEADLINE_EXCEEDED: CannotConnect,
    grpc.StatusCode.CANCELLED: CannotConnect,
    grpc.StatusCode.INVALID_ARGUMENT: HomeSecurityAIError,
    grpc.StatusCode.PERMISSION_DENIED: HomeSecurityAIError,
    grpc.StatusCode.ALREADY_EXISTS: HomeSecurityAIError,
    grpc.StatusCode.ABORTED: HomeSecurityAIError,
    grpc.StatusCode.OUT_OF_RANGE: HomeSecurityAIError,
    grpc.StatusCode.INTERNAL: HomeSecurityAIError,
    grpc.StatusCode.DATA_LOSS: HomeSecurityAIError,
    grpc.StatusCode.UNKNOWN: HomeSecurityAIError,
}


def test_every_status_code_has_an_expected_error() -> None:
    assert set(EXPECTED) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


@pytest.mark.parametrize(("code", "kind"), EXPECTED.items(), ids=str)
async def test_each_status_code_raises_its_error(
    code: grpc.StatusCode, kind: type[HomeSecurityAIError]
) -> None:
    """The error is of exactly the code's kind, says the details, and is caused by the
    gRPC error."""
    raised = _rpc_error(code)

    @maps_rpc_errors
    async def call() -> None:
        raise raised

    with pytest.raises(HomeSecurityAIError) as caught:
        await call()
    assert type(caught.value) is kind
    assert "the details" in str(caught.value)
    assert caught.value.__cause__ is raised


async def test_a_grpc_error_without_a_status_is_the_base_error() -> None:
    raised = grpc.RpcError("no status")

    @maps_rpc_errors
    async def call() -> None:
        raise raised

    with pytest.raises(HomeSecurityAIError) as caught:
        await call()
    assert type(caught.value) is HomeSecurityAIError
    assert "no status" in str(caught.value)
    assert caught.value.__cause__ is raised


async def test_other_exceptions_and_results_pass_through() -> None:
    """Only gRPC errors are translated: anything else leaves as it was raised."""
    raised = ValueError("not a gRPC error")

    @maps_rpc_errors
    async def fails() -> None:
        raise raised

    @maps_rpc_errors
    async def answers(value: int, *, plus: int) -> int:
        """Add."""
        return value + plus

    with pytest.raises(ValueError, match="not a gRPC error") as caught:
        await fails()
    assert caught.value is raised
    assert await answers(2, plus=3) == 5
    assert (answers.__name__, answers.__doc__) == ("answers", "Add.")


class _RefusingStub:
    """A stub whose every call fails with one status code, counting the calls."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def refuse(*_args: Any, **_kwargs: Any) -> Any:
            self.calls.append(name)
            raise _rpc_error(self.code)

        return refuse


# Every unary call of the client, and the RPC it makes.
UNARY_CALLS: dict[str, Callable[[HomeSecurityAIClient], Awaitable[Any]]] = {
    "GetStatus": lambda client: client.get_status(),
    "AckEvents": lambda client: client.ack_events(3, "outbox"),
    "Configure": lambda client: client.configure([CameraSettings(camera_id="front_door")]),
    "AnalyzeNow": lambda client: client.analyze_now("front_door"),
    "ResetScene": lambda client: client.reset_scene("front_door"),
    "Feedback": lambda client: client.feedback("event", FeedbackVerdict.FALSE_ALARM),
    "EnrollPerson": lambda client: client.enroll_person("Ann", face_id="face"),
    "RemovePerson": lambda client: client.remove_person("Ann"),
    "ListPeople": lambda client: client.list_people(),
}


@pytest.mark.parametrize("rpc", UNARY_CALLS)
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, AuthFailed),
        (grpc.StatusCode.UNAVAILABLE, CannotConnect),
        (grpc.StatusCode.INVALID_ARGUMENT, HomeSecurityAIError),
    ],
)
async def test_every_call_maps_its_errors(
    rpc: str, code: grpc.StatusCode, kind: type[HomeSecurityAIError]
) -> None:
    """No call lets a gRPC error out: each raises the client's error for the code."""
    client = HomeSecurityAIClient("127.0.0.1", 1, "token")
    stub = _RefusingStub(code)
    client._stub = stub  # type: ignore[assignment]
    with pytest.raises(HomeSecurityAIError) as caught:
        await UNARY_CALLS[rpc](client)
    assert type(caught.value) is kind
    assert stub.calls == [rpc]


async def test_the_event_stream_maps_its_errors() -> None:
    """SubscribeEvents ending with an error raises the client's error for its code."""

    class _RefusedCall:
        def __init__(self) -> None:
            self.cancelled = False

        async def read(self) -> Any:
            raise _rpc_error(grpc.StatusCode.UNAUTHENTICATED)

        def cancel(self) -> None:
            self.cancelled = True

    call = _RefusedCall()

    class _Stub:
        def SubscribeEvents(self, *_args: Any, **_kwargs: Any) -> _RefusedCall:  # noqa: N802
            return call

    client = HomeSecurityAIClient("127.0.0.1", 1, "token")
    client._stub = _Stub()  # type: ignore[assignment]
    with pytest.raises(AuthFailed):
        async for _event in client.subscribe_events(0):
            pass
    assert call.cancelled
