"""Exactly-once coverage across a kill -9: a real sidecar process, killed with a batch open,
restarted on the same data dir, and every frame resent."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from events_testlib import frame_for, scene_png

from gpu_server._generated import events_pb2, frames_pb2, service_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
TOKEN = "crash-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
LIMIT_S = 120


def start(tmp_path: Path, name: str, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    ready = tmp_path / f"ready-{name}.json"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HSAI_")}
    environ.update(PYTHONPATH=str(REPO_ROOT), HSAI_LLM_ENABLED="false", HSAI_TOKEN=TOKEN, **env)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gpu_server", "--host", "127.0.0.1", "--port", "0",
            "--insecure-plaintext", "--models-dir", str(tmp_path / "models"),
            "--data-dir", str(tmp_path / "data"), "--ready-file", str(ready),
        ],
        cwd=tmp_path, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline and process.poll() is None:
        if ready.exists():
            return process, int(json.loads(ready.read_text())["port"])
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the sidecar did not start: {process.communicate()[1].decode()[-2000:]}")


def send(stub: service_pb2_grpc.SecurityAIStub, frames: list[frames_pb2.Frame]) -> dict[str, int]:
    acks = stub.SubmitFrames(iter(frames), metadata=AUTH, timeout=60)
    return {ack.client_ref: ack.status for ack in acks}


def read_events(
    stub: service_pb2_grpc.SecurityAIStub, until: set[str], after: int = 0
) -> list[events_pb2.SecurityEvent]:
    """Subscribe and read until every hash in `until` is covered."""
    call = stub.SubscribeEvents(
        events_pb2.SubscribeEventsRequest(after_sequence=after), metadata=AUTH, timeout=60
    )
    got: list[events_pb2.SecurityEvent] = []
    missing = set(until)
    events: Iterator[events_pb2.SecurityEvent] = call
    for event in events:
        got.append(event)
        missing -= set(event.frame_sha256s)
        if not missing:
            break
    call.cancel()
    return got


def batch(prefix: str, camera: str, start: int, count: int) -> list[frames_pb2.Frame]:
    numbers = range(start, start + count)
    return [frame_for(scene_png(n), f"{prefix}{n}", camera=camera) for n in numbers]


def sha_of(frame: frames_pb2.Frame) -> str:
    return hashlib.sha256(frame.image).hexdigest()


def test_frames_are_covered_exactly_once_across_a_kill(tmp_path: Path) -> None:
    acked_set = batch("a", "door", 0, 3)  # covered, event acknowledged before the kill
    unacked_set = batch("b", "yard", 10, 2)  # covered, event not yet acknowledged
    open_set = batch("c", "door", 20, 3)  # in an open batch when the process dies
    delivered: list[events_pb2.SecurityEvent] = []

    # Long windows: nothing closes unless asked to.
    process, port = start(tmp_path, "1", HSAI_BATCH_WINDOW_S="600", HSAI_BATCH_IDLE_S="600")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.SecurityAIStub(channel)
            for frames, camera in ((acked_set, "door"), (unacked_set, "yard")):
                statuses = send(stub, frames)
                assert set(statuses.values()) == {frames_pb2.ACK_STATUS_ACCEPTED}
                closed = stub.AnalyzeNow(
                    events_pb2.AnalyzeNowRequest(camera_id=camera), metadata=AUTH
                )
                assert closed.closed
            first = read_events(stub, {sha_of(f) for f in acked_set + unacked_set})
            delivered += first
            acked = next(e for e in first if sha_of(acked_set[0]) in e.frame_sha256s)
            stub.AckEvents(events_pb2.AckEventsRequest(up_to_sequence=acked.sequence),
                           metadata=AUTH)
            statuses = send(stub, open_set)
            assert set(statuses.values()) == {frames_pb2.ACK_STATUS_ACCEPTED}
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    # Short windows, as Home Assistant's tests use them; resend everything still spooled
    # plus the frames whose events were already delivered.
    process, port = start(tmp_path, "2", HSAI_BATCH_WINDOW_S="3", HSAI_BATCH_IDLE_S="1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.SecurityAIStub(channel)
            statuses = send(stub, acked_set + unacked_set + open_set)
            for frame in acked_set + unacked_set:
                assert statuses[frame.client_ref] == frames_pb2.ACK_STATUS_DUPLICATE
            for frame in open_set:
                assert statuses[frame.client_ref] == frames_pb2.ACK_STATUS_ACCEPTED
            second = read_events(stub, {sha_of(f) for f in unacked_set + open_set})
            delivered += second
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=LIMIT_S)

    # The acknowledged event is never delivered again.
    assert acked.event_id not in {e.event_id for e in second}
    for run in (first, second):
        sequences = [e.sequence for e in run]
        assert sequences == sorted(set(sequences))
    unique = {e.event_id: e for e in delivered}
    # Redelivery of an unacknowledged event is the same event, same sequence.
    assert len({(e.event_id, e.sequence) for e in delivered}) == len(unique)
    covering: dict[str, list[str]] = {}
    for event in unique.values():
        for sha in event.frame_sha256s:
            covering.setdefault(sha, []).append(event.event_id)
    every = {sha_of(f) for f in acked_set + unacked_set + open_set}
    assert set(covering) == every
    assert all(len(ids) == 1 for ids in covering.values())
