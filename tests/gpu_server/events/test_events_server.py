"""Frames to events through the real server: windows, fast path, tamper, delivery, ack,
backpressure, Configure and auth."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from events_testlib import (
    MARK_CAR,
    MARK_CUP,
    MARK_PERSON_SURE,
    MARK_PERSON_UNSURE,
    EventsServer,
    ScriptedDetector,
    frame_for,
    scene_png,
)
from sidecar_testlib import AUTH

from gpu_server._generated import events_pb2, frames_pb2, status_pb2

ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
DUPLICATE = frames_pb2.ACK_STATUS_DUPLICATE
SECURITY = events_pb2.EVENT_KIND_SECURITY
NOTHING = events_pb2.EVENT_KIND_NOTHING_TO_REPORT


def shas(acks: list[frames_pb2.FrameAck]) -> set[str]:
    return {ack.content_sha256 for ack in acks}


async def test_an_empty_batch_closes_idle_as_nothing_to_report(start_events: Any) -> None:
    server: EventsServer = await start_events()
    acks = await server.send(*(frame_for(scene_png(n), f"f{n}") for n in range(3)))
    assert [a.status for a in acks] == [ACCEPTED] * 3
    await server.close_due(29)
    assert server.open_windows == 1
    await server.close_due(1)
    (event,) = await server.events()
    assert event.kind == NOTHING
    assert not event.model
    assert set(event.frame_sha256s) == shas(acks)
    assert event.sequence >= 1
    assert event.camera_id == "front_door"


async def test_objects_that_are_no_finding_never_make_a_security_event(
    start_events: Any,
) -> None:
    """A cup on the kitchen counter is no security event on its own; beside a person it is
    context, and the person's event lists it."""
    server: EventsServer = await start_events()
    cups = await server.send(*(frame_for(scene_png(n, MARK_CUP), f"c{n}") for n in range(3)))
    await server.close_due(30)
    (alone,) = await server.events()
    assert alone.kind == NOTHING
    assert set(alone.frame_sha256s) == shas(cups)

    await server.send(frame_for(scene_png(10, MARK_CUP), "d"))
    await server.send(frame_for(scene_png(11, MARK_PERSON_UNSURE), "e"))
    await server.close_due(30)
    events = await server.events(count=2)
    assert events[-1].kind == SECURITY
    assert {d.detection.label for d in events[-1].detections} == {"cup", "person"}


async def test_detections_are_assessed_when_the_window_closes(start_events: Any) -> None:
    server: EventsServer = await start_events()
    acks = []
    for n in range(4):  # a detection every 25 s keeps the batch from going idle
        acks += await server.send(frame_for(scene_png(n, MARK_CAR), f"f{n}"))
        await server.close_due(25)
    assert server.open_windows == 0  # 100 s: the 90 s window has closed it
    (event,) = await server.events()
    assert event.kind == SECURITY
    assert event.model == "rules"
    assert event.fallback
    assert event.risk_level != events_pb2.RISK_LEVEL_UNSPECIFIED
    assert event.summary
    # The audit scores every assessment, the rules' own included.
    rubric = event.audit_rubric
    assert min(rubric.context_used, rubric.coherent, rubric.justified, rubric.actionable) >= 1
    assert rubric.score == pytest.approx(
        (rubric.context_used + rubric.coherent + rubric.justified + rubric.actionable) / 4
    )
    assert set(event.frame_sha256s) == shas(acks[:4])
    assert {d.detection.label for d in event.detections} == {"car"}
    assert all(d.frame_sha256 in event.frame_sha256s for d in event.detections)


async def test_a_sure_person_is_analyzed_at_once_and_the_batch_goes_on(start_events: Any) -> None:
    server: EventsServer = await start_events()
    batched = await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "a"))
    (fast,) = await server.send(frame_for(scene_png(2, MARK_PERSON_SURE), "b"))
    await server.scheduler.wait_idle()
    (event,) = await server.events()
    assert event.fast_path
    assert event.kind == SECURITY
    assert list(event.frame_sha256s) == [fast.content_sha256]
    assert server.open_windows == 1

    batched += await server.send(frame_for(scene_png(3), "c"))
    reply = await server.stub.AnalyzeNow(
        events_pb2.AnalyzeNowRequest(camera_id="front_door"), metadata=AUTH
    )
    assert reply.closed
    assert reply.batch_id
    await server.scheduler.wait_idle()
    (later,) = await server.events(after=event.sequence)
    assert not later.fast_path
    assert set(later.frame_sha256s) == shas(batched)
    empty = await server.stub.AnalyzeNow(
        events_pb2.AnalyzeNowRequest(camera_id="front_door"), metadata=AUTH
    )
    assert not empty.closed


async def test_a_covered_lens_is_a_tamper_event(start_events: Any) -> None:
    server: EventsServer = await start_events()
    (view,) = await server.send(frame_for(scene_png(1), "view"))  # the reference view
    (black,) = await server.send(frame_for(scene_png(2, black=True), "black"))
    await server.scheduler.wait_idle()
    (event,) = await server.events()
    assert event.kind == SECURITY
    assert event.scene_change == events_pb2.SCENE_CHANGE_KIND_COVERED
    # The camera's open window goes with the tamper frame into one event.
    assert list(event.frame_sha256s) == [view.content_sha256, black.content_sha256]
    assert event.risk_score >= 60  # the rules treat tampering as high risk
    assert server.open_windows == 0
    assert "the scene changed suddenly" in event.summary


async def test_a_camera_covered_after_a_person_names_both(start_events: Any) -> None:
    server: EventsServer = await start_events()
    await server.send(frame_for(scene_png(1), "view"))
    await server.send(frame_for(scene_png(2, MARK_PERSON_UNSURE), "person"))
    await server.send(frame_for(scene_png(3, black=True), "black"))
    await server.scheduler.wait_idle()
    (event,) = await server.events()
    assert event.scene_change == events_pb2.SCENE_CHANGE_KIND_COVERED
    assert "the scene changed suddenly; 1 person detected" in event.summary
    assert {d.detection.label for d in event.detections} == {"person"}


async def test_a_lens_covered_for_a_while_is_one_tamper_event(start_events: Any) -> None:
    server: EventsServer = await start_events()
    await server.send(frame_for(scene_png(1), "view"))
    covered = []
    for n in range(2, 8):
        covered += await server.send(frame_for(scene_png(n, black=True), f"black-{n}"))
    await server.scheduler.wait_idle()
    (tamper,) = await server.events()
    assert tamper.scene_change == events_pb2.SCENE_CHANGE_KIND_COVERED
    assert covered[0].content_sha256 in tamper.frame_sha256s
    # The frames after the first continue the same episode: they wait in the camera's window.
    await server.close_due(30)
    (window,) = await server.events(after=tamper.sequence)
    assert window.scene_change != events_pb2.SCENE_CHANGE_KIND_COVERED
    assert shas(covered[1:]) <= set(window.frame_sha256s)


async def test_resent_frames_are_duplicates_in_a_batch_and_after_their_event(
    start_events: Any,
) -> None:
    server: EventsServer = await start_events()
    image = scene_png(1)
    (first,) = await server.send(frame_for(image, "a"))
    (again,) = await server.send(frame_for(image, "a-again"))
    assert (first.status, again.status) == (ACCEPTED, DUPLICATE)
    await server.close_due(30)
    (event,) = await server.events()
    assert list(event.frame_sha256s) == [first.content_sha256]
    await server.ack(event.sequence)
    (late,) = await server.send(frame_for(image, "a-late"))
    assert late.status == DUPLICATE
    assert server.open_windows == 0


async def test_subscribe_replays_then_goes_live_and_resumes_from_a_cursor(
    start_events: Any,
) -> None:
    server: EventsServer = await start_events()
    for n, camera in enumerate(("cam_a", "cam_b")):
        await server.send(frame_for(scene_png(n, MARK_CAR), "x", camera=camera))
    await server.close_due(30)
    call = server.stub.SubscribeEvents(events_pb2.SubscribeEventsRequest(), metadata=AUTH)
    stream = call.__aiter__()
    replayed = [await asyncio.wait_for(stream.__anext__(), 10) for _ in range(2)]
    await server.send(frame_for(scene_png(2, MARK_CAR), "y", camera="cam_c"))
    await server.close_due(30)
    live = await asyncio.wait_for(stream.__anext__(), 10)
    call.cancel()
    sequences = [e.sequence for e in [*replayed, live]]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 3
    assert live.camera_id == "cam_c"

    resumed = await server.events(after=replayed[0].sequence, count=2)
    assert [e.sequence for e in resumed] == sequences[1:]
    assert await server.ack(sequences[1]) == 2
    (left,) = await server.events(after=0)
    assert left.sequence == sequences[2]


async def test_a_full_outbox_refuses_new_frames_until_events_are_acknowledged(
    start_events: Any,
) -> None:
    server: EventsServer = await start_events(events__outbox_max_events=1)
    await server.send(frame_for(scene_png(1), "a"))
    await server.close_due(30)
    (event,) = await server.events()
    (refused,) = await server.send(frame_for(scene_png(2), "b"))
    assert refused.status == frames_pb2.ACK_STATUS_REJECTED
    assert refused.status_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] == 8
    assert refused.reject_reason == frames_pb2.REJECT_REASON_BACKPRESSURE
    # A frame already covered is still answered: it needs no room.
    assert server.open_windows == 0
    status: status_pb2.ServerStatus = await server.status()
    assert status.events.outbox_depth == 1
    assert status.events.outbox_max_events == 1
    await server.ack(event.sequence)
    (taken,) = await server.send(frame_for(scene_png(2), "b"))
    assert taken.status == ACCEPTED


async def test_events_survive_a_restart_on_the_same_data_dir(
    start_events: Any, tmp_path: Any
) -> None:
    data = tmp_path / "kept"
    first: EventsServer = await start_events(data_dir=data)
    (ack,) = await first.send(frame_for(scene_png(1), "a"))
    await first.close_due(30)
    (event,) = await first.events()
    await first.server.stop(0)

    second: EventsServer = await start_events(data_dir=data)
    (again,) = await second.events()
    assert again == event
    (resent,) = await second.send(frame_for(scene_png(1), "a"))
    assert resent.status == DUPLICATE
    assert second.open_windows == 0
    await second.send(frame_for(scene_png(2), "b"))
    await second.close_due(30)
    (newer,) = await second.events(after=event.sequence)
    assert newer.sequence > event.sequence
    assert ack.content_sha256 not in newer.frame_sha256s


def _square_zone(name: str, kind: str) -> events_pb2.Zone:
    points = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    return events_pb2.Zone(
        name=name, kind=kind, points=[events_pb2.Point(x=x, y=y) for x, y in points]
    )


async def test_configure_applies_zones_windows_and_persists(start_events: Any) -> None:
    server: EventsServer = await start_events()
    request = events_pb2.ConfigureRequest(
        cameras=[
            events_pb2.CameraSettings(
                camera_id="porch", display_name="Porch", zones=[_square_zone("Steps", "entry")],
                batch_window_s=10, idle_timeout_s=5, time_zone="Europe/Berlin",
            )
        ]
    )
    reply = await server.stub.Configure(request, metadata=AUTH)
    assert list(reply.configured_camera_ids) == ["porch"]
    saved = json.loads((server.server.config.data_dir / "cameras.json").read_text())
    assert saved["cameras"]["porch"]["time_zone"] == "Europe/Berlin"

    await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "p", camera="porch"))
    await server.close_due(5)  # the camera's own idle timeout, not the default 30 s
    (event,) = await server.events()
    assert list(event.zones) == ["Steps"]
    assert list(event.detections[0].zones) == ["Steps"]

    bad = events_pb2.ConfigureRequest(
        cameras=[events_pb2.CameraSettings(camera_id="porch", time_zone="Mars/Base")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await server.stub.Configure(bad, metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_new_rpcs_need_the_token(start_events: Any) -> None:
    server: EventsServer = await start_events()
    wrong = (("authorization", "Bearer nope"),)
    calls = [
        server.stub.AckEvents(events_pb2.AckEventsRequest(up_to_sequence=1), metadata=wrong),
        server.stub.Configure(events_pb2.ConfigureRequest(), metadata=wrong),
        server.stub.AnalyzeNow(events_pb2.AnalyzeNowRequest(camera_id="a"), metadata=wrong),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for stream in (
        server.stub.SubscribeEvents(events_pb2.SubscribeEventsRequest(), metadata=wrong),
        server.stub.WatchAnalysis(events_pb2.WatchAnalysisRequest(), metadata=wrong),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [item async for item in stream]
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_status_reports_the_events_part(start_events: Any) -> None:
    server: EventsServer = await start_events()
    await server.send(frame_for(scene_png(1), "a"))
    status = await server.status()
    assert status.events.open_batches == 1
    assert status.events.llm_model == ""
    assert status.events.llm_unavailable_reason == "LLM disabled in the settings"
    assert status.language_model.state == status_pb2.LANGUAGE_MODEL_STATE_OFF


@pytest.mark.parametrize(
    ("labels", "confidence", "fast"),
    [
        (("PERSON",), 0.95, True),  # labels match whatever their case
        (("person",), 0.95, True),  # the confidence threshold is inclusive
        (("person",), 0.951, False),
        (("car",), 0.5, False),
    ],
)
async def test_fast_path_boundaries(
    start_events: Any, labels: tuple[str, ...], confidence: float, fast: bool
) -> None:
    server: EventsServer = await start_events(
        events__fast_path_labels=labels, events__fast_path_confidence=confidence
    )
    await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "sure"))  # person at 0.95
    await server.scheduler.wait_idle()
    assert server.open_windows == (0 if fast else 1)
    if fast:
        (event,) = await server.events()
        assert event.fast_path


async def test_a_batch_that_reaches_its_detection_limit_closes_and_a_new_one_opens(
    start_events: Any,
) -> None:
    server: EventsServer = await start_events(events__max_detections_per_batch=3)
    acks = await server.send(*(frame_for(scene_png(n, MARK_CAR), f"car-{n}") for n in range(5)))
    await server.close_due(0)  # no time passes: only the full batch closes
    (full,) = await server.events()
    assert set(full.frame_sha256s) == shas(acks[:3])
    assert server.open_windows == 1
    await server.close_due(30)
    (rest,) = await server.events(after=full.sequence)
    assert set(rest.frame_sha256s) == shas(acks[3:])
    assert rest.event_id != full.event_id


async def test_a_person_walking_past_is_one_incident_alerted_once_then_updated(
    start_events: Any,
) -> None:
    server: EventsServer = await start_events()
    acks = []
    for n in range(5):  # five frames of a confident person, ten seconds apart
        acks += await server.send(frame_for(scene_png(n, MARK_PERSON_SURE), f"walk-{n}"))
        await server.scheduler.wait_idle()
        server.clock.advance(10)
    (alert,) = await server.events()
    assert alert.fast_path
    assert list(alert.frame_sha256s) == [acks[0].content_sha256]
    assert alert.incident.incident_id
    assert alert.incident.alert
    assert not alert.incident.update
    assert list(alert.incident.camera_ids) == ["front_door"]
    assert dict(alert.incident.cooldowns) == {"person": pytest.approx(600)}
    # The other four frames wait in the window and update the same incident.
    await server.close_due(30)
    (update,) = await server.events(after=alert.sequence)
    assert not update.fast_path
    assert set(update.frame_sha256s) == shas(acks[1:])
    assert update.incident.incident_id == alert.incident.incident_id
    assert update.incident.update
    assert not update.incident.alert
    # Two quiet minutes end it.
    await server.close_due(120)
    (ended,) = await server.events(after=update.sequence)
    assert ended.kind == events_pb2.EVENT_KIND_INCIDENT_ENDED
    assert ended.incident.incident_id == alert.incident.incident_id
    assert not ended.frame_sha256s
    assert not ended.incident.alert
    # The next walk past is a new incident, held back by the camera's person cooldown.
    await server.send(frame_for(scene_png(9, MARK_PERSON_SURE), "later"))
    await server.scheduler.wait_idle()
    (later,) = await server.events(after=ended.sequence)
    assert later.fast_path
    assert later.incident.incident_id != alert.incident.incident_id
    assert not later.incident.alert
    assert later.incident.cooldown_remaining_s > 0
    assert 0 < later.incident.cooldowns["person"] < 600


async def test_a_person_crossing_two_cameras_is_one_incident(start_events: Any) -> None:
    server: EventsServer = await start_events()
    await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "drive", camera="driveway"))
    await server.scheduler.wait_idle()
    server.clock.advance(20)
    await server.send(frame_for(scene_png(2, MARK_PERSON_SURE), "porch", camera="porch"))
    await server.scheduler.wait_idle()
    driveway, porch = await server.events(count=2)
    assert porch.incident.incident_id == driveway.incident.incident_id
    assert list(porch.incident.camera_ids) == ["driveway", "porch"]
    assert porch.incident.update
    assert driveway.incident.alert
    assert not porch.incident.alert


async def test_a_person_standing_at_the_door_for_minutes_is_loitering(start_events: Any) -> None:
    """Frames of a person in an entry zone, ten seconds apart by capture time, over two
    windows: the first is someone at the door, the second someone who has stood there for two
    and a half minutes, and its event says so."""
    server: EventsServer = await start_events()
    await server.stub.Configure(
        events_pb2.ConfigureRequest(
            cameras=[
                events_pb2.CameraSettings(
                    camera_id="yard", display_name="Yard",
                    zones=[_square_zone("Back door", "entry")],
                )
            ]
        ),
        metadata=AUTH,
    )
    start_ms = 1_767_639_600_000  # 19:00 UTC: evening, not night

    async def frames(first: int, last: int) -> None:
        for n in range(first, last + 1):
            await server.send(
                frame_for(
                    scene_png(n, MARK_PERSON_UNSURE), f"stand-{n}", camera="yard",
                    at_ms=start_ms + n * 10_000,
                )
            )
        await server.close_due(30)

    await frames(0, 5)  # 0 to 50 s
    (arrived,) = await server.events()
    assert list(arrived.dwell) == []
    assert "has stood" not in arrived.summary
    await frames(6, 15)  # 60 to 150 s
    (stayed,) = await server.events(after=arrived.sequence)
    assert [(item.zone, item.seconds) for item in stayed.dwell] == [("Back door", 150.0)]
    assert "; a person has stood at the back door for 2 minutes." in stayed.summary
    assert "a person loitering in entry zone for 2 minutes (+15)" in stayed.reasoning
    assert stayed.risk_score > arrived.risk_score


async def test_reset_scene_makes_the_current_view_usual(start_events: Any) -> None:
    server: EventsServer = await start_events()
    reset = events_pb2.ResetSceneRequest(camera_id="front_door")
    # Nothing seen yet: nothing to adopt.
    assert not (await server.stub.ResetScene(reset, metadata=AUTH)).adopted
    await server.send(frame_for(scene_png(1), "view"))
    await server.send(frame_for(scene_png(2, black=True), "covered"))
    await server.scheduler.wait_idle()
    (tamper,) = await server.events()
    assert tamper.scene_change == events_pb2.SCENE_CHANGE_KIND_COVERED
    # The household says the new view is fine: it becomes the reference at once.
    assert (await server.stub.ResetScene(reset, metadata=AUTH)).adopted
    await server.send(frame_for(scene_png(3, black=True), "still-covered"))
    await server.scheduler.wait_idle()
    await server.close_due(30)
    (window,) = await server.events(after=tamper.sequence)
    assert window.scene_change == events_pb2.SCENE_CHANGE_KIND_NONE
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await server.stub.ResetScene(events_pb2.ResetSceneRequest(), metadata=AUTH)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_fast_path_threshold_is_the_detectors_unless_configured(
    start_events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A detector whose people are sure from 0.6 (as the embedded SSD's are from 0.5).
    monkeypatch.setattr(ScriptedDetector, "sure_confidence", 0.6)
    server: EventsServer = await start_events()
    assert server.scheduler.fast_path_confidence == 0.6
    await server.send(frame_for(scene_png(1, MARK_PERSON_UNSURE), "person-at-0.60"))
    await server.scheduler.wait_idle()
    (event,) = await server.events()
    assert event.fast_path
    configured: EventsServer = await start_events(events__fast_path_confidence=0.95)
    assert configured.scheduler.fast_path_confidence == 0.95
