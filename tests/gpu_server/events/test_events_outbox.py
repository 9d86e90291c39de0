"""The SQLite outbox: persistence, ack, cursors, covered frames and the bound."""

from __future__ import annotations

from pathlib import Path

from gpu_server._generated import events_pb2
from gpu_server.events.outbox import Outbox


def event(*shas: str, camera: str = "a") -> events_pb2.SecurityEvent:
    return events_pb2.SecurityEvent(event_id="-".join(shas), camera_id=camera, frame_sha256s=shas)


async def opened(path: Path, **kwargs: object) -> Outbox:
    box = Outbox(path, max_events=int(kwargs.pop("max_events", 100)), **kwargs)  # type: ignore[arg-type]
    await box.open()
    return box


async def test_events_and_covered_frames_survive_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    box = await opened(path)
    first = await box.append(event("s1", "s2"))
    second = await box.append(event("s3"))
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
    seqs = [await box.append(event(f"s{n}")) for n in range(3)]
    assert await box.ack(seqs[1]) == 2
    assert await box.ack(seqs[1]) == 0
    assert [e.sequence for e in await box.read_after(0)] == [seqs[2]]
    assert await box.is_covered("s0")  # resends after the ack are still recognised
    assert await box.ack(seqs[2]) == 1
    await box.close()

    box = await opened(path)
    try:
        # Sequences are never reused, even once every event was acknowledged.
        assert await box.append(event("s9")) > seqs[2]
        assert await box.is_covered("s1")
    finally:
        await box.close()


async def test_covered_frames_expire_only_after_their_event_was_acknowledged(
    tmp_path: Path,
) -> None:
    now = [1_000_000]
    box = await opened(tmp_path / "o.sqlite3", retention_s=10.0, now_ms=lambda: now[0])
    try:
        kept = await box.append(event("unacked"))
        acked = await box.append(event("acked"))
        now[0] += 60_000
        await box.ack(kept - 1)  # prunes, acknowledges nothing
        assert await box.is_covered("unacked")
        assert await box.is_covered("acked")
        newest = await box.append(event("new"))
        await box.ack(acked)
        now[0] += 1  # after the ack the old rows are past retention
        await box.ack(acked)
        assert not await box.is_covered("unacked")
        assert not await box.is_covered("acked")
        assert await box.is_covered("new")
        assert newest > acked
    finally:
        await box.close()


async def test_the_bound_reports_full_but_never_refuses_an_event(tmp_path: Path) -> None:
    box = await opened(tmp_path / "o.sqlite3", max_events=2)
    try:
        await box.append(event("a"))
        assert not box.full
        second = await box.append(event("b"))
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
