"""Hostile or heavy input against a real sidecar: each probe that once hurt it, kept as a test.

Budgets are asserted in bytes and counts (the decode budget's peak, how many lines the JPEG
header parser ran, how often the zones file was written), never in seconds.
"""

from __future__ import annotations

import asyncio
import io
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image
from sidecar_testlib import AUTH, StartServer, encode_jpeg, frame
from testlib.waiting import wait_until

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.config import LimitsConfig
from gpu_server.context import zones as zones_module
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.errors import FrameRejectedError, RejectReason
from gpu_server.ingest.detect import DetectorSelection
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.intake import FrameIntake
from gpu_server.vocabulary import MAX_CAMERAS, MAX_POINTS_PER_ZONE, MAX_ZONES_PER_CAMERA

REJECTED = frames_pb2.ACK_STATUS_REJECTED
ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
INTERNAL = grpc.StatusCode.INTERNAL.value[0]


class CountingDetector(Detector):
    """Finds one person in the middle of every image and remembers the sizes it was given."""

    name = "counting"
    backend = "test"
    device = "cpu"
    weights = ""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.release = threading.Event()
        self.release.set()

    def warmup(self) -> None:
        """Nothing to warm up; keeps `sizes` to the frames the tests send."""

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        self.release.wait(timeout=30)
        out = []
        for image in images:
            height, width = image.shape[:2]
            self.sizes.append((width, height))
            out.append([Detection("person", 0, 0.5, width * 0.25, height * 0.25,
                                  width * 0.75, height * 0.75)])
        return out


@pytest.fixture
def counting() -> CountingDetector:
    return CountingDetector()


def _sof_offset(data: bytes) -> int:
    """Offset of the height field of a baseline JPEG's frame header."""
    index = data.index(b"\xff\xc0")
    return index + 5


def _with_size(data: bytes, width: int, height: int) -> bytes:
    offset = _sof_offset(data)
    return data[:offset] + struct.pack(">HH", height, width) + data[offset + 4 :]


def _sos_end(data: bytes) -> int:
    index = data.index(b"\xff\xda")
    return index + 2 + int.from_bytes(data[index + 2 : index + 4], "big")


def _corruptions(jpeg: bytes, progressive: bytes) -> Iterator[tuple[str, bytes]]:
    for name, data in (("baseline", jpeg), ("progressive", progressive)):
        scan = _sos_end(data)
        for fraction in (0.1, 0.5):
            cut = scan + int((len(data) - scan) * fraction)
            yield f"{name} cut at {fraction:.0%} with an end marker", data[:cut] + b"\xff\xd9"
        zeroed = data[:scan] + bytes(len(data) - scan - 2) + b"\xff\xd9"
        yield f"{name} with its scan zeroed", zeroed
        yield f"{name} with no scan data", data[:scan] + b"\xff\xd9"


@pytest.fixture(scope="module")
def photo(bus_image: Image.Image) -> Image.Image:
    return bus_image


# Frames ----------------------------------------------------------------------------------------


async def test_forged_dimensions_are_refused_before_any_pixel_is_decoded(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    server = await start_server(DetectorSelection(counting))
    small = encode_jpeg(photo.resize((160, 120)))
    acks = await server.submit(
        [
            frame(_with_size(small, 7000, 7000), "square"),
            frame(_with_size(small, 16000, 3000), "wide"),
        ]
    )
    for ack in acks:
        assert ack.status == REJECTED
        assert ack.reject_reason == frames_pb2.REJECT_REASON_TRUNCATED
        assert "promises" in ack.message
    budget = server.server.decode_budget
    assert budget is not None
    assert budget.peak == 0  # nothing was reserved, so nothing was decoded
    assert counting.sizes == []


async def test_a_large_photo_is_decoded_at_the_size_the_detector_needs(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    server = await start_server(DetectorSelection(counting), detector__imgsz=640)
    big = encode_jpeg(photo.resize((6000, 8000)), quality=70)  # a 48-megapixel photo
    (ack,) = await server.submit([frame(big, "big")])
    assert ack.status == ACCEPTED, ack.message
    assert (ack.image_width, ack.image_height) == (6000, 8000)
    # libjpeg scaled it by 1/8 in the DCT domain: 750x1000, not 6000x8000.
    assert counting.sizes == [(750, 1000)]
    budget = server.server.decode_budget
    assert budget is not None
    assert 0 < budget.peak <= 750 * 1000 * 6 < 6000 * 8000 * 3
    assert budget.used == 0
    # Boxes come back in the original image's pixels.
    (det,) = ack.detections
    assert (det.box.x1, det.box.y1, det.box.x2, det.box.y2) == pytest.approx(
        (1500, 2000, 4500, 6000)
    )


async def test_corrupt_scan_data_is_refused_even_with_an_end_marker(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    server = await start_server(DetectorSelection(counting))
    baseline = encode_jpeg(photo)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85, progressive=True)
    cases = list(_corruptions(baseline, buffer.getvalue()))
    acks = await server.submit(frame(data, name) for name, data in cases)
    by_ref = {ack.client_ref: ack for ack in acks}
    for name, _ in cases:
        ack = by_ref[name]
        assert ack.status == REJECTED, name
        assert ack.reject_reason == frames_pb2.REJECT_REASON_TRUNCATED, name
        assert ack.status_code == grpc.StatusCode.INVALID_ARGUMENT.value[0], name
    assert counting.sizes == []


async def test_tiny_images_and_odd_capture_times_are_analyzed_not_retried_forever(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    server = await start_server(DetectorSelection(counting))
    one_pixel = encode_jpeg(Image.new("RGB", (1, 1), (200, 10, 10)))
    odd = [2**53, 2**63 - 1, -5, 1]
    frames = [frame(one_pixel, "tiny")]
    for index, when in enumerate(odd):
        item = frame(encode_jpeg(photo.resize((64 + index, 48))), f"odd-{index}")
        item.captured_at_ms = when
        frames.append(item)
    acks = {ack.client_ref: ack for ack in await server.submit(frames)}
    assert acks["tiny"].status == ACCEPTED, acks["tiny"].message
    for index in range(len(odd)):
        ack = acks[f"odd-{index}"]
        assert ack.status == ACCEPTED, ack.message
        assert "the server's clock was used" in ack.message


def test_fill_bytes_cost_the_header_parser_a_few_steps(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo.resize((64, 48)))
    # 0xFF fill bytes before the frame header are legal padding; 20 MB of them once cost 19 s
    # of CPU. A run of 64 KiB is still read (in one step), a longer one is refused.
    offset = jpeg.index(b"\xff\xc0")
    padded = jpeg[:offset] + b"\xff" * 65_000 + jpeg[offset:]
    intake = FrameIntake(LimitsConfig(max_frame_bytes=32 * 1024 * 1024))
    lines = 0

    def count(frame_: FrameType, event: str, _arg: Any) -> Any:
        nonlocal lines
        if event == "line" and frame_.f_code.co_name == "_jpeg_size":
            lines += 1
        return count

    previous = sys.gettrace()
    sys.settrace(count)
    try:
        header = intake.inspect(padded)
    finally:
        sys.settrace(previous)
    assert (header.width, header.height) == (64, 48)
    assert lines < 200
    with pytest.raises(FrameRejectedError, match="padding") as err:
        intake.inspect(jpeg[:offset] + b"\xff" * 20_000_000 + jpeg[offset:])
    assert err.value.reason is RejectReason.TRUNCATED


def test_too_many_segments_before_the_frame_header_are_refused() -> None:
    comment = b"\xff\xfe\x00\x04ab"
    data = b"\xff\xd8" + comment * 5000 + b"\xff\xd9"
    with pytest.raises(FrameRejectedError) as err:
        FrameIntake(LimitsConfig()).inspect(data)
    assert err.value.reason is RejectReason.TRUNCATED


async def test_frames_wait_for_the_decode_budget_then_get_backpressure(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    # A 16 MiB budget holds one 1400x1400 PNG decode (about 11.8 MB) at a time.
    server = await start_server(
        DetectorSelection(counting),
        limits__decode_budget_bytes=16 * 1024 * 1024,
        limits__decode_wait_s=0.5,
    )
    frames = []
    for index in range(3):
        buffer = io.BytesIO()
        photo.resize((1400, 1400)).rotate(index).save(buffer, format="PNG")
        frames.append(frame(buffer.getvalue(), f"png-{index}"))
    counting.release.clear()  # the first frame holds its share while detection is stuck
    task = asyncio.create_task(server.submit(frames))
    budget = server.server.decode_budget
    assert budget is not None
    await wait_until(lambda: budget.waiting == 2)
    await wait_until(lambda: budget.refused == 2)
    counting.release.set()
    acks = {ack.client_ref: ack for ack in await task}
    statuses = sorted(
        (ack.status, ack.reject_reason, ack.status_code) for ack in acks.values()
    )
    assert statuses == [
        (ACCEPTED, 0, 0),
        (REJECTED, frames_pb2.REJECT_REASON_BACKPRESSURE, 8),
        (REJECTED, frames_pb2.REJECT_REASON_BACKPRESSURE, 8),
    ]
    assert budget.peak <= 16 * 1024 * 1024
    assert budget.used == 0


async def test_a_frame_larger_than_the_whole_budget_is_refused_at_once(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    server = await start_server(
        DetectorSelection(counting), limits__decode_budget_bytes=16 * 1024 * 1024
    )
    buffer = io.BytesIO()
    photo.resize((2000, 2000)).save(buffer, format="PNG")  # 24 MB to decode
    (ack,) = await server.submit([frame(buffer.getvalue(), "huge")])
    assert ack.status == REJECTED
    assert ack.reject_reason == frames_pb2.REJECT_REASON_DECOMPRESSION_BOMB
    assert "budget" in ack.message


async def test_no_malformed_frame_field_gets_internal(
    start_server: StartServer, counting: CountingDetector, photo: Image.Image
) -> None:
    server = await start_server(DetectorSelection(counting))
    good = encode_jpeg(photo.resize((64, 48)))
    huge_text = "x" * 1_000_000
    variants: dict[str, dict[str, Any]] = {
        "camera_id empty": {"camera_id": ""},
        "camera_id huge": {"camera_id": huge_text},
        "camera_id unicode": {"camera_id": "caméra\u202e"},
        "captured_at negative": {"captured_at_ms": -(2**63)},
        "captured_at max": {"captured_at_ms": 2**63 - 1},
        "source unknown": {"source": 99},
        "source_ref huge": {"source_ref": huge_text},
        "sha garbage": {"content_sha256": "zz" * 32},
        "sha huge": {"content_sha256": huge_text},
        "image empty": {"image": b""},
        "image text": {"image": b"GET / HTTP/1.1\r\n\r\n"},
        "image jpeg magic only": {"image": b"\xff\xd8\xff"},
        "image png magic only": {"image": b"\x89PNG\r\n\x1a\n"},
        "image zero size jpeg": {"image": _with_size(good, 0, 0)},
        "client_ref huge": {"client_ref": huge_text},
    }
    frames = []
    for name, fields in variants.items():
        values: dict[str, Any] = {
            "camera_id": "front_door", "image": good, "client_ref": name,
        }
        values.update(fields)
        if "client_ref" not in fields:
            values["client_ref"] = name
        # Every variant is a new image so none is answered as a duplicate of another.
        if "image" not in fields:
            values["image"] = encode_jpeg(photo.resize((64 + len(frames), 48)))
        frames.append(frames_pb2.Frame(**values))
    acks = await server.submit(frames)
    assert len(acks) == len(frames)
    for ack in acks:
        assert ack.status_code != INTERNAL, (ack.client_ref[:40], ack.message)
        assert ack.reject_reason != frames_pb2.REJECT_REASON_INTERNAL


# Cursors ---------------------------------------------------------------------------------------


async def test_cursors_beyond_any_sequence_are_out_of_range(start_server: StartServer) -> None:
    server = await start_server()
    call = server.stub.SubscribeEvents(
        events_pb2.SubscribeEventsRequest(after_sequence=2**64 - 1), metadata=AUTH
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await server.stub.AckEvents(
            events_pb2.AckEventsRequest(up_to_sequence=2**64 - 1), metadata=AUTH
        )
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE


# Configure -------------------------------------------------------------------------------------


def _zone(name: str, points: int = 4) -> events_pb2.Zone:
    ring = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return events_pb2.Zone(
        name=name,
        kind="entry",
        points=[
            events_pb2.Point(x=0.5 + 0.4 * float(np.cos(a)), y=0.5 + 0.4 * float(np.sin(a)))
            for a in ring
        ],
    )


def _camera(camera_id: str, **fields: Any) -> events_pb2.CameraSettings:
    return events_pb2.CameraSettings(camera_id=camera_id, **fields)


@pytest.mark.parametrize(
    ("name", "cameras", "message"),
    [
        ("too many zones", [_camera("a", zones=[_zone(f"z{i}") for i in range(1000)])], "zones"),
        ("too many points", [_camera("a", zones=[_zone("z", 300)])], "points"),
        ("too many cameras", [_camera(f"c{i}") for i in range(MAX_CAMERAS + 1)], "cameras"),
        ("huge display name", [_camera("a", display_name="n" * 1_000_000)], "display_name"),
        ("huge time zone", [_camera("a", time_zone="Europe/" + "x" * 1_000_000)], "time_zone"),
        ("endless window", [_camera("a", batch_window_s=2**32 - 1)], "batch_window_s"),
        ("endless idle", [_camera("a", idle_timeout_s=2**32 - 1)], "idle_timeout_s"),
        ("unknown time zone", [_camera("a", time_zone="Mars/Olympus")], "Mars"),
    ],
)
async def test_configure_refuses_what_would_cost_too_much(
    start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
    name: str,
    cameras: list[events_pb2.CameraSettings],
    message: str,
) -> None:
    server = await start_server()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await server.stub.Configure(events_pb2.ConfigureRequest(cameras=cameras), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    assert message in (err.value.details() or ""), name
    assert len(err.value.details() or "") < 400
    assert all(len(record.getMessage()) < 2000 for record in caplog.records)


async def test_configure_at_every_limit_validates_off_the_loop_and_writes_zones_once(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = await start_server(data_dir=tmp_path / "data")
    writes = 0
    checked_in: set[int] = set()
    real_write = zones_module.atomic_write
    real_check = zones_module.is_simple_polygon

    def counting_write(*args: Any) -> None:
        nonlocal writes
        writes += 1
        real_write(*args)

    def recording_check(points: Any) -> bool:
        checked_in.add(threading.get_ident())
        return real_check(points)

    monkeypatch.setattr(zones_module, "atomic_write", counting_write)
    monkeypatch.setattr(zones_module, "is_simple_polygon", recording_check)
    cameras = [
        _camera(
            f"cam_{index}",
            display_name=f"Camera {index}",
            zones=[_zone(f"zone {z}", MAX_POINTS_PER_ZONE) for z in range(MAX_ZONES_PER_CAMERA)],
            batch_window_s=3600,
        )
        for index in range(MAX_CAMERAS)
    ]
    request = events_pb2.ConfigureRequest(cameras=cameras)
    reply = await server.stub.Configure(request, metadata=AUTH)
    assert len(reply.configured_camera_ids) == MAX_CAMERAS
    assert writes == 1
    assert checked_in
    assert threading.get_ident() not in checked_in  # never on the event loop's thread

    # Restarting reads the zones back without checking every outline again.
    checked_in.clear()
    await server.server.stop(0)
    again = await start_server(data_dir=tmp_path / "data")
    assert checked_in == set()
    assert again.server.events is not None
    assert len(again.server.events.zones.get("cam_3").zones) == MAX_ZONES_PER_CAMERA
