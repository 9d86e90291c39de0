"""The SecurityAI gRPC service, split by concern into frames.py, status.py and events.py, and
how a service is registered so that its handlers answer requests that do not parse."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc.aio import ServicerContext

from gpu_server._generated import events_pb2, frames_pb2, service_pb2_grpc, status_pb2
from gpu_server.grpc_api.auth import RefusalLog
from gpu_server.grpc_api.convert import Unparseable, request_parser
from gpu_server.grpc_api.events import EventsHandler
from gpu_server.grpc_api.frames import FrameStreamHandler
from gpu_server.grpc_api.people import PeopleHandler
from gpu_server.grpc_api.status import StatusReporter
from gpu_server.grpc_api.status_codes import status_for

Q = TypeVar("Q")
R = TypeVar("R")

# What the handlers made from a service's descriptor take and send: that service's messages
# (known only at run time), and `Unparseable` for a request that does not parse.
_Context = ServicerContext[Message | Unparseable, Message]

_SUBMIT_FRAMES = "/home_security_ai.v1.SecurityAI/SubmitFrames"


async def _unary(context: ServicerContext[Q, R], call: Callable[[], Awaitable[R]]) -> R:
    try:
        return await call()
    except Exception as exc:
        code, message = status_for(exc)
        await context.abort(code, message)
        raise  # abort() always raises; this keeps type checkers informed


async def _streaming(
    context: ServicerContext[Q, R], items: AsyncIterator[R]
) -> AsyncIterator[R]:
    try:
        async for item in items:
            yield item
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        code, message = status_for(exc)
        await context.abort(code, message)


def add_service(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicer: object,
    refusals: RefusalLog,
    *,
    takes_unparseable: bool = False,
) -> None:
    """Register `servicer`'s methods for `service` with request parsers that never raise.

    A request that does not parse ends its call with INVALID_ARGUMENT and one line in
    `refusals` (at most one per address and minute). With `takes_unparseable`, a streamed
    message that does not parse reaches the servicer as `Unparseable` instead, so that it can
    refuse that message alone and keep the stream.
    """
    handlers = {
        method.name: _method_handler(
            method, getattr(servicer, method.name), refusals, takes_unparseable
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )


_HANDLER_KINDS: Final = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _method_handler(
    method: MethodDescriptor,
    behaviour: Callable[..., Any],
    refusals: RefusalLog,
    takes_unparseable: bool,
) -> grpc.RpcMethodHandler[Message | Unparseable, Message]:
    path = f"/{method.containing_service.full_name}/{method.name}"

    async def refuse(request: Unparseable, context: _Context) -> None:
        refusals.refused(context.peer(), path, request.reason)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)

    async def parsed(requests: AsyncIterator[Any], context: _Context) -> Any:
        async for request in requests:
            if isinstance(request, Unparseable):
                await refuse(request, context)
            yield request

    async def checked(request: Any, context: _Context) -> Any:
        """The request, or the stream of them, as the servicer takes it."""
        if method.client_streaming:
            return request if takes_unparseable else parsed(request, context)
        if isinstance(request, Unparseable):
            await refuse(request, context)
        return request

    # The handler has the servicer method's shape: grpc.aio treats an async generator and a
    # coroutine (that writes to the context) differently.
    handler: Callable[..., Any]
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: _Context) -> AsyncIterator[Any]:
            async for item in behaviour(await checked(request, context), context):
                yield item

        handler = stream
    else:

        async def unary(request: Any, context: _Context) -> Any:
            return await behaviour(await checked(request, context), context)

        handler = unary
    make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
    return make(
        handler,
        request_deserializer=request_parser(GetMessageClass(method.input_type)),
        response_serializer=GetMessageClass(method.output_type).SerializeToString,
    )


class SecurityAIServicer(service_pb2_grpc.SecurityAIServicer):
    def __init__(
        self,
        frames: FrameStreamHandler,
        status: StatusReporter,
        events: EventsHandler,
        people: PeopleHandler,
        *,
        refusals: RefusalLog | None = None,
    ) -> None:
        self._refusals = refusals if refusals is not None else RefusalLog()
        self._frames = frames
        self._status = status
        self._events = events
        self._people = people

    # Method names are fixed by the contract.

    # Streaming methods must be async generators themselves: grpc.aio runs any other callable
    # as a synchronous handler in a thread.

    async def SubmitFrames(  # noqa: N802
        self,
        request_iterator: AsyncIterator[frames_pb2.Frame | Unparseable],
        context: ServicerContext[frames_pb2.Frame, frames_pb2.FrameAck],
    ) -> AsyncIterator[frames_pb2.FrameAck]:
        def unparseable(reason: str) -> None:
            self._refusals.refused(context.peer(), _SUBMIT_FRAMES, reason)

        frames = self._frames.stream(request_iterator, on_unparseable=unparseable)
        async for ack in _streaming(context, frames):
            yield ack

    async def GetStatus(  # noqa: N802
        self,
        request: status_pb2.GetStatusRequest,
        context: ServicerContext[status_pb2.GetStatusRequest, status_pb2.ServerStatus],
    ) -> status_pb2.ServerStatus:
        return await _unary(context, self._status.status)

    async def SubscribeEvents(  # noqa: N802
        self,
        request: events_pb2.SubscribeEventsRequest,
        context: ServicerContext[events_pb2.SubscribeEventsRequest, events_pb2.SecurityEvent],
    ) -> AsyncIterator[events_pb2.SecurityEvent]:
        async for event in _streaming(context, self._events.subscribe(request)):
            yield event

    async def AckEvents(  # noqa: N802
        self,
        request: events_pb2.AckEventsRequest,
        context: ServicerContext[events_pb2.AckEventsRequest, events_pb2.AckEventsResponse],
    ) -> events_pb2.AckEventsResponse:
        return await _unary(context, lambda: self._events.ack(request))

    async def Configure(  # noqa: N802
        self,
        request: events_pb2.ConfigureRequest,
        context: ServicerContext[events_pb2.ConfigureRequest, events_pb2.ConfigureResponse],
    ) -> events_pb2.ConfigureResponse:
        return await _unary(context, lambda: self._events.configure(request))

    async def AnalyzeNow(  # noqa: N802
        self,
        request: events_pb2.AnalyzeNowRequest,
        context: ServicerContext[events_pb2.AnalyzeNowRequest, events_pb2.AnalyzeNowResponse],
    ) -> events_pb2.AnalyzeNowResponse:
        return await _unary(context, lambda: self._events.analyze_now(request))

    async def ResetScene(  # noqa: N802
        self,
        request: events_pb2.ResetSceneRequest,
        context: ServicerContext[events_pb2.ResetSceneRequest, events_pb2.ResetSceneResponse],
    ) -> events_pb2.ResetSceneResponse:
        return await _unary(context, lambda: self._events.reset_scene(request))

    async def Feedback(  # noqa: N802
        self,
        request: events_pb2.FeedbackRequest,
        context: ServicerContext[events_pb2.FeedbackRequest, events_pb2.FeedbackResponse],
    ) -> events_pb2.FeedbackResponse:
        return await _unary(context, lambda: self._events.feedback(request))

    async def WatchAnalysis(  # noqa: N802
        self,
        request: events_pb2.WatchAnalysisRequest,
        context: ServicerContext[events_pb2.WatchAnalysisRequest, events_pb2.AnalysisProgress],
    ) -> AsyncIterator[events_pb2.AnalysisProgress]:
        async for note in _streaming(context, self._events.watch(request)):
            yield note

    async def EnrollPerson(  # noqa: N802
        self,
        request: events_pb2.EnrollPersonRequest,
        context: ServicerContext[events_pb2.EnrollPersonRequest, events_pb2.KnownPerson],
    ) -> events_pb2.KnownPerson:
        return await _unary(context, lambda: self._people.enroll(request))

    async def RemovePerson(  # noqa: N802
        self,
        request: events_pb2.RemovePersonRequest,
        context: ServicerContext[events_pb2.RemovePersonRequest, events_pb2.RemovePersonResponse],
    ) -> events_pb2.RemovePersonResponse:
        return await _unary(context, lambda: self._people.remove(request))

    async def ListPeople(  # noqa: N802
        self,
        request: events_pb2.ListPeopleRequest,
        context: ServicerContext[events_pb2.ListPeopleRequest, events_pb2.ListPeopleResponse],
    ) -> events_pb2.ListPeopleResponse:
        return await _unary(context, lambda: self._people.list(request))
