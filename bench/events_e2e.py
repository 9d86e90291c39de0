"""Frames to events end to end through a real in-process sidecar.

N cameras each stream frames at a steady rate on their own SubmitFrames call; one
SubscribeEvents call receives the events. Latency of a frame = from when it was sent to when the
event covering it arrived, so it includes the event window by design: with short windows it
shows the sidecar's own overhead on top of the window. Detector: OpenCV HOG people (real, CPU).
Camera i films photos[i % len(photos)] (real photos from ultralytics' assets: people on bus.jpg,
which HOG finds; zidane.jpg shows people from the waist up, which HOG does not, so that camera's
batches close as NOTHING_TO_REPORT); every frame is a slightly different crop and brightness of
its photo, so each is new content. Risk analysis by the rules (default) or the LLM (`--llm`).
Events are counted by kind, with the latency of the frames each kind covered.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/events_e2e.py [--cameras 4] [--frames 20] [--fps 5]
      [--window 2] [--idle 1] [--photos bus.jpg,zidane.jpg] [--llm [--authority A]] [--out FILE]
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import grpc  # noqa: E402
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402

from gpu_server._generated import events_pb2, frames_pb2, service_pb2_grpc  # noqa: E402
from gpu_server.config import load_config  # noqa: E402
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector  # noqa: E402
from gpu_server.server import GRPCServer  # noqa: E402

TOKEN = "bench-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def load_photo(name: str) -> Image.Image:
    import ultralytics

    path = Path(name)
    if not path.is_file():
        path = Path(ultralytics.__file__).parent / "assets" / name
    return Image.open(path).convert("RGB")


def camera_view(photo: Image.Image, camera: int, n_photos: int) -> Image.Image:
    """Cameras that share a photo see it mirrored or not and tinted differently."""
    view = ImageOps.mirror(photo) if (camera // n_photos) % 2 else photo
    return ImageEnhance.Color(view).enhance(1.0 - 0.1 * (camera // n_photos))


def frame_bytes(view: Image.Image, index: int) -> bytes:
    """A new crop (by 0-2 px) and brightness of the view for every frame, like sensor noise;
    small enough that the scene check does not take it for a moved camera."""
    width, height = view.size
    dx, dy = index % 3, (index // 3) % 3
    crop = view.crop((dx, dy, width - 2 + dx, height - 2 + dy))
    # Nine crops times eleven brightness steps: 99 distinct frames before any repeats.
    crop = ImageEnhance.Brightness(crop).enhance(0.95 + (index // 9 % 11) * 0.01)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=90)
    return out.getvalue()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def kind_rows(
    kinds: dict[str, int], latencies: dict[str, float], covered_by: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Per event kind: events, frames covered and those frames' latency."""
    rows: dict[str, dict[str, float]] = {}
    for kind, count in sorted(kinds.items()):
        frames = [ms for sha, ms in latencies.items() if covered_by[sha] == kind]
        rows[kind] = {
            "events": count,
            "frames": len(frames),
            "latency_p50_ms": percentile(frames, 0.5),
            "latency_p95_ms": percentile(frames, 0.95),
        }
    return rows


@dataclass
class Tally:
    """What the run saw: frames sent and covered, acks and events by kind."""

    sent_at: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    covered_by: dict[str, str] = field(default_factory=dict)  # frame -> kind of its event
    kinds: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    acks: dict[str, int] = field(default_factory=dict)
    fast_path: int = 0
    tamper: int = 0
    incidents: set[str] = field(default_factory=set)
    alerts: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def event(self, event: events_pb2.SecurityEvent) -> None:
        now = time.perf_counter()
        kind = events_pb2.EventKind.Name(event.kind).removeprefix("EVENT_KIND_").lower()
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.fast_path += int(event.fast_path)
        self.tamper += int(event.scene_change != events_pb2.SCENE_CHANGE_KIND_NONE)
        if event.kind == events_pb2.EVENT_KIND_SECURITY:
            model = event.model + (" (fallback)" if event.fallback else "")
            self.models[model] = self.models.get(model, 0) + 1
            self.incidents.add(event.incident.incident_id)
            self.alerts += int(event.incident.alert)
        for sha in event.frame_sha256s:
            self.arrived.setdefault(sha, now)
            self.covered_by.setdefault(sha, kind)
        self.progress.set()

    def ack(self, ack: frames_pb2.FrameAck) -> None:
        name = frames_pb2.AckStatus.Name(ack.status).removeprefix("ACK_STATUS_").lower()
        self.acks[name] = self.acks.get(name, 0) + 1
        if ack.status != frames_pb2.ACK_STATUS_ACCEPTED:
            self.sent_at.pop(ack.content_sha256, None)  # no new event covers it
        self.progress.set()

    async def all_covered(self) -> None:
        while not set(self.sent_at) <= set(self.arrived):
            self.progress.clear()
            await self.progress.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp())
    config = load_config(env={}, overrides={
        # Plaintext on loopback: the bench measures events, not TLS.
        "host": "127.0.0.1", "port": 0, "token": TOKEN, "tls.mode": "off",
        "data_dir": data / "data",
        "models_dir": data / "models", "llm.enabled": args.llm,
        "llm.authority": args.authority,
        "events.window_s": args.window, "events.idle_s": args.idle, "events.tick_s": 0.05,
    })
    server = GRPCServer(config, detector=DetectorSelection(HogPeopleDetector()))
    port = await server.start()
    assert server.risk is not None
    server_model = server.risk.model_name or "rules"
    photos = [load_photo(name) for name in args.photos.split(",")]
    views = [camera_view(photos[i % len(photos)], i, len(photos)) for i in range(args.cameras)]
    tally = Tally()
    total = args.cameras * args.frames
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = service_pb2_grpc.SecurityAIStub(channel)
        events_call = stub.SubscribeEvents(events_pb2.SubscribeEventsRequest(), metadata=AUTH)

        async def receive() -> None:
            async for event in events_call:
                tally.event(event)

        async def camera(index: int) -> None:
            async def frames() -> Any:
                for n in range(args.frames):
                    image = frame_bytes(views[index], n)
                    tally.sent_at[hashlib.sha256(image).hexdigest()] = time.perf_counter()
                    yield frames_pb2.Frame(camera_id=f"cam_{index}", image=image,
                                           client_ref=str(n),
                                           captured_at_ms=int(time.time() * 1000))
                    await asyncio.sleep(1.0 / args.fps)

            async for ack in stub.SubmitFrames(frames(), metadata=AUTH):
                tally.ack(ack)

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        await asyncio.gather(*(camera(i) for i in range(args.cameras)))
        try:
            await asyncio.wait_for(tally.all_covered(), timeout=args.timeout)
        except TimeoutError:
            missing = set(tally.sent_at) - set(tally.arrived)
            raise SystemExit(
                f"{len(missing)} of {len(tally.sent_at)} frames not covered after "
                f"{args.timeout:g} s; acks {tally.acks}, events {tally.kinds}"
            ) from None
        elapsed = time.perf_counter() - started
        events_call.cancel()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    await server.stop(0)
    latencies = {sha: (tally.arrived[sha] - sent) * 1000.0 for sha, sent in tally.sent_at.items()}
    n_events = sum(tally.kinds.values())
    return {
        "cameras": args.cameras, "frames_per_camera": args.frames, "fps_per_camera": args.fps,
        "window_s": args.window, "idle_s": args.idle, "photos": args.photos.split(","),
        "detector": "hog-people",
        "risk": f"llm ({args.authority})" if args.llm else "rules",
        "risk_model": server_model, "events": n_events,
        "security_events": tally.kinds.get("security", 0),
        "nothing_to_report": tally.kinds.get("nothing_to_report", 0),
        "acks": tally.acks, "fast_path_events": tally.fast_path,
        "scene_change_events": tally.tamper,
        "security_events_by_model": tally.models,
        "by_kind": kind_rows(tally.kinds, latencies, tally.covered_by),
        "elapsed_s": elapsed, "events_per_min": n_events / elapsed * 60.0,
        "incidents": len(tally.incidents), "alerts": tally.alerts,
        "incidents_per_min": len(tally.incidents) / elapsed * 60.0,
        "frames_per_min": total / elapsed * 60.0,
        "frames_per_s": total / elapsed, "distinct_frames": len(tally.sent_at),
        "latency_p50_ms": percentile(list(latencies.values()), 0.5),
        "latency_p95_ms": percentile(list(latencies.values()), 0.95),
        "machine": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--idle", type=float, default=1.0)
    parser.add_argument("--photos", default="bus.jpg,zidane.jpg",
                        help="comma-separated photos (ultralytics asset names or paths)")
    parser.add_argument("--llm", action="store_true")
    parser.add_argument(
        "--authority", default="auto", choices=["auto", "judge", "narrate", "off"],
        help="what the language model may do (auto: as its measured quality allows)",
    )
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the events after the last frame")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or REPO_ROOT / "bench/results" / (
        "events_e2e_llm.json" if args.llm else "events_e2e.json"
    )
    result = asyncio.run(run(args))
    print("| cameras | frames | window/idle s | risk | frames/min | events | events/min | "
          "incidents | incidents/min | alerts | p50 ms | p95 ms |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {result['cameras']} | {result['cameras'] * result['frames_per_camera']} | "
          f"{result['window_s']:g}/{result['idle_s']:g} | {result['risk_model']} | "
          f"{result['frames_per_min']:.0f} | {result['events']} | "
          f"{result['events_per_min']:.1f} | {result['incidents']} | "
          f"{result['incidents_per_min']:.1f} | {result['alerts']} | "
          f"{result['latency_p50_ms']:.0f} | {result['latency_p95_ms']:.0f} |")
    print()
    print("| risk | event kind | events | frames covered | p50 ms | p95 ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for kind, row in result["by_kind"].items():
        print(f"| {result['risk_model']} | {kind} | {row['events']} | {row['frames']} | "
              f"{row['latency_p50_ms']:.0f} | {row['latency_p95_ms']:.0f} |")
    print(f"security events by model: {result['security_events_by_model']}; "
          f"fast path: {result['fast_path_events']}; "
          f"scene change: {result['scene_change_events']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
