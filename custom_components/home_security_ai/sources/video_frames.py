"""Frames sampled from an uploaded video (PyAV), so cameras that upload only clips are analysed.

One frame per second of video, as JPEG, from the start: at most VIDEO_MAX_FRAMES frames, no
further than VIDEO_MAX_SECONDS into the video, and no longer than VIDEO_DECODE_BUDGET_S of
decoding, so an endless or huge file costs a bounded amount. A video that breaks off keeps the
frames decoded before the damage. Decoding blocks: run it in the executor.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import av
from av.container import InputContainer

_LOGGER = logging.getLogger(__name__)

VIDEO_SAMPLE_EVERY_S = 1.0
VIDEO_MAX_FRAMES = 60
VIDEO_MAX_SECONDS = 120.0
# Wall-clock seconds of decoding one file may take (a tiny-frame, very high-rate video).
VIDEO_DECODE_BUDGET_S = 20.0
# Sampled frames larger than this are scaled down; the sidecar analyses far smaller ones.
VIDEO_MAX_FRAME_WIDTH = 1920
_JPEG_QUALITY = 85


class VideoError(Exception):
    """The file is not a video that can be decoded (corrupt, or no video stream)."""


class SampleEnd(StrEnum):
    """Why sampling stopped."""

    END = "end"  # the whole video was read
    FRAME_CAP = "frame_cap"
    DURATION_CAP = "duration_cap"
    TIME_CAP = "time_cap"
    DAMAGED = "damaged"  # the video broke off (truncated or corrupt further in)


@dataclass(frozen=True, kw_only=True)
class SampledFrame:
    """One sampled frame: seconds from the video's start, and the JPEG."""

    offset_s: float
    jpeg: bytes


@dataclass(frozen=True, kw_only=True)
class VideoSample:
    """The frames sampled from one video, why sampling stopped and the video's duration."""

    frames: tuple[SampledFrame, ...]
    end: SampleEnd
    duration_s: float | None
    detail: str = ""


def _jpeg(frame: av.VideoFrame) -> bytes:
    picture = frame.to_image()
    if picture.width > VIDEO_MAX_FRAME_WIDTH:
        height = max(1, round(picture.height * VIDEO_MAX_FRAME_WIDTH / picture.width))
        picture = picture.resize((VIDEO_MAX_FRAME_WIDTH, height))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()


def _duration(container: InputContainer) -> float | None:
    if container.duration is None or container.duration <= 0:
        return None
    return float(container.duration) / av.time_base


def sample_video(path: str) -> VideoSample:
    """Return frames sampled once per VIDEO_SAMPLE_EVERY_S from the video at `path`.

    Raises VideoError when the file cannot be opened as a video or yields no frame at all.
    """
    started = time.monotonic()
    try:
        container = av.open(path, mode="r")
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(str(err)) from err
    with container:
        if not container.streams.video:
            raise VideoError("it holds no video stream")
        stream = container.streams.video[0]
        duration = _duration(container)
        frames: list[SampledFrame] = []
        end = SampleEnd.END
        detail = ""
        first: float | None = None
        next_at = 0.0
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if frames and time.monotonic() - started > VIDEO_DECODE_BUDGET_S:
                    end = SampleEnd.TIME_CAP
                    break
                # Some streams carry no timestamps (the stubs say otherwise for video frames).
                seconds: float | None = frame.time
                if seconds is not None:
                    first = seconds if first is None else first
                    at = seconds - first
                else:  # no timestamps: count frames at the stream's rate
                    rate = float(stream.average_rate or 1)
                    at = (decoded - 1) / rate
                if at > VIDEO_MAX_SECONDS:
                    end = SampleEnd.DURATION_CAP
                    break
                if at + 1e-6 < next_at:
                    continue
                frames.append(SampledFrame(offset_s=round(at, 1), jpeg=_jpeg(frame)))
                next_at = at + VIDEO_SAMPLE_EVERY_S
                if len(frames) >= VIDEO_MAX_FRAMES:
                    end = SampleEnd.FRAME_CAP
                    break
        except (av.FFmpegError, ValueError, MemoryError) as err:
            end, detail = SampleEnd.DAMAGED, str(err)
    if not frames:
        raise VideoError(detail or "no frame could be decoded")
    last = frames[-1].offset_s
    if end is SampleEnd.END and duration is not None and last + 2 * VIDEO_SAMPLE_EVERY_S < duration:
        # Some containers end quietly where the file was cut off.
        end, detail = SampleEnd.DAMAGED, f"it stops at {last:.1f} s of its {duration:.1f} s"
    return VideoSample(frames=tuple(frames), end=end, duration_s=duration, detail=detail)
