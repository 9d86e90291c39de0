"""The event loop's share of forwarding frames: no file I/O on it, its time counted per path,
and camera entities told of new frames at most once per interval.

Times are never asserted here; `bench/ha_loop_time.py` measures them by hand.
"""

from __future__ import annotations

import gc
import hashlib
import time
from datetime import timedelta
from pathlib import Path

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.home_security_ai.cameras import Cameras
from custom_components.home_security_ai.client import FrameIn, FrameSource
from custom_components.home_security_ai.const import signal_camera_updated

from .conftest import wait_for
from .loop_meter import LoopMeter


def _frame(photo: bytes, n: int) -> FrameIn:
    image = photo + f"HSAI-loop-{time.time_ns()}-{n}".encode()
    return FrameIn(
        camera_id="looped",
        image=image,
        client_ref=f"ref{n}",
        captured_at_ms=int(time.time() * 1000),
        source=FrameSource.CAMERA_ENTITY,
        source_ref=f"frame{n}",
        content_sha256=hashlib.sha256(image).hexdigest(),
    )


async def test_the_meter_sees_file_io_on_the_loop(hass: HomeAssistant, tmp_path: Path) -> None:
    """A file opened by a loop callback is noted; one opened in the executor is not."""
    meter = LoopMeter(hass.loop)
    meter.start()
    await hass.async_add_executor_job((tmp_path / "executor.txt").write_bytes, b"x")
    hass.loop.call_soon((tmp_path / "loop.txt").write_bytes, b"x")
    await hass.async_block_till_done()
    sample = meter.stop()
    assert sample.file_calls == [("open", str(tmp_path / "loop.txt"))]
    assert any(name.endswith(".write_bytes") for name in sample.callbacks)


async def test_the_meter_sees_garbage_collection_on_the_loop(hass: HomeAssistant) -> None:
    """A collection run by a loop callback is counted under its generation."""
    meter = LoopMeter(hass.loop)
    meter.start()
    hass.loop.call_soon(gc.collect)
    await hass.async_block_till_done()
    sample = meter.stop()
    assert sample.gc[2].collections >= 1
    assert sample.gc_cpu_s == sum(stats.cpu_s for stats in sample.gc.values())


async def test_forwarding_does_no_file_io_on_the_loop(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, photo: bytes
) -> None:
    """Frames spooled, sent, acked and released by their event: every file operation runs in
    the executor, and the loop time of the submit, send and ack paths is counted."""
    entry = mock_config_entry
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(
        hass, lambda: data.connection.connected and data.events.subscribed, "the streams"
    )
    stream, spool = data.frames, data.spool
    frames = [_frame(photo, n) for n in range(4)]

    meter = LoopMeter(hass.loop)
    meter.start()
    for frame in frames:
        assert await stream.async_submit(frame)
    await wait_for(
        hass,
        lambda: stream.counters.acked == len(frames) and spool.frame_count == 0,
        "the acks and the events that release the frames",
    )
    sample = meter.stop()

    assert sample.file_calls == []
    assert spool.stats.written == spool.stats.released == len(frames)
    assert stream.counters.rejected == stream.counters.dropped == 0
    # Each path's callbacks are counted, with the loop thread's CPU time around them.
    names = list(sample.callbacks)
    # Acks are handled in the client loop's hand-back, a batch per wake-up.
    assert any("_Mailbox._wake" in name for name in names), names
    # gRPC runs on the client loop's thread: none of its callbacks run on this loop.
    assert not any("PollerCompletionQueue" in name for name in names), names
    assert sample.callback_calls >= len(frames)
    assert sample.thread_cpu_s > 0
    assert sample.thread_cpu_s >= sample.callback_cpu_s * 0.5
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_camera_updates_are_merged_per_interval(hass: HomeAssistant) -> None:
    """The first analyzed frame updates the camera's entities at once; the frames within the
    next interval make one update more, at its end, which shows the newest frame."""
    cameras = Cameras(hass, "entry", threat_duration=timedelta(minutes=5), update_interval=1.0)
    cameras.async_register("porch", "porch")
    shown: list[str | None] = []
    # A callback runs at once in the loop, so it sees the state the signal was sent for.
    async_dispatcher_connect(
        hass,
        signal_camera_updated("entry", "porch"),
        callback(lambda: shown.append(cameras["porch"].last_image_ref)),
    )

    for n in range(5):
        cameras.async_frame_analyzed("porch", b"jpeg", f"frame{n}")
    await hass.async_block_till_done()
    assert shown == ["frame0"]
    assert cameras["porch"].frames_accepted == 5

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=2))
    await hass.async_block_till_done()
    assert shown == ["frame0", "frame4"]

    # A rejection is shown at once, and takes the merged update with it.
    cameras.async_frame_analyzed("porch", b"jpeg", "frame5")
    cameras.async_frame_rejected("porch", "corrupt_image")
    await hass.async_block_till_done()
    assert shown == ["frame0", "frame4", "frame5"]
    cameras.async_shutdown()
