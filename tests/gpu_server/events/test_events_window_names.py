"""The event window's id and count under their new names, and under the old ones for older
clients: both filled, always alike."""

from __future__ import annotations

from typing import Any

from events_testlib import MARK_PERSON_UNSURE, EventsServer, frame_for, scene_png
from sidecar_testlib import AUTH

from gpu_server._generated import events_pb2


async def test_analyze_now_names_the_window_under_both_names(start_events: Any) -> None:
    server: EventsServer = await start_events()
    await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "a"))
    status = await server.status()
    assert status.events.open_windows == status.events.open_batches == 1

    reply = await server.stub.AnalyzeNow(
        events_pb2.AnalyzeNowRequest(camera_id="front_door"), metadata=AUTH
    )
    assert reply.closed
    assert reply.window_id
    assert reply.batch_id == reply.window_id
    await server.scheduler.wait_idle()
    status = await server.status()
    assert status.events.open_windows == status.events.open_batches == 0


async def test_no_open_window_gives_no_id(start_events: Any) -> None:
    server: EventsServer = await start_events()
    reply = await server.stub.AnalyzeNow(
        events_pb2.AnalyzeNowRequest(camera_id="front_door"), metadata=AUTH
    )
    assert not reply.closed
    assert reply.window_id == reply.batch_id == ""
