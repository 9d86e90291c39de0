"""The client's calls run on a loop thread of their own; the caller's loop gets results back
in batches. Against the real sidecar where a call is involved."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

import pytest
from integration.sidecar_process import Sidecar, bus_photo

from custom_components.home_security_ai.client import (
    AckStatus,
    AuthFailed,
    FrameIn,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    RejectReason,
)
from custom_components.home_security_ai.client import client as client_module
from custom_components.home_security_ai.client.client_loop import (
    CLIENT_LOOP,
    THREAD_NAME,
    _Mailbox,
)

from .frames import upload_frame


def _distinct(count: int) -> list[FrameIn]:
    """The same picture with its own trailing bytes each, so that none is a duplicate."""
    photo, run = bus_photo(), time.time_ns()
    return [upload_frame(f"f{n}", photo + f"HSAI-loop-{run}-{n}".encode()) for n in range(count)]


def _client(sidecar: Sidecar, token: str | None = None) -> HomeSecurityAIClient:
    return HomeSecurityAIClient(sidecar.host, sidecar.port, token or sidecar.token)


async def _tasks_on_client_loop() -> list[str]:
    """The tasks that run on the client loop, besides the one asking. grpc.aio may finish a
    cancelled call's bookkeeping in a task of its own a moment later: that one may end."""

    async def tasks() -> list[str]:
        return [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    running = await CLIENT_LOOP.run(tasks())
    deadline = time.monotonic() + 5
    while running and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        running = await CLIENT_LOOP.run(tasks())
    return running


async def _outgoing(frames: list[FrameIn]) -> AsyncIterator[FrameIn]:
    for frame in frames:
        yield frame


async def test_a_call_runs_on_the_client_loop() -> None:
    """The coroutine runs on the client loop's thread; its result and errors come back."""

    async def where() -> str:
        return threading.current_thread().name

    async def fails() -> None:
        raise HomeSecurityAIError("there")

    assert await CLIENT_LOOP.run(where()) == THREAD_NAME
    with pytest.raises(HomeSecurityAIError, match="there"):
        await CLIENT_LOOP.run(fails())


async def test_a_cancelled_call_ends_there_before_it_returns_here() -> None:
    """Cancelling the caller cancels the call on the client loop and waits for it."""
    ended_there = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended_there.set()

    call = asyncio.create_task(CLIENT_LOOP.run(slow()))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert ended_there.is_set()
    assert await _tasks_on_client_loop() == []


async def test_a_call_failing_after_its_caller_left_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call that ends with an error once its caller was cancelled: nobody wants the error,
    and nothing is logged as never retrieved."""

    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise HomeSecurityAIError("failed while stopping") from None

    call = asyncio.create_task(CLIENT_LOOP.run(fails_when_cancelled()))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    del call
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_the_frame_stream_runs_there_and_acks_come_back_here(
    shared_sidecar: Sidecar,
) -> None:
    """Frames are written and acks read on the client loop; the caller iterates its own
    frames and gets every ack once, on its own thread."""
    frames = [*_distinct(12), upload_frame("bad", b"not a picture")]
    decoded_on: set[str] = set()
    original = client_module.ack_from_proto

    def spy(ack: Any) -> Any:
        decoded_on.add(threading.current_thread().name)
        return original(ack)

    client = _client(shared_sidecar)
    with patch.object(client_module, "ack_from_proto", spy):
        acks = {ack.client_ref: ack async for ack in client.stream_frames(_outgoing(frames))}
    await client.close()

    assert decoded_on == {THREAD_NAME}
    assert set(acks) == {frame.client_ref for frame in frames}
    assert all(acks[f"f{n}"].status == AckStatus.ACCEPTED for n in range(12))
    assert acks["f0"].detections
    assert acks["bad"].reject_reason == RejectReason.NOT_AN_IMAGE
    assert await _tasks_on_client_loop() == []


async def test_acks_that_arrive_together_are_one_wake_up(shared_sidecar: Sidecar) -> None:
    """While the caller's loop is busy, the acks that arrive wait together for it."""
    frames = _distinct(8)
    batches: list[int] = []
    original_take = _Mailbox.take

    async def counting_take(self: _Mailbox[Any]) -> list[Any]:
        batch = await original_take(self)
        if batch and self._loop is asyncio.get_running_loop():
            batches.append(len(batch))
        return batch

    async def outgoing() -> AsyncIterator[FrameIn]:
        for frame in frames:
            yield frame
        # Hold the loop (as a busy Home Assistant would) while the sidecar answers them all.
        time.sleep(3)  # noqa: ASYNC251 - blocking on purpose

    client = _client(shared_sidecar)
    with patch.object(_Mailbox, "take", counting_take):
        acks = [ack async for ack in client.stream_frames(outgoing())]
    await client.close()
    assert len(acks) == len(frames)
    assert max(batches) > 1


async def test_a_refused_token_ends_the_stream(shared_sidecar: Sidecar) -> None:
    """The stream's error is raised to the caller, and nothing is left on the client loop."""
    client = _client(shared_sidecar, "wrong")
    with pytest.raises(AuthFailed):
        async for _ack in client.stream_frames(_outgoing(_distinct(1))):
            pass
    await client.close()
    assert await _tasks_on_client_loop() == []


async def test_a_failing_frame_source_ends_the_call(shared_sidecar: Sidecar) -> None:
    """When reading the caller's next frame fails, the call ends and says why."""

    async def outgoing() -> AsyncIterator[FrameIn]:
        yield _distinct(1)[0]
        raise OSError("the spool's disk went away")

    client = _client(shared_sidecar)
    with pytest.raises(HomeSecurityAIError, match="the spool's disk went away"):
        async for _ack in client.stream_frames(outgoing()):
            pass
    await client.close()
    assert await _tasks_on_client_loop() == []


async def test_closing_the_stream_ends_the_call(shared_sidecar: Sidecar) -> None:
    """A consumer that stops (the entry unloading) ends the call on the client loop before
    its own cancellation completes."""
    frames = _distinct(2)
    got: list[str] = []
    all_acked = asyncio.Event()

    async def outgoing() -> AsyncIterator[FrameIn]:
        for frame in frames:
            yield frame
        await asyncio.Event().wait()  # a live stream: more frames may come

    client = _client(shared_sidecar)

    async def consume() -> None:
        async for ack in client.stream_frames(outgoing()):
            got.append(ack.client_ref)
            if len(got) == len(frames):
                all_acked.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(all_acked.wait(), 60)
    assert await _tasks_on_client_loop()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert await _tasks_on_client_loop() == []
    assert sorted(got) == ["f0", "f1"]
    await client.close()


async def test_an_open_frame_stream_hands_acks_to_a_callback(shared_sidecar: Sidecar) -> None:
    """Frames sent without waiting; acks passed to the callback on the caller's thread, the
    ones that arrive together in one call; the stream ends once sending has ended."""
    frames = _distinct(8)
    caller = threading.get_ident()
    batches: list[list[str]] = []

    def on_acks(acks: list[Any]) -> None:
        assert threading.get_ident() == caller
        batches.append([ack.client_ref for ack in acks])

    client = _client(shared_sidecar)
    call = client.open_frame_stream(on_acks)
    for frame in frames:
        call.send(frame)
    # Hold the loop (as a busy Home Assistant would) while the sidecar answers them all.
    time.sleep(3)  # noqa: ASYNC251 - blocking on purpose
    call.end_sending()
    await call.wait()
    await call.close()
    await client.close()
    assert sorted(ref for batch in batches for ref in batch) == sorted(f.client_ref for f in frames)
    assert len(batches) < len(frames)
    assert await _tasks_on_client_loop() == []


async def test_a_failed_feeder_ends_an_open_frame_stream(shared_sidecar: Sidecar) -> None:
    """`fail` ends the call with the reason, which `wait` raises."""
    client = _client(shared_sidecar)
    call = client.open_frame_stream(lambda acks: None)
    call.send(_distinct(1)[0])
    call.fail(OSError("the spool's disk went away"))
    with pytest.raises(HomeSecurityAIError, match="the spool's disk went away"):
        await call.wait()
    await call.close()
    await client.close()
    assert await _tasks_on_client_loop() == []


async def test_closing_an_open_frame_stream_stops_its_acks(shared_sidecar: Sidecar) -> None:
    """After `close` the call has ended there and no ack is passed on any more."""
    handed: list[Any] = []
    got_one = asyncio.Event()

    def on_acks(acks: list[Any]) -> None:
        handed.extend(acks)
        got_one.set()

    client = _client(shared_sidecar)
    call = client.open_frame_stream(on_acks)
    first = _distinct(2)
    call.send(first[0])
    await asyncio.wait_for(got_one.wait(), 60)
    assert [ack.client_ref for ack in handed] == ["f0"]
    call.send(first[1])
    await call.close()
    assert await _tasks_on_client_loop() == []
    await asyncio.sleep(0.5)
    assert [ack.client_ref for ack in handed] == ["f0"]
    await client.close()
