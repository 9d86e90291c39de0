"""What hostile or heavy input costs a real sidecar, and what a normal camera feels meanwhile.

Each attack runs against a sidecar process of its own on loopback (no language model), so that
one attack's leftovers never count against the next. During every attack another process plays
a normal camera: one new 640x480 photo every 0.5 s on a stream of its own (camera `normal_cam`),
timed from send to ack, and it calls GetStatus every 100 ms. A `baseline` row is the same camera
with no attack at all. Reported per attack: how the attack was answered (ack statuses and reason
codes, or gRPC status codes), the sidecar's resident memory at the start, at its peak, and after
the attack plus an idle wait long enough for the server's heap trim (retained = that minus the
start), the normal camera's ack latency (median and worst) and GetStatus latency. Numbers vary
between machines: compare rows of one run, or two runs of one machine with `--compare`.

`--repo DIR` runs the sidecar (`python -m gpu_server`) from another checkout, so the code before
and after a change can be measured side by side; the bench's own clients always use this
repository's generated stubs (the contract is compatible).

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/hostile_input.py [--attacks png_memory,thin] [--streams 4]
      [--frames 32] [--repo DIR] [--out FILE]
  .venvs/sidecar/bin/python bench/hostile_input.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
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

TOKEN = "bench-token-0123456789abcdef0123"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
RESULTS = Path(__file__).resolve().parent / "results" / "hostile_input.json"
SERVICE = "/home_security_ai.v1.SecurityAI"
MIB = 2**20
# Bytes no protobuf parser accepts: an overlong varint as the first field's tag.
GARBAGE = b"\xff" * 11 + bytes(range(256)) * 64


# ---- images ------------------------------------------------------------------------------

@cache
def bus() -> Image.Image:
    import ultralytics

    return Image.open(Path(ultralytics.__file__).parent / "assets" / "bus.jpg").convert("RGB")


@cache
def portrait() -> Image.Image:
    import matplotlib

    path = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    return Image.open(path).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    return encode(image, "JPEG", quality=quality)


def forged(data: bytes, width: int, height: int, marker: bytes = b"\xff\xc0") -> bytes:
    """A JPEG whose frame header (SOF0, or `marker`) claims another size than its scan holds."""
    offset = data.index(marker) + 5
    return data[:offset] + struct.pack(">HH", height, width) + data[offset + 4 :]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_variant(data: bytes, tag: str, size: tuple[int, int] | None = None) -> bytes:
    """The PNG with a tEXt chunk (distinct bytes, so no dedupe) and, with `size`, its IHDR
    rewritten (valid CRC) to claim that width and height: a forgery no checksum catches."""
    header_end = 8 + 8 + 13 + 4
    ihdr = data[16:29]
    if size is not None:
        ihdr = struct.pack(">II", *size) + ihdr[8:]
    return (data[:8] + png_chunk(b"IHDR", ihdr) + png_chunk(b"tEXt", b"bench\0" + tag.encode())
            + data[header_end:])


def jpeg_variant(data: bytes, tag: str) -> bytes:
    """The JPEG with a comment segment after SOI: distinct bytes, same pixels."""
    body = tag.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[2:]


def near(make: Callable[[float], bytes], target: int) -> bytes:
    """The encoding from make(scale) whose size is closest to target bytes (bisection)."""
    low, high = 0.01, 1.0
    best = make(high)
    for _ in range(14):
        middle = (low + high) / 2
        data = make(middle)
        if abs(len(data) - target) < abs(len(best) - target):
            best = data
        low, high = (middle, high) if len(data) < target else (low, middle)
    return best


def scaled(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))))


@cache
def forged_png() -> bytes:
    """~57 KB of a real photo's PNG whose IHDR claims 7000x7000."""
    real = near(lambda s: encode(scaled(bus(), s), "PNG"), 57_000)
    return png_variant(real, "", (7000, 7000))


@cache
def progressive_jpeg() -> bytes:
    """~57 KB of a real progressive JPEG whose frame header (SOF2) claims 7000x7000."""
    real = near(lambda s: encode(scaled(bus(), s), "JPEG", quality=85, progressive=True),
                57_000)
    return forged(real, 7000, 7000, marker=b"\xff\xc2")


@cache
def thin_png() -> bytes:
    """A real 1x16000 PNG of about 5 KB."""
    rng = np.random.default_rng(0)
    column = np.repeat(rng.integers(0, 16, (4000, 1, 1)), 4, axis=0) * 16
    return encode(Image.fromarray(np.repeat(column, 3, axis=2).astype(np.uint8)), "PNG")


@cache
def deep_pngs() -> dict[str, bytes]:
    """Real 4000x4000 PNGs of 16-bit grey and of RGBA: more bytes a pixel than RGB."""
    yy, xx = np.mgrid[0:4000, 0:4000]
    grey16 = Image.fromarray((yy * 65535 // 4000).astype(np.uint16))
    rgba = Image.fromarray(np.stack(
        [xx * 255 // 4000, yy * 255 // 4000, np.full_like(xx, 128), np.full_like(xx, 200)],
        axis=-1).astype(np.uint8), "RGBA")
    return {"16-bit": encode(grey16, "PNG"), "RGBA": encode(rgba, "PNG")}


@cache
def enroll_forged_jpeg() -> bytes:
    """~7.5 KB of a real portrait JPEG whose frame header claims 20000x20000."""
    real = near(lambda s: jpeg(scaled(portrait(), s), quality=75), 7_500)
    return forged(real, 20000, 20000)


def photo_frames(camera: str, count: int, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """Distinct photos of people by a bus: the brightness steps with every frame."""
    base = bus().resize(size)
    return [jpeg_variant(jpeg(Image.eval(base, lambda v, k=i % 32: min(255, v + k))),
                         f"{camera}-{i}") for i in range(count)]


# ---- the sidecar ---------------------------------------------------------------------------

def sidecar_help(repo: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "gpu_server", "--help"], cwd=repo, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(repo)}, check=False,
    ).stdout


def decode_budget_bytes(repo: Path) -> int | None:
    """The default decode memory budget of the code in `repo`, on this machine."""
    out = subprocess.run(
        [sys.executable, "-c", "from gpu_server.ingest.memory import default_budget_bytes;"
         "print(default_budget_bytes())"], cwd=repo, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(repo)}, check=False,
    ).stdout.strip()
    return int(out) if out.isdigit() else None


def checkout(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False).stdout.strip()

    changed = git("status", "--porcelain", "--", "gpu_server").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "uncommitted_sidecar_files": len(changed)}


@dataclass
class Sidecar:
    """A sidecar process on loopback, started from `repo`, its stderr kept in a log file."""

    repo: Path
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def log(self) -> Path:
        return self.work / "sidecar.log"

    def start(self, help_text: str) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        ready = self.work / "ready.json"
        command = [sys.executable, "-m", "gpu_server", "--host", "127.0.0.1", "--port", "0",
                   "--models-dir", str(self.work / "models"),
                   "--data-dir", str(self.work / "data"), "--ready-file", str(ready)]
        # The token travels in the environment; a command line without --token-file is the
        # older one, which reads --token too.
        if "--token-file" not in help_text:
            command += ["--token", TOKEN]
        # The bench measures intake, not TLS: plaintext on loopback, however the CLI says it.
        if "--insecure-plaintext" in help_text:
            command.append("--insecure-plaintext")
        env = {**os.environ, "PYTHONPATH": str(self.repo), "HSAI_TOKEN": TOKEN,
               "HSAI_TLS": "off", "HSAI_LLM_ENABLED": "false", "YOLO_OFFLINE": "1",
               "YOLO_CONFIG_DIR": str(self.work / "yolo"), **self.env}
        self.process = subprocess.Popen(
            command, cwd=self.repo, env=env, stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        while not ready.exists():
            if self.process.poll() is not None:
                raise SystemExit(self.log.read_text()[-3000:])
            time.sleep(0.1)
        self.port = int(json.loads(ready.read_text())["port"])

    def stop(self) -> int | None:
        """Stops the process; its exit code if it had ended by itself before."""
        assert self.process is not None
        ended = self.process.poll()
        if ended is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return ended

    def log_size(self) -> tuple[int, int]:
        data = self.log.read_bytes()
        return data.count(b"\n"), len(data)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


class RssSampler:
    """Samples a process's resident memory every 20 ms in a thread; kills the process when it
    passes `cap` bytes or the machine runs short of memory (others share it)."""

    def __init__(self, process: subprocess.Popen[bytes], cap: int) -> None:
        self._process = process
        self._path = Path(f"/proc/{process.pid}/status")
        self._cap = cap
        self.peak = 0
        self.killed = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        try:
            text = self._path.read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.rss()
            self.peak = max(self.peak, rss)
            if not self.killed and (rss > self._cap or mem_available() < 1536 * MIB):
                self.killed = f"killed by the bench at {rss / MIB:.0f} MB resident"
                self._process.kill()
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- the normal camera ----------------------------------------------------------------------

# A normal camera and a GetStatus poller, in a process of their own so that the attacker's work
# in this process (building and sending hundreds of megabytes) does not delay them. They run
# until stdin closes, then wait for the camera's outstanding acks and print what they measured.
NORMAL_CAMERA = """
import io, json, queue, sys, threading, time, grpc
from PIL import Image
from gpu_server._generated import frames_pb2, service_pb2_grpc, status_pb2
address, token, photo, interval = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
channel = grpc.insecure_channel(address)
stub = service_pb2_grpc.SecurityAIStub(channel)
auth = (("authorization", "Bearer " + token),)
done, ended = threading.Event(), threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
base = Image.open(photo).convert("RGB").resize((640, 480))
status_ms, sent, latencies, answers = [], {}, [], {}
outbox = queue.Queue()

def poll():
    while not done.is_set():
        started = time.perf_counter()
        try:
            stub.GetStatus(status_pb2.GetStatusRequest(), metadata=auth, timeout=120)
            status_ms.append((time.perf_counter() - started) * 1000.0)
        except grpc.RpcError:
            pass
        time.sleep(0.1)

def requests():
    while (item := outbox.get()) is not None:
        yield item

def send():
    index = 0
    while not done.is_set():
        out = io.BytesIO()
        Image.eval(base, lambda v, k=index % 32: min(255, v + k)).save(
            out, format="JPEG", quality=85, comment=f"normal {index}")
        ref = f"normal-{index}"
        sent[ref] = time.perf_counter()
        outbox.put(frames_pb2.Frame(camera_id="normal_cam", image=out.getvalue(), client_ref=ref,
                                    captured_at_ms=int(time.time() * 1000)))
        index += 1
        done.wait(interval)
    deadline = time.monotonic() + 60
    while len(latencies) < len(sent) and time.monotonic() < deadline and not ended.is_set():
        time.sleep(0.05)
    outbox.put(None)

poller = threading.Thread(target=poll, daemon=True)
sender = threading.Thread(target=send, daemon=True)
poller.start(); sender.start()
print("ready", flush=True)
error = ""
try:
    for ack in stub.SubmitFrames(requests(), metadata=auth, timeout=3600):
        latencies.append((time.perf_counter() - sent[ack.client_ref]) * 1000.0)
        name = frames_pb2.AckStatus.Name(ack.status).removeprefix("ACK_STATUS_")
        if ack.reject_reason:
            reason = frames_pb2.RejectReason.Name(ack.reject_reason)
            name += "/" + reason.removeprefix("REJECT_REASON_")
        answers[name] = answers.get(name, 0) + 1
except grpc.RpcError as err:
    error = err.code().name
ended.set()
sender.join(); poller.join()
print(json.dumps({"sent": len(sent), "latencies_ms": latencies, "answers": answers,
                  "stream_error": error, "status_ms": status_ms}))
"""


class NormalCamera:
    """The normal camera's process: started before an attack, stopped after it."""

    def __init__(self, address: str, interval: float) -> None:
        self._address = address
        self._interval = interval
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        import ultralytics

        photo = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", NORMAL_CAMERA, self._address, TOKEN, str(photo),
            str(self._interval), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self._process.stdout is not None
        await self._process.stdout.readline()  # "ready"

    async def stop(self) -> dict[str, Any]:
        assert self._process is not None
        out, _ = await self._process.communicate(b"")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result


# ---- the attacks ----------------------------------------------------------------------------

@dataclass
class Context:
    stub: Any
    channel: grpc.aio.Channel
    sidecar: Sidecar
    rss: RssSampler
    args: argparse.Namespace
    start_rss: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def streams(self) -> int:
        return int(self.args.streams)

    @property
    def frames(self) -> int:
        return int(self.args.frames)


Attack = Callable[[Context], Awaitable[Any]]


async def warm_up_frames(stub: Any) -> None:
    """The detector and the decoders take their working memory with the first frames."""
    await asyncio.gather(*(submit(stub, f"warm_up_{s}", photo_frames(f"warm_up_{s}", 4))
                           for s in range(2)))


async def warm_up_faces(stub: Any) -> None:
    """Enrichment loads its models with the first event of a person and the face model with
    the first enrolment: both happen before the attack."""
    await warm_up_frames(stub)
    await status_code(stub.EnrollPerson(events_pb2.EnrollPersonRequest(
        name="warm up", image=jpeg(portrait())), metadata=AUTH, timeout=600))
    for _ in range(600):
        status = await stub.GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH)
        if status.events.events_created and not status.events.analyses_running:
            return
        await asyncio.sleep(0.2)


async def warm_up_and_ack(stub: Any) -> None:
    """Warm-up frames whose events are all acknowledged: the outbox starts empty."""
    await warm_up_frames(stub)
    for _ in range(300):
        status = await stub.GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH)
        if not status.events.open_batches and not status.events.analyses_running:
            break
        await asyncio.sleep(0.2)
    await stub.AckEvents(events_pb2.AckEventsRequest(
        up_to_sequence=status.events.last_sequence, outbox_id=status.events.outbox_id),
        metadata=AUTH)


# Enrichment (faces, pose, plates) loads some 600 MB of models on the first event with a person
# in it, whatever the attack: it is off except where the attack is on enrolment itself.
NO_ENRICHMENT = {"HSAI_ENRICH_ENABLED": "false"}


@dataclass
class Spec:
    key: str
    title: str
    run: Attack
    env: dict[str, str] = field(default_factory=lambda: dict(NO_ENRICHMENT))
    warm_up: Callable[[Any], Awaitable[None]] = warm_up_frames


async def submit(stub: Any, camera: str, images: list[bytes]) -> list[frames_pb2.FrameAck]:
    frames = [frames_pb2.Frame(camera_id=camera, image=data, client_ref=f"{camera}-{index}")
              for index, data in enumerate(images)]
    call = stub.SubmitFrames(iter(frames), metadata=AUTH, timeout=600)
    return [ack async for ack in call]


async def on_streams(ctx: Context, make: Callable[[int], list[bytes]]) -> list[Any]:
    """Each stream's frames from make(stream), all streams at once."""
    return list(await asyncio.gather(*(
        submit(ctx.stub, f"attack_{s}", make(s)) for s in range(ctx.streams))))


async def status_code(call: Awaitable[Any]) -> tuple[str, str]:
    """The call's status code name and the details the client received."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code().name, err.details() or ""
    return "OK", ""


def zone(name: str, points: int) -> events_pb2.Zone:
    ring = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return events_pb2.Zone(
        name=name, kind="entry",
        points=[events_pb2.Point(x=0.5 + 0.4 * float(np.cos(a)),
                                 y=0.5 + 0.4 * float(np.sin(a))) for a in ring],
    )


def configure(request: Callable[[], events_pb2.ConfigureRequest]) -> Attack:
    async def attack(ctx: Context) -> str:
        code, _ = await status_code(ctx.stub.Configure(request(), metadata=AUTH, timeout=600))
        return code
    return attack


async def baseline(ctx: Context) -> None:
    await asyncio.sleep(ctx.args.baseline_s)


async def forged_jpegs(ctx: Context) -> list[Any]:
    return await on_streams(ctx, lambda s: [
        forged(jpeg(bus().resize((160, 120 + s * 64 + i % 64))), 7000, 7000)
        for i in range(ctx.frames)])


async def big_photos(ctx: Context) -> list[Any]:
    big = jpeg(bus().resize((6000, 8000)), quality=70)
    return await on_streams(ctx, lambda s: [big[:-2] + bytes([s, i]) + big[-2:]
                                            for i in range(4)])


async def jpeg_fill(ctx: Context) -> list[Any]:
    small = jpeg(bus().resize((160, 120)))
    offset = small.index(b"\xff\xc0")
    fill = small[:offset] + b"\xff" * 20_000_000 + small[offset:]
    return await submit(ctx.stub, "fill", [fill[:-2] + bytes([i]) + fill[-2:] for i in range(16)])


async def png_memory(ctx: Context) -> list[Any]:
    """Three rounds of forged PNGs; the memory kept after each round's idle wait."""
    outcome: list[Any] = []
    rounds = ctx.extra["rounds"] = []  # kept round by round: the sidecar may be killed
    ctx.extra["png_bytes"] = len(forged_png())
    for round_ in range(3):
        ctx.rss.peak = ctx.rss.rss()
        outcome += await on_streams(ctx, lambda s, r=round_: [
            png_variant(forged_png(), f"{r}-{s}-{i}") for i in range(ctx.frames)])
        peak = ctx.rss.peak
        await asyncio.sleep(ctx.args.settle_s)
        rounds.append({"round": round_ + 1, "rss_peak_mb": peak / MIB,
                       "retained_mb": (ctx.rss.rss() - ctx.start_rss) / MIB})
    ctx.rss.peak = max(round_["rss_peak_mb"] for round_ in rounds) * MIB
    return outcome


async def enroll_forged(ctx: Context) -> dict[str, int]:
    image = enroll_forged_jpeg()
    results = await asyncio.gather(*(status_code(ctx.stub.EnrollPerson(
        events_pb2.EnrollPersonRequest(name=f"forged {i}", image=image),
        metadata=AUTH, timeout=600)) for i in range(4)))
    ctx.extra["jpeg_bytes"] = len(image)
    ctx.extra["details"] = sorted({details[:160] for _, details in results})
    return dict(Counter(code for code, _ in results))


async def enroll_formats(ctx: Context) -> dict[str, str]:
    answer = {}
    for fmt in ("WEBP", "TIFF"):
        code, details = await status_code(ctx.stub.EnrollPerson(
            events_pb2.EnrollPersonRequest(name=f"portrait {fmt}", image=encode(portrait(), fmt)),
            metadata=AUTH, timeout=600))
        answer[fmt] = code
        ctx.extra[f"{fmt}_details"] = details[:160]
    return answer


async def thin(ctx: Context) -> list[Any]:
    ctx.extra["png_bytes"] = len(thin_png())
    return await submit(ctx.stub, "thin", [png_variant(thin_png(), f"thin-{i}")
                                           for i in range(ctx.frames)])


def with_budget(ctx: Context) -> None:
    budget = decode_budget_bytes(ctx.args.repo)
    ctx.extra["decode_budget_mb"] = budget / MIB if budget else None


async def progressive(ctx: Context) -> list[Any]:
    with_budget(ctx)
    ctx.extra["jpeg_bytes"] = len(progressive_jpeg())
    return await on_streams(ctx, lambda s: [
        jpeg_variant(progressive_jpeg(), f"{s}-{i}") for i in range(ctx.frames)])


async def deep_png(ctx: Context) -> list[Any]:
    with_budget(ctx)
    kinds = deep_pngs()
    ctx.extra["png_bytes"] = {kind: len(data) for kind, data in kinds.items()}
    order = sorted(kinds)
    return await on_streams(ctx, lambda s: [
        png_variant(kinds[order[(s + i) % 2]], f"{s}-{i}") for i in range(ctx.frames)])


async def garbage(ctx: Context) -> dict[str, int]:
    """Unparseable bytes as a SubmitFrames message and as a unary request: status codes, and
    what each call adds to the server's log."""
    stream = ctx.channel.stream_stream(f"{SERVICE}/SubmitFrames", request_serializer=None,
                                       response_deserializer=None)
    unary = ctx.channel.unary_unary(f"{SERVICE}/Configure", request_serializer=None,
                                    response_deserializer=None)

    acks: list[frames_pb2.FrameAck] = []

    async def on_stream() -> None:
        call = stream(iter([GARBAGE]), metadata=AUTH, timeout=60)
        acks.extend([frames_pb2.FrameAck.FromString(raw) async for raw in call])

    calls = {"SubmitFrames": on_stream, "Configure": lambda: unary(GARBAGE, metadata=AUTH,
                                                                   timeout=60)}
    answer: Counter[str] = Counter()
    count = max(1, min(ctx.frames, 8))
    for name, call in calls.items():
        lines, size = ctx.sidecar.log_size()
        for _ in range(count):
            code, _ = await status_code(call())
            answer[f"{name}/{code}"] += 1
        await asyncio.sleep(0.5)  # the server's log lines are written
        after_lines, after_size = ctx.sidecar.log_size()
        ctx.extra[name] = {"calls": count, "log_lines_per_call": (after_lines - lines) / count,
                           "log_bytes_per_call": (after_size - size) / count}
    ctx.extra["message_bytes"] = len(GARBAGE)
    ctx.extra["SubmitFrames"]["acks"] = answers(acks)
    return dict(answer)


async def echo(ctx: Context) -> str:
    event_id = "e" * 10_000_000
    lines, size = ctx.sidecar.log_size()
    code, details = await status_code(ctx.stub.Feedback(events_pb2.FeedbackRequest(
        event_id=event_id, verdict=events_pb2.FEEDBACK_VERDICT_FALSE_ALARM),
        metadata=AUTH, timeout=120))
    await asyncio.sleep(0.5)
    after_lines, after_size = ctx.sidecar.log_size()
    ctx.extra.update({"event_id_chars": len(event_id), "details_chars": len(details),
                      "log_bytes": after_size - size, "log_lines": after_lines - lines})
    return code


OUTBOX_MAX = 5
OUTBOX_CAMERAS = 6


async def outbox(ctx: Context) -> list[Any]:
    """Frames of people from six cameras, paced so that their windows close and events are
    made, never acknowledged: how far the outbox goes past its limit, how many frames are
    refused."""

    async def paced(camera: str, images: list[bytes]) -> list[frames_pb2.FrameAck]:
        async def frames() -> Any:
            for index, data in enumerate(images):
                yield frames_pb2.Frame(camera_id=camera, image=data,
                                       client_ref=f"{camera}-{index}",
                                       captured_at_ms=int(time.time() * 1000))
                await asyncio.sleep(0.1)
        call = ctx.stub.SubmitFrames(frames(), metadata=AUTH, timeout=600)
        return [ack async for ack in call]

    outcome = await asyncio.gather(*(
        paced(f"door_{c}", photo_frames(f"door_{c}", ctx.frames))
        for c in range(OUTBOX_CAMERAS)))
    await asyncio.sleep(3)  # the last windows close
    status = await ctx.stub.GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH)
    delivered = 0
    call = ctx.stub.SubscribeEvents(events_pb2.SubscribeEventsRequest(after_sequence=0),
                                    metadata=AUTH)
    try:
        while True:
            await asyncio.wait_for(call.read(), 3)
            delivered += 1
    except (TimeoutError, grpc.aio.AioRpcError):
        call.cancel()
    acks = [ack for stream in outcome for ack in stream]
    ctx.extra.update({
        "outbox_max_events": status.events.outbox_max_events,
        "outbox_depth": status.events.outbox_depth,
        "events_created": status.events.events_created,
        "events_delivered": delivered,
        "frames_sent": len(acks),
        "frames_refused": sum(ack.reject_reason == frames_pb2.REJECT_REASON_BACKPRESSURE
                              for ack in acks),
    })
    return list(outcome)


def many_zones() -> events_pb2.ConfigureRequest:
    return events_pb2.ConfigureRequest(cameras=[events_pb2.CameraSettings(
        camera_id="flood", zones=[zone(f"z{i}", 256) for i in range(1000)])])


def every_limit() -> events_pb2.ConfigureRequest:
    return events_pb2.ConfigureRequest(cameras=[
        events_pb2.CameraSettings(camera_id=f"cam_{c}",
                                  zones=[zone(f"z{z}", 64) for z in range(32)])
        for c in range(64)])


def specs(streams: int, frames: int) -> list[Spec]:
    s, f = streams, frames
    return [
        Spec("baseline", "no attack: the normal camera alone", baseline),
        Spec("forged_jpeg", f"JPEGs whose header claims 7000x7000, {s}x{f}", forged_jpegs),
        Spec("big_photos", f"48-megapixel photos, {s}x4", big_photos),
        Spec("jpeg_fill", "20 MB of JPEG fill bytes, 1x16", jpeg_fill),
        Spec("zones_flood", "Configure: 1000 zones of 256 points",
             configure(many_zones)),
        Spec("zones_limit", "Configure: 64 cameras x 32 zones x 64 points",
             configure(every_limit)),
        Spec("png_memory", f"~57 KB PNGs whose IHDR claims 7000x7000, {s}x{f}, 3 rounds",
             png_memory),
        Spec("enroll_forged", "EnrollPerson: 7.5 KB JPEG claiming 20000x20000, 4 at once",
             enroll_forged, env={}, warm_up=warm_up_faces),
        Spec("enroll_formats", "EnrollPerson: a portrait as WebP and as TIFF", enroll_formats,
             env={}, warm_up=warm_up_faces),
        Spec("thin", f"1x16000 PNGs of ~5 KB, 1x{f}", thin),
        Spec("progressive", f"~57 KB progressive JPEGs claiming 7000x7000, {s}x{f}",
             progressive),
        Spec("deep_png", f"4000x4000 PNGs, 16-bit grey and RGBA, {s}x{f}", deep_png),
        Spec("garbage", "unparseable bytes: a SubmitFrames message, a Configure request",
             garbage),
        Spec("echo", "Feedback with a 10 MB event id", echo),
        Spec("outbox", f"outbox limit {OUTBOX_MAX}, no acks, {OUTBOX_CAMERAS}x{f} paced "
             "frames of people", outbox,
             env={**NO_ENRICHMENT, "HSAI_OUTBOX_MAX_EVENTS": str(OUTBOX_MAX),
                  "HSAI_BATCH_WINDOW_S": "1", "HSAI_BATCH_IDLE_S": "0.5"},
             warm_up=warm_up_and_ack),
    ]


# ---- measuring ------------------------------------------------------------------------------

def answers(outcome: Any) -> dict[str, int] | str:
    """How the frames of an attack were answered (status/reason: count), or its status codes."""
    if isinstance(outcome, dict):
        return outcome
    if not isinstance(outcome, list):
        return str(outcome or "-")
    counts: Counter[str] = Counter()
    pending = list(outcome)
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending += item
            continue
        status = frames_pb2.AckStatus.Name(item.status).removeprefix("ACK_STATUS_")
        reason = frames_pb2.RejectReason.Name(item.reject_reason).removeprefix("REJECT_REASON_")
        counts[status if not item.reject_reason else f"{status}/{reason}"] += 1
    return dict(sorted(counts.items()))


def spread(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.median(values), max(values)) if values else (None, None)


async def measure(spec: Spec, args: argparse.Namespace, help_text: str) -> dict[str, Any]:
    sidecar = Sidecar(args.repo, Path(tempfile.mkdtemp(prefix="hsai-bench-")), env=spec.env)
    commit = checkout(args.repo)  # the code this sidecar runs: others may commit meanwhile
    await asyncio.to_thread(sidecar.start, help_text)
    address = f"127.0.0.1:{sidecar.port}"
    channel = grpc.aio.insecure_channel(address, options=[
        ("grpc.max_send_message_length", 64 * MIB),
        ("grpc.max_receive_message_length", 64 * MIB)])
    stub = service_pb2_grpc.SecurityAIStub(channel)
    await stub.GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH, timeout=60)
    await spec.warm_up(stub)
    await asyncio.sleep(args.settle_s)  # measured from where the heap trim leaves it
    camera = NormalCamera(address, args.interval)
    await camera.start()
    assert sidecar.process is not None
    with RssSampler(sidecar.process, args.rss_cap_mb * MIB) as rss:
        start = rss.rss()
        ctx = Context(stub, channel, sidecar, rss, args, start)
        started = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(spec.run(ctx), args.attack_timeout_s)
        except (grpc.aio.AioRpcError, TimeoutError) as err:
            outcome = (f"error: {err.code().name}" if isinstance(err, grpc.aio.AioRpcError)
                       else "error: the attack ran past --attack-timeout-s")
        elapsed = time.perf_counter() - started
        # The normal camera sees at least a few frames, and what an attack leaves running.
        await asyncio.sleep(max(0.0, args.min_window_s - elapsed))
        normal = await camera.stop()
        after = rss.rss()
        await asyncio.sleep(args.settle_s)
        settled = rss.rss()
    await channel.close()
    log_lines, log_bytes = sidecar.log_size()
    ended = sidecar.stop()
    shutil.rmtree(sidecar.work, ignore_errors=True)
    normal_p50, normal_max = spread(normal["latencies_ms"])
    status_p50, status_max = spread(normal["status_ms"])
    alive = not rss.killed and ended is None
    return {
        "attack": spec.key,
        "title": spec.title,
        "checkout": commit,
        "answer": answers(outcome),
        "seconds": elapsed,
        "rss_start_mb": start / MIB,
        "rss_peak_mb": rss.peak / MIB,
        "rss_after_mb": after / MIB if alive else None,
        "rss_settled_mb": settled / MIB if alive else None,
        "rss_retained_mb": (settled - start) / MIB if alive else None,
        "sidecar_ended": rss.killed or (f"exit code {ended}" if ended is not None else ""),
        "normal_sent": normal["sent"],
        "normal_answered": len(normal["latencies_ms"]),
        "normal_answers": normal["answers"],
        "normal_stream_error": normal["stream_error"],
        "normal_p50_ms": normal_p50,
        "normal_max_ms": normal_max,
        "status_p50_ms": status_p50,
        "status_max_ms": status_max,
        "server_log_lines": log_lines,
        "server_log_bytes": log_bytes,
        "extra": ctx.extra,
    }


def number(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_rows(rows: list[dict[str, Any]]) -> None:
    print("| attack | answer | s | RSS start MB | peak MB | retained MB | normal cam p50 ms "
          "| max ms | acked/sent | GetStatus max ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        answer = row["answer"]
        if row["sidecar_ended"]:
            answer = f"{answer} ({row['sidecar_ended']})"
        print(f"| {row['attack']} | {answer} | {row['seconds']:.1f} | "
              f"{row['rss_start_mb']:.0f} | {row['rss_peak_mb']:.0f} | "
              f"{number(row['rss_retained_mb'])} | {number(row['normal_p50_ms'])} | "
              f"{number(row['normal_max_ms'])} | "
              f"{row['normal_answered']}/{row['normal_sent']} | {number(row['status_max_ms'])} |")
    for row in rows:
        if row["extra"]:
            print(f"{row['attack']}: {json.dumps(row['extra'])}")


# ---- comparing two runs ----------------------------------------------------------------------

METRICS = ("answer", "rss_peak_mb", "rss_retained_mb", "normal_p50_ms", "normal_max_ms",
           "normal_answered", "normal_answers", "status_max_ms", "sidecar_ended")


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row's metrics worth comparing, the attack-specific ones as dotted names."""
    values = {metric: row.get(metric) for metric in METRICS}

    def walk(prefix: str, value: Any) -> None:
        if prefix.endswith(".round"):
            return
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for index, inner in enumerate(value, 1):
                walk(f"{prefix}.{index}", inner)
        else:
            values[prefix] = value

    for key, value in row.get("extra", {}).items():
        walk(key, value)
    return values


def shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {count}" for key, count in value.items()) or "-"
    return str(value) or "-"


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    old = {row["attack"]: flat(row) for row in before["rows"]}
    new = {row["attack"]: flat(row) for row in after["rows"]}
    return [
        (attack, metric, shown(old.get(attack, {}).get(metric)),
         shown(new.get(attack, {}).get(metric)))
        for attack in [*old, *(key for key in new if key not in old)]
        for metric in {**old.get(attack, {}), **new.get(attack, {})}
    ]


def print_compare(before_path: Path, after_path: Path) -> None:
    before, after = (json.loads(path.read_text()) for path in (before_path, after_path))
    head = [before.get("checkout", {}).get("commit", "?")[:10],
            after.get("checkout", {}).get("commit", "?")[:10]]
    print(f"| attack | metric | before ({head[0]}) | after ({head[1]}) |")
    print("| --- | --- | ---: | ---: |")
    for attack, metric, old, new in compare(before, after):
        print(f"| {attack} | {metric} | {old} | {new} |")


# ---- command line ---------------------------------------------------------------------------

async def run(args: argparse.Namespace, chosen: list[Spec]) -> list[dict[str, Any]]:
    help_text = await asyncio.to_thread(sidecar_help, args.repo)
    rows = []
    for spec in chosen:
        print(f"{spec.key}: {spec.title}", file=sys.stderr, flush=True)
        rows.append(await measure(spec, args, help_text))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default="",
                        help="comma-separated attack names (default: all); --list names them")
    parser.add_argument("--list", action="store_true", help="list the attacks and stop")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repo", type=Path, default=REPO_ROOT,
                        help="checkout whose sidecar is measured (default: this repository)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between the normal camera's frames")
    parser.add_argument("--baseline-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=8.0,
                        help="idle wait before the retained memory is read (heap trim)")
    parser.add_argument("--min-window-s", type=float, default=3.0,
                        help="the normal camera runs at least this long for every attack")
    parser.add_argument("--attack-timeout-s", type=float, default=600.0)
    parser.add_argument("--rss-cap-mb", type=int, default=12_000,
                        help="the sidecar is killed past this resident memory")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured attacks' rows in an existing --out")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                        help="print two result files side by side and stop")
    args = parser.parse_args(argv)
    if args.compare:
        print_compare(*args.compare)
        return
    every = specs(args.streams, args.frames)
    if args.list:
        print("\n".join(f"{spec.key}: {spec.title}" for spec in every))
        return
    wanted = [name.strip() for name in args.attacks.split(",") if name.strip()]
    unknown = set(wanted) - {spec.key for spec in every}
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))} (see --list)")
    args.repo = args.repo.resolve()
    chosen = [spec for spec in every if not wanted or spec.key in wanted]
    measured = checkout(args.repo)
    rows = asyncio.run(run(args, chosen))
    print_rows(rows)
    if args.update and args.out.exists():
        fresh = {row["attack"]: row for row in rows}
        kept = json.loads(args.out.read_text())["rows"]
        rows = [fresh.pop(row["attack"], row) for row in kept] + list(fresh.values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "memory_mb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MIB,
        "checkout": measured, "streams": args.streams, "frames": args.frames,
        "settle_s": args.settle_s, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
