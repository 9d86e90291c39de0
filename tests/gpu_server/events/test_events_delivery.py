"""Delivery: every accepted frame ends up covered by exactly one stored event, even when an
analysis fails, a twin races its original, or the outbox goes away under a late job."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from events_testlib import MARK_PERSON_SURE, EventsServer, frame_for, scene_png
from sidecar_testlib import AUTH

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.events.model import EventKind, SecurityEvent

ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
DUPLICATE = frames_pb2.ACK_STATUS_DUPLICATE


async def _covering(server: EventsServer, sha: str) -> list[SecurityEvent]:
    stored = await server.scheduler.outbox.read_after(0)
    return [event for event in stored if sha in event.frame_sha256s]


async def test_a_failed_analysis_still_stores_an_event_covering_its_frames(
    start_events: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server: EventsServer = await start_events()
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the enricher broke")

    monkeypatch.setattr(server.scheduler.context_builder, "build", broken)
    with caplog.at_level(logging.ERROR):
        (ack,) = await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "f1"))
        assert ack.status == ACCEPTED
        await server.scheduler.wait_idle()  # the fast path started its analysis at once
    assert "the enricher broke" in caplog.text
    (event,) = await _covering(server, ack.content_sha256)
    assert event.fallback
    assert "the enricher broke" in event.fallback_reason
    assert event.kind is EventKind.SECURITY  # the rules scored the person
    (again,) = await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "f1-again"))
    assert again.status == DUPLICATE
    assert len(await _covering(server, ack.content_sha256)) == 1


async def test_known_content_that_nothing_covers_is_taken_again(start_events: Any) -> None:
    # Covered rows expire at once after the ack; the detection cache still knows the content.
    server: EventsServer = await start_events(events__covered_retention_s=0.0)
    (ack,) = await server.send(frame_for(scene_png(1), "f1"))
    await server.close_due(30)
    (event,) = await server.events()
    await server.ack(event.sequence)
    assert not await server.scheduler.outbox.covered([ack.content_sha256])
    (again,) = await server.send(frame_for(scene_png(1), "f1-again"))
    assert again.status == ACCEPTED
    assert server.open_windows == 1
    await server.close_due(30)
    (second,) = await server.events(after=event.sequence)
    assert list(second.frame_sha256s) == [ack.content_sha256]


async def test_a_twin_covered_while_it_was_analyzed_is_not_claimed_again(
    start_events: Any,
) -> None:
    # No detection cache: the twin is decoded and detected again, as after an eviction.
    server: EventsServer = await start_events(dedupe__capacity=0)
    scheduler = server.scheduler
    outbox = scheduler.outbox
    original_covered = outbox.covered
    held = asyncio.Event()
    release = asyncio.Event()
    hold = [True]

    async def covered(shas: Any) -> dict[str, int]:
        found: dict[str, int] = await original_covered(shas)
        if hold[0]:
            hold[0] = False  # only the twin's first look is held
            held.set()
            await release.wait()
        return found

    scene_checks: list[str] = []
    original_check = scheduler.scene.check

    def check(camera_id: str, pixels: Any) -> Any:
        scene_checks.append(camera_id)
        return original_check(camera_id, pixels)

    outbox.covered = covered
    scheduler.scene.check = check
    image = scene_png(1, MARK_PERSON_SURE)
    twin = asyncio.create_task(server.send(frame_for(image, "twin")))
    await asyncio.wait_for(held.wait(), 10)  # the twin found nothing covering it...
    (first,) = await server.send(frame_for(image, "first"))
    await scheduler.wait_idle()  # ...then the original was taken, analyzed and stored
    release.set()
    (late,) = await asyncio.wait_for(twin, 10)
    await scheduler.wait_idle()
    assert first.status == ACCEPTED
    assert late.status == DUPLICATE
    (event,) = await _covering(server, first.content_sha256)
    assert late.covered_sequence == event.sequence
    assert len(scene_checks) == 1  # the twin never reached the scene baseline


async def test_each_frame_asks_the_outbox_at_most_once(start_events: Any) -> None:
    server: EventsServer = await start_events()
    outbox = server.scheduler.outbox
    original_covered = outbox.covered
    looked_up: list[list[str]] = []

    async def covered(shas: Any) -> dict[str, int]:
        wanted = list(shas)
        looked_up.append(wanted)
        found: dict[str, int] = await original_covered(wanted)
        return found

    outbox.covered = covered
    (first,) = await server.send(frame_for(scene_png(1), "f1"))
    assert looked_up == [[first.content_sha256]]
    (claimed,) = await server.send(frame_for(scene_png(1), "f1-again"))
    assert claimed.status == DUPLICATE
    assert len(looked_up) == 1  # held by an open window: known without the outbox
    await server.close_due(30)
    (event,) = await server.events()
    (covered_ack,) = await server.send(frame_for(scene_png(1), "f1-third"))
    assert covered_ack.covered_sequence == event.sequence
    assert len(looked_up) == 2


async def test_a_duplicate_ack_names_the_event_that_covers_it(start_events: Any) -> None:
    server: EventsServer = await start_events()
    (ack,) = await server.send(frame_for(scene_png(1), "f1"))
    (waiting,) = await server.send(frame_for(scene_png(1), "f1-again"))
    assert waiting.status == DUPLICATE
    assert waiting.covered_sequence == 0  # only in an open batch: keep it spooled
    await server.close_due(30)
    (event,) = await server.events()
    (covered,) = await server.send(frame_for(scene_png(1), "f1-third"))
    assert covered.status == DUPLICATE
    assert covered.covered_sequence == event.sequence
    assert ack.status == ACCEPTED
    assert ack.covered_sequence == 0


async def test_acks_for_another_outbox_or_an_unwritten_sequence_remove_nothing(
    start_events: Any, tmp_path: Path
) -> None:
    server: EventsServer = await start_events(data_dir=tmp_path / "one")
    await server.send(frame_for(scene_png(1), "f1"))
    await server.close_due(30)
    (event,) = await server.events()
    status = await server.status()
    outbox_id = status.events.outbox_id
    assert len(outbox_id) >= 16
    other: EventsServer = await start_events(data_dir=tmp_path / "two")
    assert (await other.status()).events.outbox_id not in ("", outbox_id)

    async def ack(up_to: int, box: str) -> Any:
        return await server.stub.AckEvents(
            events_pb2.AckEventsRequest(up_to_sequence=up_to, outbox_id=box), metadata=AUTH
        )

    for up_to, box in ((event.sequence, "someone-else"), (event.sequence + 1, outbox_id)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ack(up_to, box)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert server.scheduler.outbox.depth == 1
    assert (await ack(event.sequence, outbox_id)).removed == 1
    # The id survives a restart of the same database.
    data = server.server.config.data_dir
    await server.server.stop(0)
    again: EventsServer = await start_events(data_dir=data)
    assert (await again.status()).events.outbox_id == outbox_id


async def test_an_ack_never_counts_or_scans_the_covered_frames(start_events: Any) -> None:
    server: EventsServer = await start_events(events__covered_max_rows=3)
    acks = await server.send(*(frame_for(scene_png(n), f"f{n}") for n in range(5)))
    await server.close_due(30)
    (event,) = await server.events()
    outbox = server.scheduler.outbox
    statements: list[str] = []
    await outbox._run(lambda: outbox._conn().set_trace_callback(statements.append))
    plans: list[str] = []

    def explain() -> None:
        db = outbox._conn()
        for sql in statements:
            if "covered_frames" in sql and sql.lstrip().upper().startswith(("DELETE", "SELECT")):
                plans.extend(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"))

    assert await server.ack(event.sequence) == 1
    await outbox._run(lambda: outbox._conn().set_trace_callback(None))
    await outbox._run(explain)
    assert not [sql for sql in statements if "COUNT(" in sql.upper()]
    assert plans
    assert not [plan for plan in plans if plan.startswith("SCAN covered_frames")]
    # The row bound still holds without counting the table.
    remaining = await outbox.covered(ack.content_sha256 for ack in acks)
    assert len(remaining) == 3


async def test_a_late_job_gives_up_once_the_outbox_is_closed(start_events: Any) -> None:
    server: EventsServer = await start_events()
    (ack,) = await server.send(frame_for(scene_png(1), "f1"))
    scheduler = server.scheduler
    batch = scheduler.windows.close("front_door")
    await server.server.stop(0)  # the batch was taken out before: its job comes late
    job = scheduler.analyze_window(batch)
    with pytest.raises(RuntimeError, match=r"closed|shutdown"):
        await asyncio.wait_for(job, 5.0)
    assert not scheduler.coverage.is_claimed(ack.content_sha256)


async def test_when_even_the_rules_fail_a_confident_person_still_pages(
    start_events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: EventsServer = await start_events()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken")

    monkeypatch.setattr(server.scheduler.context_builder, "build", broken)
    monkeypatch.setattr("gpu_server.events.builder.assess_with_rules", broken)
    (ack,) = await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "f1"))
    await server.scheduler.wait_idle()
    (event,) = await _covering(server, ack.content_sha256)
    assert event.kind is EventKind.SECURITY
    assert event.model == "detector"
    assert event.fallback
    assert event.risk_level.value == "high"
    assert event.summary == "Detected person; this could not be assessed."
    assert [det.detection.label for det in event.detections] == ["person"]
