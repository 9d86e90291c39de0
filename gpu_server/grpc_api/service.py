"""The SecurityAI gRPC service, split by concern into frames.py, status.py and events.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from gpu_server._generated import events_pb2, frames_pb2, service_pb2_grpc, status_pb2
from gpu_server.grpc_api.events import EventsHandler
from gpu_server.grpc_api.frames import FrameStreamHandler
from gpu_server.grpc_api.people import PeopleHandler
from gpu_server.grpc_api.status import StatusReporter
from gpu_server.grpc_api.status_codes import status_for

R = TypeVar("R")


async def _unary(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[R]]) -> R:
    try:
        return await call()
    except Exception as exc:
        code, message = status_for(exc)
        await context.abort(code, message)
        raise  # abort() always raises; this keeps type checkers informed


async def _streaming(
    context: grpc.aio.ServicerContext, items: AsyncIterator[R]
) -> AsyncIterator[R]:
    try:
        async for item in items:
            yield item
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        code, message = status_for(exc)
        await context.abort(code, message)


class SecurityAIServicer(service_pb2_grpc.SecurityAIServicer):  # type: ignore[misc]
    def __init__(
        self,
        frames: FrameStreamHandler,
        status: StatusReporter,
        events: EventsHandler,
        people: PeopleHandler,
    ) -> None:
        self._frames = frames
        self._status = status
        self._events = events
        self._people = people

    # Method names are fixed by the contract.

    # Streaming methods must be async generators themselves: grpc.aio runs any other callable
    # as a synchronous handler in a thread.

    async def SubmitFrames(  # noqa: N802
        self,
        request_iterator: AsyncIterator[frames_pb2.Frame],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[frames_pb2.FrameAck]:
        async for ack in _streaming(context, self._frames.stream(request_iterator)):
            yield ack

    async def GetStatus(  # noqa: N802
        self, request: status_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> status_pb2.ServerStatus:
        return await _unary(context, self._status.status)

    async def SubscribeEvents(  # noqa: N802
        self, request: events_pb2.SubscribeEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.SecurityEvent]:
        async for event in _streaming(context, self._events.subscribe(request)):
            yield event

    async def AckEvents(  # noqa: N802
        self, request: events_pb2.AckEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.AckEventsResponse:
        return await _unary(context, lambda: self._events.ack(request))

    async def Configure(  # noqa: N802
        self, request: events_pb2.ConfigureRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ConfigureResponse:
        return await _unary(context, lambda: self._events.configure(request))

    async def AnalyzeNow(  # noqa: N802
        self, request: events_pb2.AnalyzeNowRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.AnalyzeNowResponse:
        return await _unary(context, lambda: self._events.analyze_now(request))

    async def ResetScene(  # noqa: N802
        self, request: events_pb2.ResetSceneRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ResetSceneResponse:
        return await _unary(context, lambda: self._events.reset_scene(request))

    async def Feedback(  # noqa: N802
        self, request: events_pb2.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.FeedbackResponse:
        return await _unary(context, lambda: self._events.feedback(request))

    async def WatchAnalysis(  # noqa: N802
        self, request: events_pb2.WatchAnalysisRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.AnalysisProgress]:
        async for note in _streaming(context, self._events.watch(request)):
            yield note

    async def EnrollPerson(  # noqa: N802
        self, request: events_pb2.EnrollPersonRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.KnownPerson:
        return await _unary(context, lambda: self._people.enroll(request))

    async def RemovePerson(  # noqa: N802
        self, request: events_pb2.RemovePersonRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.RemovePersonResponse:
        return await _unary(context, lambda: self._people.remove(request))

    async def ListPeople(  # noqa: N802
        self, request: events_pb2.ListPeopleRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ListPeopleResponse:
        return await _unary(context, lambda: self._people.list(request))
