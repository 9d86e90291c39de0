"""Throughput of the sidecar (gRPC, N camera streams, batching) against in-process predict.

Both sides use the same model object on the same images in the same run:
  * sidecar: an in-process server on loopback; each camera is one SubmitFrames stream sending
    JPEG bytes; timed from the first frame sent to the last ack received (transfer, hashing,
    decoding, queueing, batched inference and ack encoding included).
  * in-process: the detector called directly on the already decoded images, one image per
    call (the naive loop) and in batches of max_batch_size (the best case for batching).

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/detect_throughput.py [--model tiny|hog|PATH.pt]
      [--imgsz 320] [--frames 48] [--cameras 4] [--max-batch-size 8] [--max-wait-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# Test-only helpers (tiny models built offline) live beside the tests, outside the product.
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gpu_server._generated import frames_pb2, service_pb2_grpc, status_pb2  # noqa: E402
from gpu_server.config import load_config  # noqa: E402
from gpu_server.ingest.detect import (  # noqa: E402
    Detector,
    DetectorSelection,
    HogPeopleDetector,
    UltralyticsDetector,
)
from gpu_server.server import GRPCServer  # noqa: E402

TOKEN = "bench-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
RESULTS = Path(__file__).resolve().parent / "results" / "detect_throughput.json"


@dataclass
class Workload:
    jpegs: list[list[bytes]]  # per camera
    decoded: list[np.ndarray]  # every frame, BGR, in the same order as the JPEGs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (random-weight YOLO), hog, or a .pt")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--frames", type=int, default=48, help="frames per camera")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--width", type=int, default=640, help="frame width")
    parser.add_argument("--height", type=int, default=None, help="frame height (default 4:3)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--conf", type=float, default=None, help="default 0.0001 tiny, else 0.25")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def build_detector(args: argparse.Namespace, workdir: Path) -> Detector:
    if args.model == "hog":
        return HogPeopleDetector(confidence=args.conf or 0.25, max_side=args.imgsz)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    if args.model == "tiny":
        from testlib.tiny_yolo import build_tiny_yolo

        weights = build_tiny_yolo(workdir / "tiny-yolo.pt")
        conf = args.conf if args.conf is not None else 0.0001
    else:
        weights = Path(args.model)
        conf = args.conf if args.conf is not None else 0.25
    return UltralyticsDetector(weights, device=args.device, confidence=conf, imgsz=args.imgsz)


def make_workload(args: argparse.Namespace) -> Workload:
    """Distinct frames per camera (so dedupe never kicks in), cut from the sample photos."""
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    sources = [Image.open(assets / name).convert("RGB") for name in ("bus.jpg", "zidane.jpg")]
    width, height = args.width, args.height or args.width * 3 // 4
    jpegs: list[list[bytes]] = []
    decoded: list[np.ndarray] = []
    for camera in range(args.cameras):
        source = sources[camera % len(sources)]
        frames = []
        for index in range(args.frames):
            # A slow pan across the photo: every frame differs, like a live camera.
            scale = 0.6 + 0.3 * ((index * 7 + camera) % 10) / 10
            crop_w, crop_h = int(source.width * scale), int(source.height * scale)
            left = (index * 5 + camera * 11) % max(1, source.width - crop_w)
            top = (index * 3 + camera * 7) % max(1, source.height - crop_h)
            view = source.crop((left, top, left + crop_w, top + crop_h)).resize((width, height))
            out = io.BytesIO()
            view.save(out, format="JPEG", quality=85)
            data = out.getvalue()
            frames.append(data)
            rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            decoded.append(np.ascontiguousarray(rgb[:, :, ::-1]))
        jpegs.append(frames)
    return Workload(jpegs, decoded)


def _reencoded(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, format="JPEG", quality=80)
    return out.getvalue()


def run_in_process(detector: Detector, images: list[np.ndarray], batch: int) -> float:
    detector.detect_batch(images[:batch])  # warm-up at this batch shape
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        detector.detect_batch(images[start : start + batch])
    return len(images) / (time.perf_counter() - started)


async def run_sidecar(
    detector: Detector, workload: Workload, args: argparse.Namespace, workdir: Path,
    extra: dict[str, Any] | None = None,
) -> tuple[float, dict[str, Any], list[int]]:
    """`extra`: more configuration overrides (dotted keys)."""
    config = load_config(
        env={},
        overrides={
            "host": "127.0.0.1", "port": 0, "token": TOKEN, "data_dir": workdir / "data",
            "batching.max_batch_size": args.max_batch_size,
            "batching.max_wait_ms": args.max_wait_ms,
            "dedupe.capacity": 0,
            **(extra or {}),
        },
    )
    server = GRPCServer(config, detector=DetectorSelection(detector))
    port = await server.start()
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_send_message_length", config.limits.max_message_bytes)],
    )
    stub = service_pb2_grpc.SecurityAIStub(channel)
    refused: list[str] = []

    async def camera_stream(camera: int, frames: list[bytes], tag: str) -> int:
        requests = (
            frames_pb2.Frame(camera_id=f"camera_{camera}", image=data, client_ref=f"{tag}{i}")
            for i, data in enumerate(frames)
        )
        accepted = 0
        async for ack in stub.SubmitFrames(requests, metadata=AUTH):
            accepted += ack.status == frames_pb2.ACK_STATUS_ACCEPTED
            if ack.status != frames_pb2.ACK_STATUS_ACCEPTED:
                refused.append(str(ack).replace("\n", " ")[-300:])
        return accepted

    try:
        # Warm-up pass on a few frames (not timed), then a fresh counter for the timed pass.
        # Other bytes than the timed frames: a warm-up frame sent again would be a duplicate.
        warm = [_reencoded(data) for data in workload.jpegs[0][: args.max_batch_size]]
        await camera_stream(0, warm, "warm")
        assert server.batcher is not None
        first_batch = len(server.batcher.batch_sizes)
        started = time.perf_counter()
        accepted = await asyncio.gather(
            *(camera_stream(c, frames, "f") for c, frames in enumerate(workload.jpegs))
        )
        elapsed = time.perf_counter() - started
        total = sum(len(frames) for frames in workload.jpegs)
        if sum(accepted) != total:
            raise RuntimeError(
                f"only {sum(accepted)} of {total} frames were accepted; first refusal: "
                f"{refused[:1]}"
            )
        status: status_pb2.ServerStatus = await stub.GetStatus(
            status_pb2.GetStatusRequest(), metadata=AUTH
        )
        batch_sizes = list(server.batcher.batch_sizes)[first_batch:]
    finally:
        await channel.close()
        await server.stop(0)
    stages = {
        name: {
            "count": s.count, "mean_ms": round(s.mean_ms, 2), "p50_ms": round(s.p50_ms, 2),
            "p95_ms": round(s.p95_ms, 2), "max_ms": round(s.max_ms, 2),
        }
        for name, s in sorted(status.stage_latency.items())
    }
    return total / elapsed, stages, batch_sizes


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.machine()
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="hsai-bench-") as tmp:
        workdir = Path(tmp)
        detector = build_detector(args, workdir)
        detector.warmup()
        workload = make_workload(args)
        single_fps = run_in_process(detector, workload.decoded, 1)
        batched_fps = run_in_process(detector, workload.decoded, args.max_batch_size)
        sidecar_fps, stages, batch_sizes = asyncio.run(
            # Detection only, as in-process: no language model or enrichment taking the cores.
            run_sidecar(
                detector, workload, args, workdir, {"llm.enabled": False, "enrich.enabled": False}
            )
        )
    result = {
        "model": args.model if args.model in {"tiny", "hog"} else Path(args.model).name,
        "detector": detector.name,
        "device": detector.device,
        "imgsz": args.imgsz,
        "frame_size": f"{args.width}x{args.height or args.width * 3 // 4}",
        "cameras": args.cameras,
        "frames_total": args.cameras * args.frames,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "sidecar_fps": round(sidecar_fps, 1),
        "in_process_fps_single": round(single_fps, 1),
        "in_process_fps_batched": round(batched_fps, 1),
        "ratio_sidecar_vs_single": round(sidecar_fps / single_fps, 2),
        "ratio_sidecar_vs_batched": round(sidecar_fps / batched_fps, 2),
        "sidecar_mean_batch_size": round(sum(batch_sizes) / max(1, len(batch_sizes)), 2),
        # From GetStatus after the run; the counts include the warm-up frames.
        "stage_latency_ms": stages,
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    shown = args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out
    print(f"\nwrote {shown}")


def print_table(result: dict[str, Any]) -> None:
    print(
        f"model {result['model']} ({result['detector']}) on {result['device']}, "
        f"imgsz {result['imgsz']}, {result['frames_total']} frames of {result['frame_size']} "
        f"from {result['cameras']} cameras"
    )
    print()
    print("| path | frames/s | sidecar ratio |")
    print("| --- | ---: | ---: |")
    print(f"| sidecar over gRPC (mean batch {result['sidecar_mean_batch_size']}) "
          f"| {result['sidecar_fps']} | 1.00 |")
    print(f"| in-process predict, 1 image per call | {result['in_process_fps_single']} "
          f"| {result['ratio_sidecar_vs_single']} |")
    print(f"| in-process predict, {result['max_batch_size']} images per call "
          f"| {result['in_process_fps_batched']} | {result['ratio_sidecar_vs_batched']} |")
    print()
    print("| stage | count | mean ms | p50 ms | p95 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("decode", "queue", "inference", "total"):
        s = result["stage_latency_ms"][name]
        print(f"| {name} | {s['count']} | {s['mean_ms']} | {s['p50_ms']} | {s['p95_ms']} "
              f"| {s['max_ms']} |")


if __name__ == "__main__":
    main()
