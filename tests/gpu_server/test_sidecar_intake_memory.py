"""What decoding really costs in memory, and that it all goes back.

The decode budget's estimate is checked against the peak resident memory each kind of image
takes to decode, measured in a process of its own (tracemalloc does not see libjpeg's or
Pillow's C allocations). Forged PNGs, refused after their decode started, must leave nothing
behind: not in a thread pool, not in a real sidecar after rounds of them.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from sidecar_testlib import AUTH, TOKEN
from testlib.waiting import wait_until

from gpu_server._generated import frames_pb2, service_pb2_grpc
from gpu_server.config import LimitsConfig
from gpu_server.errors import FrameRejectedError, RejectReason
from gpu_server.ingest import embedded_ssd
from gpu_server.ingest.intake import FrameIntake

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
TRUNCATED = frames_pb2.REJECT_REASON_TRUNCATED
BACKPRESSURE = frames_pb2.REJECT_REASON_BACKPRESSURE
pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc to measure memory"
)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(pixels: np.ndarray, colour_type: int, depth: int) -> bytes:
    """A PNG written by hand, so that any colour type and bit depth can be had."""
    height = pixels.shape[0]
    raw = pixels.astype(">u2" if depth == 16 else np.uint8).tobytes()
    row = len(raw) // height
    body = b"".join(b"\x00" + raw[i * row : (i + 1) * row] for i in range(height))
    ihdr = struct.pack(">IIBBBBB", pixels.shape[1], height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(body, 1))
        + _chunk(b"IEND", b"")
    )


def forged_png(seed: int, side: int = 7000, size: int = 57_000, rows: int = 700) -> bytes:
    """A PNG of `size` bytes whose header claims side x side pixels but whose data holds only
    `rows` rows of one colour (they compress a thousandfold; an ancillary chunk pads the file)."""
    row = b"\x00" + bytes([seed % 251]) * (side * 3)
    data = zlib.compress(row * rows, 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data)
    padding = _chunk(b"paDd", bytes(max(0, size - len(head) - 24)))
    return head + padding + _chunk(b"IEND", b"")


def corrupt_png(seed: int, side: int, rows: int) -> bytes:
    """A PNG with all the data its header promises, whose row `rows` has a filter type no
    PNG has: a decoder fills the rows before it (16 MB at 4000 x 1000), then fails."""
    good = b"\x00" + bytes([seed % 251]) * (side * 3)
    blank = b"\x00" + bytes(side * 3)
    broken = b"\x09" + bytes(side * 3)
    data = zlib.compress(good * rows + broken + blank * (side - rows - 1), 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def _encoded(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, **options)
    return out.getvalue()


# Decodes each file given, after a small one of its kind (the libraries' own set-up), and
# prints the peak resident memory each decode added: the high-water mark is reset before it.
MEASURE = r"""
import ctypes, json, sys
from gpu_server.config import LimitsConfig
from gpu_server.ingest.intake import FrameIntake

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

libc = ctypes.CDLL("libc.so.6")
intake = FrameIntake(LimitsConfig(), decode_side=int(sys.argv[1]))
results = []
for small, big in zip(sys.argv[2::2], sys.argv[3::2]):
    warm = open(small, "rb").read()
    intake.decode(warm, intake.inspect(warm))
    data = open(big, "rb").read()
    header = intake.inspect(data)
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident size
    before = status("VmRSS:")
    frame = intake.decode(data, header)
    results.append({"measured": status("VmHWM:") - before, "cost": intake.decode_cost(header)})
    del frame
print(json.dumps(results))
"""


def test_the_budget_counts_what_each_kind_of_decode_really_holds(
    bus_image: Image.Image, tmp_path: Path
) -> None:
    photo = bus_image.resize((2400, 1800))
    small = bus_image.resize((64, 48))
    pixels = np.asarray(photo)
    grey = pixels[:, :, 1]
    wide, wide_grey = pixels.astype(np.uint16) * 257, grey.astype(np.uint16) * 257
    kinds = {
        # Decoded at half size in the DCT domain (1200 on the longer side for a 640 target).
        "baseline JPEG": (_encoded(photo, format="JPEG"), _encoded(small, format="JPEG")),
        # Coefficients of the whole image at full size, whatever the scale.
        "progressive JPEG 4:2:0": (
            _encoded(photo, format="JPEG", progressive=True),
            _encoded(small, format="JPEG", progressive=True),
        ),
        "progressive JPEG 4:4:4": (
            _encoded(photo, format="JPEG", progressive=True, subsampling=0),
            _encoded(small, format="JPEG", progressive=True, subsampling=0),
        ),
        "PNG RGB 8": (png(pixels, 2, 8), png(np.zeros((4, 4, 3)), 2, 8)),
        "PNG RGBA 8": (
            png(np.dstack([pixels, grey]), 6, 8), png(np.zeros((4, 4, 4)), 6, 8)
        ),
        "PNG RGB 16": (png(wide, 2, 16), png(np.zeros((4, 4, 3)), 2, 16)),
        "PNG RGBA 16": (
            png(np.dstack([wide, wide_grey]), 6, 16), png(np.zeros((4, 4, 4)), 6, 16)
        ),
        "PNG grey 16": (png(wide_grey, 0, 16), png(np.zeros((4, 4)), 0, 16)),
        "PNG grey+alpha 8": (png(np.dstack([grey, grey]), 4, 8), png(np.zeros((4, 4, 2)), 4, 8)),
        "PNG palette": (
            _encoded(photo.quantize(256), format="PNG", compress_level=1),
            _encoded(small.quantize(16), format="PNG"),
        ),
    }
    files: list[str] = []
    for index, (big, warm) in enumerate(kinds.values()):
        for name, data in (("small", warm), ("big", big)):
            path = tmp_path / f"{index}-{name}"
            path.write_bytes(data)
            files.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, "640", *files], capture_output=True, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = dict(zip(kinds, json.loads(done.stdout), strict=True))
    for kind, result in results.items():
        measured, cost = result["measured"], result["cost"]
        # Generous both ways: never far under what the decoder holds, nor a guess so high
        # that it would turn good frames away.
        assert cost >= measured / 1.5, (kind, results)
        assert cost <= 2 * measured + 16 * MIB, (kind, results)
    # The progressive JPEG holds several times what the baseline one does at the same scale.
    progressive, baseline = results["progressive JPEG 4:2:0"], results["baseline JPEG"]
    assert progressive["measured"] > 3 * baseline["measured"]


# Decodes forged PNGs from several threads with the garbage collector off, keeping every
# error, as the server's futures and tasks may; then prints how much resident memory stayed.
THREADS = r"""
import ctypes, gc, json, sys, threading
from gpu_server.config import LimitsConfig
from gpu_server.errors import FrameRejectedError
from gpu_server.ingest.intake import FrameIntake

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

libc = ctypes.CDLL("libc.so.6")
files = sys.argv[1:]
intake = FrameIntake(LimitsConfig())
gc.disable()
errors = []
def decode(paths):
    for path in paths:
        data = open(path, "rb").read()
        try:
            intake.decode(data, intake.inspect(data))
        except FrameRejectedError as exc:
            errors.append(exc)
libc.malloc_trim(0)
before = rss()
threads = [threading.Thread(target=decode, args=(files[i::6],)) for i in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_trim(0)
print(json.dumps({"kept": rss() - before, "errors": [str(e) for e in errors]}))
"""


def test_refused_decodes_on_threads_leave_no_memory_for_the_garbage_collector(
    tmp_path: Path,
) -> None:
    paths = []
    for seed in range(12):
        path = tmp_path / f"forged-{seed}.png"
        path.write_bytes(corrupt_png(seed, 4000, 1000))
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", THREADS, *paths], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    # Every one was refused as corrupt, after its decode had filled 16 MB.
    assert len(result["errors"]) == 12
    assert all("corrupt" in message for message in result["errors"])
    # Twelve kept errors holding their images would keep 192 MB.
    assert result["kept"] < 64 * MIB, result["kept"]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_rounds_of_forged_pngs_leave_the_sidecars_memory_where_it_was(
    tmp_path: Path,
) -> None:
    """4 streams x 32 PNGs of about 50 KB, three times, against a real sidecar process: half
    claim 7000x7000 and lack the data (refused before Pillow decodes), half are corrupt after
    4 MB of rows (refused by Pillow); its resident size goes back once it is idle."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        json.dumps({
            "token": TOKEN, "tls": {"mode": "off"}, "detector": {"weights": "hog"},
            "llm": {"enabled": False},
        })
    )
    ready = tmp_path / "ready.json"
    log = tmp_path / "sidecar.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpu_server", "--config", str(config), "--host", "127.0.0.1",
        "--port", "0", "--data-dir", str(tmp_path / "data"), "--models-dir",
        str(tmp_path / "models"), "--ready-file", str(ready),
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.DEVNULL, stderr=log.open("wb"),
    )
    try:
        await wait_until(lambda: ready.exists() or process.returncode is not None, 120)
        assert ready.exists(), log.read_text()[-2000:]
        port = json.loads(ready.read_text())["port"]
        streams = [
            [
                forged_png(seed) if seed % 2 else corrupt_png(seed, 2000, 500)
                for seed in range(stream * 32, stream * 32 + 32)
            ]
            for stream in range(4)
        ]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.SecurityAIStub(channel)

            async def send(stream: int, images: list[bytes]) -> list[frames_pb2.FrameAck]:
                frames = [
                    frames_pb2.Frame(camera_id=f"cam{stream}", image=data, client_ref=str(i))
                    for i, data in enumerate(images)
                ]
                call = stub.SubmitFrames(iter(frames), metadata=AUTH, timeout=300)
                return [ack async for ack in call]

            start = _rss(process.pid)
            for _ in range(3):
                rounds = await asyncio.gather(
                    *(send(stream, images) for stream, images in enumerate(streams))
                )
                reasons = [ack.reject_reason for acks in rounds for ack in acks]
                assert len(reasons) == 128
                # Refused once decoding found the data missing; or, while the budget was
                # full for too long, sent back to be resent later.
                assert set(reasons) <= {TRUNCATED, BACKPRESSURE}, reasons
                assert reasons.count(TRUNCATED) >= 32, reasons
                # The heap is trimmed once the budget has been idle for a few seconds.
                await wait_until(lambda: _rss(process.pid) < start + 300 * MIB, 60)
    finally:
        process.terminate()
        await process.wait()


def test_thin_images_are_refused_by_their_aspect() -> None:
    intake = FrameIntake(LimitsConfig())
    for size in ((1, 16000), (16000, 1), (1201, 100)):
        data = _encoded(Image.new("RGB", size, (90, 90, 90)), format="PNG")
        with pytest.raises(FrameRejectedError, match="12:1") as refused:
            intake.inspect(data)
        assert refused.value.reason is RejectReason.DIMENSIONS_TOO_LARGE
    # At the limit it is taken.
    fits = _encoded(Image.new("RGB", (1200, 100), (90, 90, 90)), format="PNG")
    assert intake.decode(fits, intake.inspect(fits)).pixels.shape == (100, 1200, 3)
    assert FrameIntake(LimitsConfig(max_aspect=40)).inspect(
        _encoded(Image.new("RGB", (1201, 100)), format="PNG")
    ).width == 1201


def _preprocess_peak(image: np.ndarray) -> int:
    tracemalloc.start()
    try:
        rgb, _, _ = embedded_ssd.preprocess(image)
        assert rgb.shape == (embedded_ssd.INPUT_SIZE, embedded_ssd.INPUT_SIZE, 3)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("size", [(1, 4000), (4000, 1), (3840, 320), (320, 3840)])
def test_a_thin_frame_costs_the_embedded_detector_what_a_normal_one_does(
    size: tuple[int, int],
) -> None:
    """The detector's input is built from the frame shrunk, then padded: its working memory
    (numpy's and OpenCV's arrays, which tracemalloc sees) does not grow with the longer side."""
    rng = np.random.default_rng(1)
    normal = _preprocess_peak(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    width, height = size
    thin = _preprocess_peak(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    # Padding to a square first would have held width x width x 3 bytes (48 MB for 4000).
    assert thin <= 2 * normal + 64 * 1024, (thin, normal)
