"""Events faults through the real server: a prompt version nobody knows, an event outbox that
cannot be written (disk full)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from events_testlib import MARK_PERSON_SURE, EventsServer, frame_for, scene_png, stored_event
from sidecar_testlib import AUTH
from testlib.waiting import wait_until

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.events.outbox import Outbox
from gpu_server.grpc_api.convert import ProtobufEventCodec

ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
DUPLICATE = frames_pb2.ACK_STATUS_DUPLICATE
REJECTED = frames_pb2.ACK_STATUS_REJECTED


async def test_configure_refuses_an_unknown_prompt_version(start_events: Any) -> None:
    server: EventsServer = await start_events()
    bad = events_pb2.ConfigureRequest(
        cameras=[
            events_pb2.CameraSettings(camera_id="porch", prompt_version="v1"),
            events_pb2.CameraSettings(camera_id="yard", prompt_version="v9-nope"),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await server.stub.Configure(bad, metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "v9-nope" in details
    assert "yard" in details
    assert "known versions: v1" in details
    # Nothing of the refused request was applied or saved.
    assert not (server.server.config.data_dir / "cameras.json").exists()

    good = events_pb2.ConfigureRequest(
        cameras=[events_pb2.CameraSettings(camera_id="porch", prompt_version="v1")]
    )
    reply = await server.stub.Configure(good, metadata=AUTH)
    assert list(reply.configured_camera_ids) == ["porch"]
    saved = json.loads((server.server.config.data_dir / "cameras.json").read_text())
    assert saved["cameras"]["porch"]["prompt_version"] == "v1"


def _limit_pages(box: Outbox, pages: int | None) -> Callable[[], int]:
    """SQLite's own size cap: past it, writes fail with SQLITE_FULL like on a full disk."""

    def apply() -> int:
        db = box._conn()
        count = int(db.execute("PRAGMA page_count").fetchone()[0])
        db.execute(f"PRAGMA max_page_count = {pages if pages is not None else count}")
        return count

    return apply


async def test_a_full_database_fails_the_append_with_its_own_error_and_recovers(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "events.sqlite3", codec=ProtobufEventCodec(), max_events=100)
    await box.open()
    try:
        first = (await box.append(stored_event("s0"))).sequence
        await box._run(_limit_pages(box, None))
        big = stored_event(*(f"{n:064x}" for n in range(300)), summary="x" * 20_000)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await box.append(big)
        assert "full" in box.write_error
        assert box.depth == 1
        assert await box.covered([f"{0:064x}"]) == {}

        await box._run(_limit_pages(box, 1_000_000))
        second = (await box.append(big)).sequence
        assert second > first
        assert box.write_error == ""
        assert box.depth == 2
        assert await box.covered([f"{299:064x}"]) == {f"{299:064x}": second}
    finally:
        await box.close()


async def test_frames_whose_event_cannot_be_stored_are_kept_and_new_ones_pushed_back(
    start_events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: EventsServer = await start_events()
    outbox = server.scheduler.outbox
    disk_full = True
    real_append = Outbox._append_sync

    def append(self: Outbox, payload: bytes, shas: list[str]) -> int:
        if disk_full:
            raise sqlite3.OperationalError("database or disk is full")
        return real_append(self, payload, shas)

    monkeypatch.setattr(Outbox, "_append_sync", append)

    # A sure person is analyzed at once; its event cannot be written.
    [first] = await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "a"))
    assert first.status == ACCEPTED
    await wait_until(lambda: bool(outbox.write_error))
    assert "disk is full" in outbox.write_error

    # While nothing can be stored, new frames are pushed back (the client keeps them) ...
    [pushed] = await server.send(frame_for(scene_png(2, MARK_PERSON_SURE), "b"))
    assert pushed.status == REJECTED
    assert pushed.reject_reason == frames_pb2.REJECT_REASON_BACKPRESSURE
    assert pushed.status_code == 8
    assert "cannot be written" in pushed.message
    # ... and the frame already taken stays with its pending event: not analyzed twice.
    [again] = await server.send(frame_for(scene_png(1, MARK_PERSON_SURE), "a2"))
    assert again.status == DUPLICATE

    # The disk recovers: the pending event is stored, and the pushed-back frame is taken.
    disk_full = False
    (stored,) = await server.events()
    assert list(stored.frame_sha256s) == [first.content_sha256]
    assert stored.kind == events_pb2.EVENT_KIND_SECURITY
    assert outbox.write_error == ""
    [resent] = await server.send(frame_for(scene_png(2, MARK_PERSON_SURE), "b2"))
    assert resent.status == ACCEPTED
    # The incident had its early alert already: the second person joins the window.
    await server.close_due(30)
    events = await server.events(count=2)
    assert [list(e.frame_sha256s) for e in events] == [
        [first.content_sha256], [resent.content_sha256]
    ]


async def test_a_cancelled_watch_leaves_no_subscriber_behind(start_events: Any) -> None:
    server: EventsServer = await start_events()
    hub = server.scheduler.hub
    calls = [
        server.stub.WatchAnalysis(
            events_pb2.WatchAnalysisRequest(camera_id=f"cam_{n}"), metadata=AUTH
        )
        for n in range(5)
    ]
    readers = [asyncio.create_task(call.read()) for call in calls]
    await wait_until(lambda: hub.subscribers == 5)
    for call in calls:
        call.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await wait_until(lambda: hub.subscribers == 0)
