"""SubmitFrames end to end: real server, real detectors, real gRPC channel."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sidecar_testlib import StartServer, encode_jpeg, frame, png_header

from gpu_server._generated import frames_pb2
from gpu_server.core.detection import Detection
from gpu_server.core.images import BgrImage
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector, UltralyticsDetector
from gpu_server.ingest.detector import Detector

ACCEPTED = frames_pb2.ACK_STATUS_ACCEPTED
DUPLICATE = frames_pb2.ACK_STATUS_DUPLICATE
REJECTED = frames_pb2.ACK_STATUS_REJECTED


def assert_boxes_inside(ack: frames_pb2.FrameAck) -> None:
    for det in ack.detections:
        box = det.box
        assert 0 <= box.x1 <= box.x2 <= ack.image_width
        assert 0 <= box.y1 <= box.y2 <= ack.image_height
        assert 0.0 <= det.confidence <= 1.0
        assert det.label


async def test_yolo_detections_have_the_contract_shape(
    start_server: StartServer, tiny_detector: UltralyticsDetector, bus_jpeg: bytes
) -> None:
    running = await start_server(DetectorSelection(tiny_detector))
    sha = hashlib.sha256(bus_jpeg).hexdigest()

    [ack] = await running.submit([frame(bus_jpeg, "bus-1", sha=sha)])

    assert ack.status == ACCEPTED
    assert ack.status_code == 0
    assert ack.client_ref == "bus-1"
    assert ack.camera_id == "front_door"
    assert ack.content_sha256 == sha
    assert (ack.image_width, ack.image_height) == (810, 1080)
    assert ack.detector == tiny_detector.name
    assert ack.detections, "random weights still give boxes at confidence 0.0001"
    assert_boxes_inside(ack)
    assert all(0 <= d.class_id < 80 for d in ack.detections)
    assert ack.timings.total_ms >= ack.timings.inference_ms > 0


async def test_frames_sent_together_run_as_one_batch(
    start_server: StartServer, tiny_detector: UltralyticsDetector, bus_image: Image.Image
) -> None:
    # A generous wait makes the batch boundary depend on the batch size, not on timing.
    running = await start_server(
        DetectorSelection(tiny_detector), batching__max_batch_size=4, batching__max_wait_ms=10_000
    )
    images = [encode_jpeg(bus_image, quality=q) for q in (70, 75, 80, 85)]

    # Two cameras on two concurrent streams, two frames each.
    acks_a, acks_b = await asyncio.gather(
        running.submit([frame(images[0], "a0", "garden"), frame(images[1], "a1", "garden")]),
        running.submit([frame(images[2], "b0", "porch"), frame(images[3], "b1", "porch")]),
    )

    acks = acks_a + acks_b
    assert sorted(a.client_ref for a in acks) == ["a0", "a1", "b0", "b1"]
    assert all(a.status == ACCEPTED for a in acks)
    batcher = running.server.batcher
    assert batcher is not None
    assert list(batcher.batch_sizes) == [4]
    assert batcher.frames_run == 4


async def test_hog_fallback_finds_people_and_says_why(
    start_server: StartServer, bus_jpeg: bytes, tmp_path: Path
) -> None:
    # Empty models folder, downloads off, and no embedded model either.
    running = await start_server(detector__embedded_model=tmp_path / "no-embedded-model")

    status = await running.status()
    assert status.detector.fallback is True
    assert "no YOLO weights" in status.detector.fallback_reason
    assert "downloads disabled" in status.detector.fallback_reason
    assert "embedded model not found" in status.detector.fallback_reason
    assert (status.detector.name, status.detector.backend) == ("hog-people", "opencv-hog")

    [ack] = await running.submit([frame(bus_jpeg, "bus")])
    assert ack.status == ACCEPTED
    assert ack.detector == "hog-people"
    people = [d for d in ack.detections if d.label == "person" and d.class_id == 0]
    assert people, "the HOG detector should find at least one of the people in bus.jpg"
    assert_boxes_inside(ack)


async def test_each_bad_frame_gets_its_ack_and_the_stream_goes_on(
    start_server: StartServer, hog_detector: HogPeopleDetector, bus_jpeg: bytes
) -> None:
    running = await start_server(
        DetectorSelection(hog_detector), limits__max_frame_bytes=1_000_000
    )
    truncated = bus_jpeg[: len(bus_jpeg) // 2]
    bad = {
        "empty": (frame(b"", "empty"), "EMPTY"),
        "text": (frame(b"hello, not a picture", "text"), "NOT_AN_IMAGE"),
        "pdf": (frame(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "pdf"), "NOT_AN_IMAGE"),
        "zip": (frame(b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "zip"), "NOT_AN_IMAGE"),
        "big": (frame(b"\xff\xd8\xff" + bytes(1_000_001), "big"), "TOO_MANY_BYTES"),
        "truncated": (frame(truncated, "truncated"), "TRUNCATED"),
        "wide": (frame(png_header(100_000, 100), "wide"), "DIMENSIONS_TOO_LARGE"),
        "bomb": (frame(png_header(10_000, 10_000), "bomb"), "DECOMPRESSION_BOMB"),
        "hash": (frame(bus_jpeg, "hash", sha="0" * 64), "HASH_MISMATCH"),
        "camera": (frame(bus_jpeg, "camera", camera="Front Door"), "INVALID_CAMERA_ID"),
        "long_camera": (frame(bus_jpeg, "long_camera", camera="a" * 65), "INVALID_CAMERA_ID"),
    }
    frames = [f for f, _ in bad.values()] + [frame(bus_jpeg, "good")]

    acks = {ack.client_ref: ack for ack in await running.submit(frames)}

    assert set(acks) == {*bad, "good"}
    for ref, (_, reason) in bad.items():
        ack = acks[ref]
        assert ack.status == REJECTED, ref
        assert ack.status_code == 3, ref
        assert frames_pb2.RejectReason.Name(ack.reject_reason) == f"REJECT_REASON_{reason}", (
            ref, ack.message
        )
        assert ack.message, ref
        assert not ack.detections
    assert acks["good"].status == ACCEPTED
    status = await running.status()
    assert (status.frames.rejected, status.frames.accepted) == (len(bad), 1)

    # The "good" frame came after every bad one on the same stream: the stream survived.
    # The bad camera ids carried the good image's bytes, yet it was analyzed only once.
    assert running.server.batcher is not None
    assert running.server.batcher.frames_run == 1


async def test_a_resent_frame_is_a_duplicate_with_the_original_detections(
    start_server: StartServer, tiny_detector: UltralyticsDetector, bus_jpeg: bytes
) -> None:
    running = await start_server(DetectorSelection(tiny_detector))
    [first] = await running.submit([frame(bus_jpeg, "first")])
    [second] = await running.submit([frame(bus_jpeg, "second", camera="garden")])

    assert first.status == ACCEPTED
    assert second.status == DUPLICATE
    assert second.status_code == 0
    assert second.client_ref == "second"
    assert second.detections == first.detections
    assert second.detector == first.detector
    assert (second.image_width, second.image_height) == (first.image_width, first.image_height)
    assert running.server.batcher is not None
    assert running.server.batcher.frames_run == 1
    status = await running.status()
    assert (status.frames.accepted, status.frames.duplicate) == (1, 1)


async def test_the_same_content_sent_concurrently_is_analyzed_once(
    start_server: StartServer, tiny_detector: UltralyticsDetector, bus_jpeg: bytes
) -> None:
    running = await start_server(DetectorSelection(tiny_detector))
    one_stream, *other_streams = await asyncio.gather(
        running.submit([frame(bus_jpeg, "s0-a"), frame(bus_jpeg, "s0-b")]),
        running.submit([frame(bus_jpeg, "s1")]),
        running.submit([frame(bus_jpeg, "s2")]),
    )
    acks = one_stream + [ack for acks in other_streams for ack in acks]

    assert sorted(a.status for a in acks) == [ACCEPTED, DUPLICATE, DUPLICATE, DUPLICATE]
    assert len({tuple(str(d) for d in a.detections) for a in acks}) == 1
    assert running.server.batcher is not None
    assert running.server.batcher.frames_run == 1


class BreakableDetector(Detector):
    """Wraps a real detector; fails on demand to exercise the error path."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name, self.backend, self.device, self.weights = "breakable", "test", "cpu", ""
        self.mode = "ok"

    def detect_batch(self, images: Sequence[BgrImage]) -> list[list[Detection]]:
        if self.mode == "raise":
            raise RuntimeError("secret internals")
        results = self.inner.detect_batch(images)
        return results[:-1] if self.mode == "short" else results


async def test_detector_failures_become_internal_acks(
    start_server: StartServer, hog_detector: HogPeopleDetector, bus_image: Image.Image
) -> None:
    detector = BreakableDetector(hog_detector)
    running = await start_server(DetectorSelection(detector))

    detector.mode = "raise"
    [raised] = await running.submit([frame(encode_jpeg(bus_image, 60), "raise")])
    detector.mode = "short"
    [short] = await running.submit([frame(encode_jpeg(bus_image, 61), "short")])
    detector.mode = "ok"
    [ok] = await running.submit([frame(encode_jpeg(bus_image, 60), "retry")])

    for ack in (raised, short):
        assert ack.status == REJECTED
        assert ack.status_code == 13
        assert ack.reject_reason == frames_pb2.REJECT_REASON_INTERNAL
        assert "secret" not in ack.message
    # A failure is not remembered: the same content is analyzed when resent.
    assert ok.status == ACCEPTED


async def test_png_frames_of_any_mode_are_analyzed(
    start_server: StartServer, hog_detector: HogPeopleDetector
) -> None:
    import io

    running = await start_server(DetectorSelection(hog_detector))
    frames = []
    for mode in ("RGB", "RGBA", "L", "P"):
        out = io.BytesIO()
        Image.fromarray(np.full((90, 120, 3), 40, np.uint8)).convert(mode).save(out, "PNG")
        frames.append(frame(out.getvalue(), mode.lower(), camera=f"cam_{mode.lower()}"))
    acks = await running.submit(frames)
    assert {a.client_ref: (a.status, a.image_width, a.image_height) for a in acks} == {
        m.lower(): (ACCEPTED, 120, 90) for m in ("RGB", "RGBA", "L", "P")
    }
