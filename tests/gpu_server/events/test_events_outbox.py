"""The SQLite outbox: persistence, ack, cursors, covered frames and the bound."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from events_testlib import stored_event as event

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.context import SceneChangeKind
from gpu_server.events.model import EventKind
from gpu_server.events.outbox import Outbox
from gpu_server.grpc_api.convert import ProtobufEventCodec, event_to_pb
from gpu_server.vocabulary import RiskLevel


async def opened(path: Path, **kwargs: object) -> Outbox:
    box = Outbox(
        path, codec=ProtobufEventCodec(), max_events=int(kwargs.pop("max_events", 100)),
        **kwargs,  # type: ignore[arg-type]
    )
    await box.open()
    return box


async def covers(box: Outbox, sha: str) -> bool:
    return sha in await box.covered([sha])


async def test_events_and_covered_frames_survive_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    box = await opened(path)
    first = (await box.append(event("s1", "s2"))).sequence
    second = (await box.append(event("s3"))).sequence
    assert second > first
    await box.close()

    box = await opened(path)
    try:
        assert box.depth == 2
        assert box.last_sequence == second
        stored = await box.read_after(0)
        assert [(e.sequence, list(e.frame_sha256s)) for e in stored] == [
            (first, ["s1", "s2"]), (second, ["s3"])
        ]
        assert await box.covered(["s1", "s3", "nope"]) == {"s1": first, "s3": second}
        assert [e.sequence for e in await box.read_after(first)] == [second]
    finally:
        await box.close()


async def test_ack_removes_events_but_remembers_their_frames_and_sequences(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    box = await opened(path)
    seqs = [(await box.append(event(f"s{n}"))).sequence for n in range(3)]
    assert await box.ack(seqs[1]) == 2
    assert await box.ack(seqs[1]) == 0
    assert [e.sequence for e in await box.read_after(0)] == [seqs[2]]
    assert await covers(box, "s0")  # resends after the ack are still recognised
    assert await box.ack(seqs[2]) == 1
    await box.close()

    box = await opened(path)
    try:
        # Sequences are never reused, even once every event was acknowledged.
        assert (await box.append(event("s9"))).sequence > seqs[2]
        assert await covers(box, "s1")
    finally:
        await box.close()


async def test_covered_frames_expire_only_after_their_event_was_acknowledged(
    tmp_path: Path,
) -> None:
    now = [1_000_000]
    box = await opened(tmp_path / "o.sqlite3", retention_s=10.0, now_ms=lambda: now[0])
    try:
        kept = (await box.append(event("unacked"))).sequence
        acked = (await box.append(event("acked"))).sequence
        now[0] += 60_000
        await box.ack(kept - 1)  # prunes, acknowledges nothing
        assert await covers(box, "unacked")
        assert await covers(box, "acked")
        newest = (await box.append(event("new"))).sequence
        await box.ack(acked)
        now[0] += 1  # after the ack the old rows are past retention
        await box.ack(acked)
        assert not await covers(box, "unacked")
        assert not await covers(box, "acked")
        assert await covers(box, "new")
        assert newest > acked
    finally:
        await box.close()


async def test_the_bound_reports_full_but_never_refuses_an_event(tmp_path: Path) -> None:
    box = await opened(tmp_path / "o.sqlite3", max_events=2)
    try:
        await box.append(event("a"))
        assert not box.full
        second = (await box.append(event("b"))).sequence
        assert box.full
        await box.append(event("c"))  # frames already accepted must still get their event
        assert box.depth == 3
        await box.ack(second)
        assert not box.full
    finally:
        await box.close()


async def test_waiters_see_the_next_append(tmp_path: Path) -> None:
    box = await opened(tmp_path / "o.sqlite3")
    try:
        changed = box.changed()
        assert not changed.is_set()
        await box.append(event("a"))
        assert changed.is_set()
        assert not box.changed().is_set()
    finally:
        await box.close()


async def test_a_database_written_before_the_domain_events_reads_back(tmp_path: Path) -> None:
    """Earlier outboxes stored the contract's SecurityEvent bytes; they still read back."""
    path = tmp_path / "events.sqlite3"
    old = events_pb2.SecurityEvent(
        event_id="e1", camera_id="porch", kind=events_pb2.EVENT_KIND_SECURITY,
        started_at_ms=1_000, ended_at_ms=2_000, risk_score=72,
        risk_level=events_pb2.RISK_LEVEL_HIGH, summary="A person at the door.",
        detections=[
            events_pb2.EventDetection(
                detection=frames_pb2.Detection(
                    label="person", class_id=0, confidence=0.5,
                    box=frames_pb2.Box(x1=1, y1=2, x2=3, y2=4),
                ),
                frame_sha256="s1", zones=["Porch"],
            )
        ],
        zones=["Porch"], frame_sha256s=["s1"], fallback=True, fallback_reason="rules",
        model="rules", scene_change=events_pb2.SCENE_CHANGE_KIND_MOVED, created_at_ms=3_000,
        incident=events_pb2.Incident(
            incident_id="i1", update=True, camera_ids=["porch", "drive"], started_at_ms=900,
            alert=False, cooldown_remaining_s=42.0,
        ),
    )
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE events (sequence INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL);
        CREATE TABLE covered_frames (
            sha256 TEXT PRIMARY KEY, sequence INTEGER NOT NULL, covered_at_ms INTEGER NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """
    )
    db.execute("INSERT INTO events (payload) VALUES (?)", (old.SerializeToString(),))
    db.execute("INSERT INTO covered_frames VALUES ('s1', 1, 0)")
    db.execute("INSERT INTO meta VALUES ('outbox_id', 'before')")
    db.commit()
    db.close()

    box = await opened(path)
    try:
        assert box.outbox_id == "before"
        (event_read,) = await box.read_after(0)
        assert event_read.sequence == 1
        assert event_read.kind is EventKind.SECURITY
        assert event_read.risk_level is RiskLevel.HIGH
        assert event_read.scene_change is SceneChangeKind.MOVED
        assert event_read.detections[0].detection.label == "person"
        assert event_read.detections[0].zones == ("Porch",)
        assert event_read.incident is not None
        assert event_read.incident.camera_ids == ("porch", "drive")
        old.sequence = 1
        assert event_to_pb(event_read) == old  # nothing lost on the way through the domain
        assert await box.covered(["s1"]) == {"s1": 1}
        assert (await box.append(event("s2"))).sequence == 2
    finally:
        await box.close()
