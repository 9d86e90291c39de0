"""What hostile or heavy input costs a real sidecar: memory peak and GetStatus latency.

A sidecar process (HOG detector, no language model) is started on loopback; each attack runs
against it while a second client calls GetStatus every 100 ms. Reported per attack: how the
frames were answered, the process's peak and settled resident memory, and GetStatus latency
(median and worst) during the attack. Numbers vary between machines: compare rows of one run.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/hostile_input.py [--streams 4] [--frames 32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gpu_server._generated import (  # noqa: E402
    events_pb2,
    frames_pb2,
    service_pb2_grpc,
    status_pb2,
)

TOKEN = "bench-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
RESULTS = Path(__file__).resolve().parent / "results" / "hostile_input.json"


def photo() -> Image.Image:
    import ultralytics

    return Image.open(Path(ultralytics.__file__).parent / "assets" / "bus.jpg").convert("RGB")


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def forged(data: bytes, width: int, height: int) -> bytes:
    offset = data.index(b"\xff\xc0") + 5
    return data[:offset] + struct.pack(">HH", height, width) + data[offset + 4 :]


class RssSampler:
    """Samples a process's resident memory every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        for line in self._path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# GetStatus from another client: its own process, so the attacker's work in this process
# (building and sending hundreds of megabytes) does not delay it. It polls until stdin closes.
WATCHER = """
import json, sys, threading, time, grpc
from gpu_server._generated import service_pb2_grpc, status_pb2
stub = service_pb2_grpc.SecurityAIStub(grpc.insecure_channel(sys.argv[1]))
auth = (("authorization", "Bearer " + sys.argv[2]),)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
latencies = []
while not done.is_set():
    started = time.perf_counter()
    stub.GetStatus(status_pb2.GetStatusRequest(), metadata=auth, timeout=120)
    latencies.append((time.perf_counter() - started) * 1000.0)
    time.sleep(0.1)
print(json.dumps(latencies))
"""


async def status_latencies(address: str, stop: asyncio.Event) -> list[float]:
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WATCHER, address, TOKEN,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    await stop.wait()
    out, _ = await watcher.communicate(b"")
    latencies: list[float] = json.loads(out)
    return latencies


async def submit(stub: Any, frames: list[frames_pb2.Frame]) -> list[frames_pb2.FrameAck]:
    call = stub.SubmitFrames(iter(frames), metadata=AUTH, timeout=600)
    return [ack async for ack in call]


def frames_for(camera: str, images: list[bytes]) -> list[frames_pb2.Frame]:
    return [
        frames_pb2.Frame(camera_id=camera, image=data, client_ref=f"{camera}-{index}")
        for index, data in enumerate(images)
    ]


def zone(name: str, points: int) -> events_pb2.Zone:
    ring = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return events_pb2.Zone(
        name=name, kind="entry",
        points=[events_pb2.Point(x=0.5 + 0.4 * float(np.cos(a)),
                                 y=0.5 + 0.4 * float(np.sin(a))) for a in ring],
    )


def start_sidecar(work: Path, loop_debug: bool) -> tuple[subprocess.Popen[bytes], int]:
    """A sidecar process on loopback (HOG detector, no language model); returns it and its port."""
    ready = work / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HSAI_LLM_ENABLED": "false",
           "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "yolo"),
           **({"PYTHONASYNCIODEBUG": "1"} if loop_debug else {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "gpu_server", "--host", "127.0.0.1", "--port", "0",
         "--token", TOKEN, "--models-dir", str(work / "models"), "--data-dir",
         str(work / "data"), "--ready-file", str(ready)],
        env=env, stdout=subprocess.DEVNULL, stderr=(work / "sidecar.log").open("wb"),
    )
    while not ready.exists():
        if process.poll() is not None:
            raise SystemExit((work / "sidecar.log").read_text()[-2000:])
        time.sleep(0.1)
    return process, int(json.loads(ready.read_text())["port"])


Attack = Callable[[], Awaitable[Any]]


def attacks(stub: Any, streams: int, frames: int) -> list[tuple[str, Attack]]:
    bus = photo()
    big_photo = jpeg(bus.resize((6000, 8000)), quality=70)
    small = jpeg(bus.resize((160, 120)))
    offset = small.index(b"\xff\xc0")
    fill = small[:offset] + b"\xff" * 20_000_000 + small[offset:]
    many_zones = events_pb2.ConfigureRequest(cameras=[events_pb2.CameraSettings(
        camera_id="flood", zones=[zone(f"z{i}", 256) for i in range(1000)])])
    every_limit = events_pb2.ConfigureRequest(cameras=[
        events_pb2.CameraSettings(
            camera_id=f"cam_{c}", zones=[zone(f"z{z}", 64) for z in range(32)])
        for c in range(64)])

    def on_streams(make: Callable[[int], list[bytes]]) -> Attack:
        async def attack() -> Any:
            return await asyncio.gather(*(
                submit(stub, frames_for(f"attack_{s}", make(s))) for s in range(streams)))
        return attack

    def configure(request: events_pb2.ConfigureRequest) -> Attack:
        async def attack() -> str:
            try:
                await stub.Configure(request, metadata=AUTH, timeout=600)
            except grpc.aio.AioRpcError as err:
                return str(err.code().name)
            return "OK"
        return attack

    def forged_frames(stream: int) -> list[bytes]:
        return [forged(jpeg(bus.resize((160, 120 + stream * 64 + i % 64))), 7000, 7000)
                for i in range(frames)]

    return [
        ("idle (GetStatus only)", lambda: asyncio.sleep(2)),
        (f"forged 7000x7000 header, {streams}x{frames}", on_streams(forged_frames)),
        (f"48-megapixel photos, {streams}x4",
         on_streams(lambda s: [big_photo[:-2] + bytes([s, i]) + big_photo[-2:]
                               for i in range(4)])),
        ("20 MB of JPEG fill bytes, 1x16",
         lambda: submit(stub, frames_for(
             "fill", [fill[:-2] + bytes([i]) + fill[-2:] for i in range(16)]))),
        ("Configure: 1000 zones of 256 points", configure(many_zones)),
        ("Configure: 64 cameras x 32 zones x 64 points", configure(every_limit)),
    ]


def answers(outcome: Any) -> dict[str, int] | str:
    """How the frames of an attack were answered, or what Configure said."""
    if not isinstance(outcome, list):
        return str(outcome or "-")
    groups = outcome if outcome and isinstance(outcome[0], list) else [outcome]
    counts: Counter[str] = Counter()
    for ack in (ack for group in groups for ack in group):
        status = frames_pb2.AckStatus.Name(ack.status).removeprefix("ACK_STATUS_")
        reason = frames_pb2.RejectReason.Name(ack.reject_reason).removeprefix("REJECT_REASON_")
        counts[status if not ack.reject_reason else f"{status}/{reason}"] += 1
    return dict(counts)


async def measure(name: str, attack: Attack, pid: int, address: str) -> dict[str, Any]:
    stop = asyncio.Event()
    watcher = asyncio.create_task(status_latencies(address, stop))
    await asyncio.sleep(1.0)  # the watcher process is up and polling
    with RssSampler(pid) as rss:
        before = rss.rss()
        started = time.perf_counter()
        outcome = await attack()
        elapsed = time.perf_counter() - started
        stop.set()
        latencies = await watcher
        await asyncio.sleep(3)  # let a burst's memory go back
        after = rss.rss()
    return {
        "attack": name,
        "answer": answers(outcome),
        "seconds": elapsed,
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": rss.peak / 2**20,
        "rss_after_mb": after / 2**20,
        "status_p50_ms": statistics.median(latencies) if latencies else 0.0,
        "status_max_ms": max(latencies) if latencies else 0.0,
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp())
    process, port = await asyncio.to_thread(start_sidecar, work, args.loop_debug)
    address = f"127.0.0.1:{port}"
    try:
        channel = grpc.aio.insecure_channel(
            address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
        )
        stub = service_pb2_grpc.SecurityAIStub(channel)
        await stub.GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH)
        rows = [
            await measure(name, attack, process.pid, address)
            for name, attack in attacks(stub, args.streams, args.frames)
            if not args.only or args.only in name
        ]
        await channel.close()
        return rows
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        if args.loop_debug:
            slow = [line for line in (work / "sidecar.log").read_text().splitlines()
                    if "took" in line and "Executing" in line]
            print("\n".join(slow[-20:]) or "no slow callbacks")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--loop-debug", action="store_true",
                        help="log the sidecar's slow event-loop callbacks to its log")
    parser.add_argument("--only", default="", help="run only attacks whose name has this")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print("| attack | answer | s | RSS before MB | peak MB | after MB "
          "| GetStatus p50 ms | max ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['attack']} | {row['answer']} | {row['seconds']:.1f} | "
              f"{row['rss_before_mb']:.0f} | {row['rss_peak_mb']:.0f} | "
              f"{row['rss_after_mb']:.0f} | "
              f"{row['status_p50_ms']:.1f} | {row['status_max_ms']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(
        {"machine": platform.platform(), "cpus": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
