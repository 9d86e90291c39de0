"""Incident clips: an incident's annotated snapshots as a short H.264 MP4 (PyAV).

Each snapshot is shown for one second, in the order they were saved. Browsers play H.264 in
MP4, and the PyAV wheels Home Assistant installs carry libx264. Encoding blocks: run it in the
executor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.video.stream import VideoStream
from PIL import Image

_LOGGER = logging.getLogger(__name__)

# The newest snapshots of a long incident; more would make a clip nobody watches to the end.
MAX_CLIP_FRAMES = 120
# Frames wider than this are scaled down: a clip is for a quick look.
MAX_CLIP_WIDTH = 1280
SECONDS_PER_SNAPSHOT = 1


class ClipError(Exception):
    """No clip could be made of the snapshots."""


def _clip_size(first: Image.Image) -> tuple[int, int]:
    """Return the clip's frame size: the first snapshot's, scaled down, even (for yuv420p)."""
    width, height = first.size
    if width > MAX_CLIP_WIDTH:
        height = round(height * MAX_CLIP_WIDTH / width)
        width = MAX_CLIP_WIDTH
    return max(2, width - width % 2), max(2, height - height % 2)


def make_clip(snapshots: Sequence[Path], target: Path) -> int:
    """Encode the snapshots into an MP4 at `target` (written whole, then renamed); return the
    number of frames. Snapshots that cannot be decoded are left out; raises ClipError when
    none can."""
    frames = 0
    size: tuple[int, int] | None = None
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        # faststart: the index first, so a browser starts playing before the whole file came.
        options = {"movflags": "+faststart"}
        with av.open(str(temporary), mode="w", format="mp4", options=options) as out:
            stream = cast(
                VideoStream, out.add_stream("libx264", rate=Fraction(1, SECONDS_PER_SNAPSHOT))
            )
            stream.pix_fmt = "yuv420p"
            for path in list(snapshots)[-MAX_CLIP_FRAMES:]:
                try:
                    with Image.open(path) as source:
                        picture = source.convert("RGB")
                except (OSError, ValueError, Image.DecompressionBombError) as err:
                    _LOGGER.debug("Leaving %s out of the clip: %s", path.name, err)
                    continue
                if size is None:
                    size = _clip_size(picture)
                    stream.width, stream.height = size
                if picture.size != size:
                    picture = picture.resize(size)
                frame = av.VideoFrame.from_image(picture)
                frame.pts = frames
                frame.time_base = Fraction(SECONDS_PER_SNAPSHOT)
                out.mux(stream.encode(frame))
                frames += 1
            if frames:
                out.mux(stream.encode(None))
        if not frames:
            raise ClipError("none of the snapshots could be read")
        os.replace(temporary, target)
    except (av.FFmpegError, OSError) as err:
        raise ClipError(str(err)) from err
    finally:
        temporary.unlink(missing_ok=True)
    return frames
