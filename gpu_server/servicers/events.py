"""SubscribeEvents, AckEvents, Configure, AnalyzeNow and WatchAnalysis: thin adapters over the
events pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gpu_server._generated import events_pb2
from gpu_server.events.pipeline import EventPipeline


class EventsHandler:
    def __init__(self, pipeline: EventPipeline) -> None:
        self._pipeline = pipeline

    async def subscribe(
        self, request: events_pb2.SubscribeEventsRequest
    ) -> AsyncIterator[events_pb2.SecurityEvent]:
        # 0 means "everything not yet acknowledged": acknowledged events are gone already.
        async for event in self._pipeline.subscribe(request.after_sequence):
            yield event

    async def ack(self, request: events_pb2.AckEventsRequest) -> events_pb2.AckEventsResponse:
        removed = await self._pipeline.ack(request.up_to_sequence, request.outbox_id)
        return events_pb2.AckEventsResponse(removed=removed)

    async def configure(
        self, request: events_pb2.ConfigureRequest
    ) -> events_pb2.ConfigureResponse:
        ids = await self._pipeline.configure(list(request.cameras))
        return events_pb2.ConfigureResponse(configured_camera_ids=ids)

    async def analyze_now(
        self, request: events_pb2.AnalyzeNowRequest
    ) -> events_pb2.AnalyzeNowResponse:
        closed, batch_id = self._pipeline.analyze_now(request.camera_id)
        return events_pb2.AnalyzeNowResponse(closed=closed, batch_id=batch_id)

    async def watch(
        self, request: events_pb2.WatchAnalysisRequest
    ) -> AsyncIterator[events_pb2.AnalysisProgress]:
        async for note in self._pipeline.watch(request.camera_id):
            yield events_pb2.AnalysisProgress(
                camera_id=note.camera_id, batch_id=note.batch_id, text=note.text
            )
