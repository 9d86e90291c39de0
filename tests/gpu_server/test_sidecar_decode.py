"""Decoding at the detector's size, strictly, and the shared memory budget for it."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image
from sidecar_testlib import encode_jpeg
from testlib.waiting import wait_until

from gpu_server.config import LimitsConfig
from gpu_server.errors import BackpressureError, FrameRejectedError
from gpu_server.ingest.intake import FrameIntake
from gpu_server.ingest.memory import DecodeBudget, default_budget_bytes


@pytest.mark.parametrize(
    ("size", "decoded"),
    [
        ((640, 480), (640, 480)),  # small enough: full size
        ((1279, 959), (1279, 959)),  # not twice the target: full size
        ((1281, 961), (641, 481)),  # halved, sides rounded up
        ((5001, 3333), (1251, 834)),  # a quarter: an eighth would be under 640
        ((6000, 8000), (750, 1000)),  # an eighth
        ((801, 9000), (101, 1125)),  # the longer side decides
    ],
)
def test_jpegs_are_decoded_no_smaller_than_the_detector_needs(
    bus_image: Image.Image, size: tuple[int, int], decoded: tuple[int, int]
) -> None:
    intake = FrameIntake(LimitsConfig(), decode_side=640)
    data = encode_jpeg(bus_image.resize(size), quality=60)
    header = intake.inspect(data)
    assert intake.decoded_size(header) == decoded
    frame = intake.decode(data, header)
    assert frame.pixels.shape == (decoded[1], decoded[0], 3)
    assert (frame.width, frame.height) == size
    # At least the BGR result; a baseline JPEG's row buffers follow the full width only.
    assert decoded[0] * decoded[1] * 3 <= intake.decode_cost(header)
    assert intake.decode_cost(header) <= decoded[0] * decoded[1] * 3 + size[0] * 3 * 64


def test_pngs_grey_and_cmyk_jpegs_decode_to_bgr(bus_image: Image.Image) -> None:
    intake = FrameIntake(LimitsConfig(), decode_side=640)
    small = bus_image.resize((320, 240))
    samples = {}
    for mode in ("L", "CMYK"):
        buffer = io.BytesIO()
        small.convert(mode).save(buffer, format="JPEG", quality=90)
        samples[mode] = buffer.getvalue()
    buffer = io.BytesIO()
    bus_image.resize((1600, 1200)).save(buffer, format="PNG")
    samples["PNG"] = buffer.getvalue()
    for name, data in samples.items():
        frame = intake.decode(data, intake.inspect(data))
        assert frame.pixels.ndim == 3, name
        assert frame.pixels.shape[2] == 3, name
        assert frame.pixels.dtype == np.uint8, name
    # PNGs have no scaled decode: full size.
    png = intake.decode(samples["PNG"], intake.inspect(samples["PNG"]))
    assert png.pixels.shape == (1200, 1600, 3)
    # A colour photo decodes to BGR, as OpenCV and ultralytics expect.
    colour = encode_jpeg(Image.new("RGB", (64, 64), (250, 10, 10)), quality=95)
    pixels = intake.decode(colour, intake.inspect(colour)).pixels
    assert pixels[32, 32, 2] > 200 > pixels[32, 32, 0]


def test_the_default_budget_follows_the_machines_memory() -> None:
    assert 256 * 1024 * 1024 <= default_budget_bytes() <= 2 * 1024**3


async def test_the_budget_lets_frames_in_oldest_first() -> None:
    budget = DecodeBudget(capacity=100, wait_s=5)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, size: int) -> None:
        async with budget.reserve(size):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first", 60))
    await asyncio.sleep(0)
    big = asyncio.create_task(hold("big", 80))  # waits for room
    await asyncio.sleep(0)
    small = asyncio.create_task(hold("small", 10))  # would fit, but must not overtake
    await wait_until(lambda: budget.waiting == 2)
    assert order == ["first"]
    release.set()
    await asyncio.gather(first, big, small)
    assert order == ["first", "big", "small"]
    assert budget.used == 0
    assert budget.peak == 90


async def test_a_wait_too_long_is_backpressure_and_a_cancelled_wait_leaves_no_trace() -> None:
    budget = DecodeBudget(capacity=100, wait_s=0.1)
    async with budget.reserve(100):
        with pytest.raises(BackpressureError):
            async with budget.reserve(1):
                pass
        waiter = asyncio.create_task(budget.reserve(50).__aenter__())
        await wait_until(lambda: budget.waiting == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert budget.waiting == 0
    assert budget.used == 0
    assert budget.refused == 1
    with pytest.raises(FrameRejectedError, match="budget"):
        async with budget.reserve(101):
            pass
