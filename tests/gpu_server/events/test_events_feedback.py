"""The household's verdicts through the real server: stored, counted, and calibrating."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from events_testlib import MARK_PERSON_UNSURE, EventsServer, frame_for, scene_png
from sidecar_testlib import AUTH

from gpu_server._generated import events_pb2

FALSE_ALARM = events_pb2.FEEDBACK_VERDICT_FALSE_ALARM


async def _event(server: EventsServer, n: int, after: int) -> events_pb2.SecurityEvent:
    """One batch with an unsure person (not the fast path), closed by its idle time."""
    await server.send(frame_for(scene_png(n, MARK_PERSON_UNSURE), f"p{n}"))
    await server.close_due(31)
    (event,) = await server.events(after=after)
    assert event.kind == events_pb2.EVENT_KIND_SECURITY
    return event


async def _feedback(
    server: EventsServer, event_id: str, verdict: int = FALSE_ALARM, **fields: Any
) -> events_pb2.FeedbackResponse:
    response: events_pb2.FeedbackResponse = await server.stub.Feedback(
        events_pb2.FeedbackRequest(event_id=event_id, verdict=verdict, **fields), metadata=AUTH
    )
    return response


async def test_false_alarms_calibrate_the_case_and_survive_a_restart(
    start_events: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server: EventsServer = await start_events(data_dir=data)
    first = await _event(server, 1, 0)
    assert first.risk_level == events_pb2.RISK_LEVEL_MEDIUM  # a lone unsure person by day
    events = [first]
    for n in (2, 3):
        events.append(await _event(server, n, events[-1].sequence))
    # The frames all carry the same capture hour: one case, person with no zone.
    answers = [
        await _feedback(server, event.event_id, what="our neighbour" if n == 0 else "")
        for n, event in enumerate(events)
    ]
    assert [answer.false_alarms for answer in answers] == [1, 2, 3]
    assert [answer.calibrated for answer in answers] == [False, False, True]
    assert {answer.camera_id for answer in answers} == {"front_door"}

    calibrated = await _event(server, 4, events[-1].sequence)
    assert calibrated.risk_score < first.risk_score
    assert calibrated.risk_level == events_pb2.RISK_LEVEL_LOW
    assert "a false alarm 3 times at this hour" in calibrated.reasoning

    (counts,) = (await server.status()).feedback
    assert (counts.camera_id, counts.false_alarms, counts.confirmed) == ("front_door", 3, 0)
    assert counts.calibrated_cases == 1

    # A confirmation of the same case takes the calibration back.
    confirmed = await _feedback(
        server, calibrated.event_id, events_pb2.FEEDBACK_VERDICT_CORRECT,
        actual_level=events_pb2.RISK_LEVEL_MEDIUM,
    )
    assert not confirmed.calibrated
    await server.server.stop(0)

    again: EventsServer = await start_events(data_dir=data)
    (counts,) = (await again.status()).feedback
    assert (counts.false_alarms, counts.confirmed, counts.calibrated_cases) == (3, 1, 0)


async def test_feedback_on_an_unknown_event_or_without_a_verdict_is_refused(
    start_events: Any,
) -> None:
    server: EventsServer = await start_events()
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await _feedback(server, "no-such-event")
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    # A huge id is refused with a short message that quotes only its start.
    with pytest.raises(grpc.aio.AioRpcError) as huge:
        await _feedback(server, "x" * 1_000_000)
    assert huge.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert len(huge.value.details() or "") <= 300
    event = await _event(server, 1, 0)
    for fields, verdict in (
        ({}, events_pb2.FEEDBACK_VERDICT_UNSPECIFIED),
        ({"what": "x" * 201}, FALSE_ALARM),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _feedback(server, event.event_id, verdict, **fields)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as nameless:
        await _feedback(server, "")
    assert nameless.value.code() is grpc.StatusCode.INVALID_ARGUMENT
