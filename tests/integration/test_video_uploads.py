"""Videos in upload folders: sampled to frames, and hostile videos handled without a trace."""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from pathlib import Path
from unittest.mock import patch

import av
import numpy as np
import pytest
from homeassistant.core import HomeAssistant

from custom_components.home_security_ai.client import FrameSource

from .test_sources import _polls, _settled, _watcher


def _video(
    path: Path,
    seconds: float,
    *,
    fps: int = 10,
    container: str = "mp4",
    codec: str = "libx264",
    age: float = 5,
    shade: int = 0,
) -> bytes:
    """Write a real video of changing grey frames (from `shade` on); return its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"  # type: ignore[attr-defined]
        for index in range(round(seconds * fps)):
            picture = np.full((120, 160, 3), (shade + index * 9) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            out.mux(stream.encode(frame))  # type: ignore[attr-defined]
        out.mux(stream.encode(None))  # type: ignore[attr-defined]
    data = path.read_bytes()
    _settled(path, data, age)
    return data


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [
        ("clip.mp4", "mp4", "libx264"),
        ("clip.mkv", "matroska", "libx264"),
        ("clip.avi", "avi", "mpeg4"),
        ("clip.MOV", "mov", "libx264"),
    ],
)
async def test_a_video_is_sampled_once_per_second(
    hass: HomeAssistant, tmp_path: Path, name: str, container: str, codec: str
) -> None:
    """Each second of video becomes a spooled JPEG frame with its offset in the reference."""
    uploads = await _watcher(hass, tmp_path)
    path = tmp_path / "uploads" / "Garden" / name
    _video(path, 3.5, container=container, codec=codec)
    await _polls(uploads.watcher)
    frames = sorted(uploads.frames.spool.frames(), key=lambda frame: frame.captured_at_ms)
    assert [frame.source_ref for frame in frames] == [
        f"Garden/{name}#t={second}.0" for second in range(4)
    ]
    assert {frame.source for frame in frames} == {FrameSource.VIDEO}
    assert {frame.camera_id for frame in frames} == {"garden"}
    times = [frame.captured_at_ms for frame in frames]
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [1000] * 3
    image = await uploads.frames.spool.async_read(frames[0].key)
    assert image is not None
    assert image.image.startswith(b"\xff\xd8\xff")
    assert uploads.watcher.sent_paths == {str(path)}
    await _polls(uploads.watcher)
    assert uploads.frames.spool.frame_count == 4  # sent once


async def test_hostile_videos(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Random bytes named .mp4, a video cut short and a long one each get one clear log line,
    count as handled, and leave only their good frames in the spool."""
    caplog.set_level(logging.INFO)
    uploads = await _watcher(hass, tmp_path)
    folder = tmp_path / "uploads" / "Yard"
    corrupt = folder / "random.mp4"
    _settled(corrupt, os.urandom(40_000))
    whole = _video(tmp_path / "whole.mkv", 6, container="matroska")
    cut = folder / "cut.mkv"
    _settled(cut, whole[: len(whole) // 2])
    long = folder / "long.mp4"
    _video(long, 12, fps=5, shade=1)  # no frame the same as one of the other video

    with patch("custom_components.home_security_ai.sources.video_frames.VIDEO_MAX_FRAMES", 4):
        await _polls(uploads.watcher)
        await _polls(uploads.watcher, 3)

    assert uploads.watcher.sent_paths == {str(corrupt), str(cut), str(long)}
    by_file = Counter(frame.source_ref.split("#")[0] for frame in uploads.frames.spool.frames())
    assert by_file["Yard/long.mp4"] == 4
    assert 0 < by_file["Yard/cut.mkv"] < 6
    assert "Yard/random.mp4" not in by_file
    assert caplog.text.count("Ignoring video Yard/random.mp4: it cannot be decoded") == 1
    assert caplog.text.count("Video Yard/cut.mkv is damaged or cut short") == 1
    assert caplog.text.count("Video Yard/long.mp4 is long (frame cap)") == 1


async def test_a_video_over_the_limits(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A video too big is skipped until it changes; one that takes too long to decode sends
    what it decoded in time."""
    caplog.set_level(logging.INFO)
    uploads = await _watcher(hass, tmp_path)
    huge = tmp_path / "uploads" / "Drive" / "huge.mov"
    slow = tmp_path / "uploads" / "Drive" / "slow.mp4"
    limit = len(_video(slow, 2))
    assert len(_video(huge, 20, container="mov")) > limit
    with (
        patch("custom_components.home_security_ai.sources.uploads.UPLOAD_MAX_VIDEO_BYTES", limit),
        patch("custom_components.home_security_ai.sources.video_frames.VIDEO_DECODE_BUDGET_S", 0.0),
    ):
        await _polls(uploads.watcher, 3)
    assert uploads.watcher.skipped_paths == {str(huge)}
    assert uploads.watcher.sent_paths == {str(slow)}
    assert [frame.source_ref for frame in uploads.frames.spool.frames()] == [
        "Drive/slow.mp4#t=0.0"
    ]
    assert caplog.text.count("Ignoring Drive/huge.mov") == 1
    assert caplog.text.count("Video Drive/slow.mp4 is long (time cap)") == 1


async def test_a_video_waits_while_the_spool_is_nearly_full(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """A video whose frames would fill the spool waits, rather than evicting what waits
    there, and goes whole once there is room."""
    uploads = await _watcher(hass, tmp_path, max_bytes=2000)
    path = tmp_path / "uploads" / "Garden" / "clip.mp4"
    _video(path, 3)
    await _polls(uploads.watcher, 3)
    spool = uploads.frames.spool
    assert spool.frame_count == 0
    assert uploads.watcher.sent_paths == set()
    spool.max_bytes = 10**6
    await _polls(uploads.watcher)
    assert spool.frame_count == 3
    assert spool.stats.evicted == 0
    assert uploads.watcher.sent_paths == {str(path)}
