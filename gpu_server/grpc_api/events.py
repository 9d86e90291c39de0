"""SubscribeEvents, AckEvents, Configure, AnalyzeNow, ResetScene and WatchAnalysis: thin adapters
over the events scheduler; Feedback over the feedback store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

from gpu_server._generated import events_pb2
from gpu_server.core.camera_ids import camera_id_problem
from gpu_server.errors import CursorOutOfRangeError, InvalidRequestError, InvalidSettingsError
from gpu_server.events.scheduler import EventScheduler
from gpu_server.feedback import FeedbackStore
from gpu_server.grpc_api.convert import (
    camera_requests_from_pb,
    event_to_pb,
    feedback_from_pb,
)
from gpu_server.vocabulary import MAX_CAMERAS, MAX_CONFIGURE_BYTES

# Sequences are SQLite integers: signed 64-bit.
MAX_SEQUENCE: Final = 2**63 - 1


def _check_sequence(name: str, value: int) -> None:
    if value > MAX_SEQUENCE:
        raise CursorOutOfRangeError(f"{name} {value} is beyond any event sequence ({MAX_SEQUENCE})")


def _check_camera_id(method: str, camera_id: str) -> None:
    """A camera id as frames carry them; an unknown but well-formed one is not an error."""
    if not camera_id:
        raise InvalidRequestError(f"{method} needs a camera_id")
    problem = camera_id_problem(camera_id)
    if problem is not None:
        raise InvalidRequestError(problem)


class EventsHandler:
    def __init__(self, scheduler: EventScheduler, feedback: FeedbackStore) -> None:
        self._scheduler = scheduler
        self._feedback = feedback

    async def subscribe(
        self, request: events_pb2.SubscribeEventsRequest
    ) -> AsyncIterator[events_pb2.SecurityEvent]:
        # 0 means "everything not yet acknowledged": acknowledged events are gone already.
        _check_sequence("after_sequence", request.after_sequence)
        async for event in self._scheduler.subscribe(request.after_sequence):
            yield event_to_pb(event)

    async def ack(self, request: events_pb2.AckEventsRequest) -> events_pb2.AckEventsResponse:
        _check_sequence("up_to_sequence", request.up_to_sequence)
        removed = await self._scheduler.ack(request.up_to_sequence, request.outbox_id)
        return events_pb2.AckEventsResponse(removed=removed)

    async def configure(
        self, request: events_pb2.ConfigureRequest
    ) -> events_pb2.ConfigureResponse:
        size = request.ByteSize()
        if size > MAX_CONFIGURE_BYTES:
            raise InvalidSettingsError(
                f"the request has {size} bytes; at most {MAX_CONFIGURE_BYTES} are allowed"
            )
        if len(request.cameras) > MAX_CAMERAS:
            # Refused by the scheduler too; checked here first so nothing is converted.
            raise InvalidSettingsError(
                f"{len(request.cameras)} cameras in one call; at most {MAX_CAMERAS} are allowed"
            )
        # Up to MAX_CONFIGURE_BYTES of points: converted off the loop.
        cameras = await asyncio.to_thread(camera_requests_from_pb, request.cameras)
        ids = await self._scheduler.configure(cameras)
        return events_pb2.ConfigureResponse(configured_camera_ids=ids)

    async def analyze_now(
        self, request: events_pb2.AnalyzeNowRequest
    ) -> events_pb2.AnalyzeNowResponse:
        _check_camera_id("AnalyzeNow", request.camera_id)
        closed, window_id = self._scheduler.analyze_now(request.camera_id)
        # batch_id: the window id's older name, still filled for older clients.
        return events_pb2.AnalyzeNowResponse(
            closed=closed, window_id=window_id, batch_id=window_id
        )

    async def reset_scene(
        self, request: events_pb2.ResetSceneRequest
    ) -> events_pb2.ResetSceneResponse:
        _check_camera_id("ResetScene", request.camera_id)
        adopted = await self._scheduler.reset_scene(request.camera_id)
        return events_pb2.ResetSceneResponse(adopted=adopted)

    async def feedback(self, request: events_pb2.FeedbackRequest) -> events_pb2.FeedbackResponse:
        event_id, verdict, actual_level, what = feedback_from_pb(request)
        outcome = await self._feedback.give(
            event_id, verdict, actual_level=actual_level, what=what
        )
        return events_pb2.FeedbackResponse(
            camera_id=outcome.camera_id,
            false_alarms=outcome.false_alarms,
            calibrated=outcome.calibrated,
        )

    async def watch(
        self, request: events_pb2.WatchAnalysisRequest
    ) -> AsyncIterator[events_pb2.AnalysisProgress]:
        if request.camera_id:  # empty: every camera
            _check_camera_id("WatchAnalysis", request.camera_id)
        async for note in self._scheduler.watch(request.camera_id):
            yield events_pb2.AnalysisProgress(
                camera_id=note.camera_id,
                window_id=note.window_id,
                batch_id=note.window_id,  # the older name, for older clients
                text=note.text,
            )
