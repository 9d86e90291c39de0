"""Frames to events end to end through a real in-process sidecar.

N cameras each stream frames at a steady rate on their own SubmitFrames call; one
SubscribeEvents call receives the events. Latency of a frame = from when it was sent to when the
event covering it arrived, so it includes the batch window by design: with short windows it
shows the pipeline's own overhead on top of the window. Detector: OpenCV HOG people (real, CPU)
on the ultralytics bus photo, varied by one pixel per frame so every frame is new; risk analysis
by the rules (default) or the LLM (`--llm`).

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/events_e2e.py [--cameras 4] [--frames 20] [--fps 5]
      [--window 2] [--idle 1] [--llm]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gpu_server._generated import events_pb2, frames_pb2, service_pb2_grpc  # noqa: E402
from gpu_server.config import load_config  # noqa: E402
from gpu_server.pipeline.detect import DetectorSelection, HogPeopleDetector  # noqa: E402
from gpu_server.server import GRPCServer  # noqa: E402

TOKEN = "bench-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def base_image() -> Image.Image:
    import ultralytics

    path = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    return Image.open(path).convert("RGB").resize((640, 480))


def frame_bytes(base: np.ndarray, camera: int, index: int) -> bytes:
    pixels = base.copy()
    # An 8x8 block survives JPEG quantisation, so every frame has its own hash.
    pixels[0:8, 0:8] = (camera * 40 % 256, index * 7 % 256, index // 36 * 50 % 256)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp())
    config = load_config(env={}, overrides={
        "host": "127.0.0.1", "port": 0, "token": TOKEN, "data_dir": data / "data",
        "models_dir": data / "models", "llm.enabled": args.llm,
        "events.window_s": args.window, "events.idle_s": args.idle, "events.tick_s": 0.05,
    })
    server = GRPCServer(config, detector=DetectorSelection(HogPeopleDetector()))
    port = await server.start()
    base = np.asarray(base_image(), dtype=np.uint8)
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    kinds: dict[int, int] = {}
    total = args.cameras * args.frames
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = service_pb2_grpc.SecurityAIStub(channel)
        events_call = stub.SubscribeEvents(events_pb2.SubscribeEventsRequest(), metadata=AUTH)

        async def receive() -> None:
            async for event in events_call:
                now = time.perf_counter()
                kinds[event.kind] = kinds.get(event.kind, 0) + 1
                for sha in event.frame_sha256s:
                    arrived.setdefault(sha, now)
                if sending_done.is_set() and set(sent_at) <= set(arrived):
                    return

        async def camera(index: int) -> None:
            async def frames() -> Any:
                for n in range(args.frames):
                    image = frame_bytes(base, index, n)
                    sent_at[hashlib.sha256(image).hexdigest()] = time.perf_counter()
                    yield frames_pb2.Frame(camera_id=f"cam_{index}", image=image,
                                           client_ref=str(n),
                                           captured_at_ms=int(time.time() * 1000))
                    await asyncio.sleep(1.0 / args.fps)

            async for _ack in stub.SubmitFrames(frames(), metadata=AUTH):
                pass

        sending_done = asyncio.Event()
        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        await asyncio.gather(*(camera(i) for i in range(args.cameras)))
        sending_done.set()
        await asyncio.wait_for(receiver, timeout=120 + args.window * 4)
        elapsed = time.perf_counter() - started
        events_call.cancel()
    await server.stop(0)
    latencies = [(arrived[sha] - sent) * 1000.0 for sha, sent in sent_at.items()]
    n_events = sum(kinds.values())
    return {
        "cameras": args.cameras, "frames_per_camera": args.frames, "fps_per_camera": args.fps,
        "window_s": args.window, "idle_s": args.idle,
        "risk": "llm" if args.llm else "rules", "events": n_events,
        "security_events": kinds.get(events_pb2.EVENT_KIND_SECURITY, 0),
        "nothing_to_report": kinds.get(events_pb2.EVENT_KIND_NOTHING_TO_REPORT, 0),
        "elapsed_s": elapsed, "events_per_min": n_events / elapsed * 60.0,
        "frames_per_s": total / elapsed, "distinct_frames": len(sent_at),
        "latency_p50_ms": percentile(latencies, 0.5), "latency_p95_ms": percentile(latencies, 0.95),
        "machine": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--idle", type=float, default=1.0)
    parser.add_argument("--llm", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/events_e2e.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print("| cameras | frames | window/idle s | risk | events | events/min | frames/s | "
          "p50 ms | p95 ms |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {result['cameras']} | {result['cameras'] * result['frames_per_camera']} | "
          f"{result['window_s']:g}/{result['idle_s']:g} | {result['risk']} | {result['events']} "
          f"({result['security_events']} security) | {result['events_per_min']:.1f} | "
          f"{result['frames_per_s']:.1f} | {result['latency_p50_ms']:.0f} | "
          f"{result['latency_p95_ms']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
