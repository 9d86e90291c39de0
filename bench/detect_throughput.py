"""Throughput of the sidecar (gRPC, N camera streams, batching) against an in-process loop of the
same detector on the same JPEG bytes.

Per model, in one run, every path takes its turn in each round (the order flips every other
round, so that load from other processes hits all paths alike):
  * sidecar: a server in this process on loopback, given the detector; the client runs in a
    process of its own, as Home Assistant does, each camera one SubmitFrames stream sending
    JPEG bytes; timed from the first frame sent to the last ack received (transfer, hashing,
    decoding, the scene check, windows and events, queueing, batched inference on the
    detector's copies and the acks included);
  * in-process, like for like: the detector object the sidecar is given (and, as a second loop,
    that object with as many copies of it as the sidecar runs, made the same way, one thread
    each) looping over the same JPEG bytes in batches of max_batch_size: each JPEG decoded by
    the sidecar's own intake (simplejpeg, at the same reduced scale), then `detect_batch`;
  * in-process on frames decoded beforehand, 1 and max_batch_size images per call (the earlier
    baselines; decoding is not in them).
The headline ratio is the sidecar's frames per second over the better like-for-like loop of the
same round, the median of the rounds. The CPU time of this process per frame (the client's
process not counted) is measured for every path too: on a machine shared with other work it is
steadier than frames per second.

The detector is built by the sidecar's own `build_detector` from the bench's configuration:
`default` is what it picks with an empty models folder (the embedded detector), `embedded`
names the embedded detector, `tiny` is a tiny random-weight YOLO built offline, `hog` the HOG
people detector, and a `.pt` file those weights. The per-stage latencies (waiting and working
apart) come from the sidecar's GetStatus after its fastest round.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/detect_throughput.py [--model default,tiny]
      [--imgsz N] [--frames 48] [--cameras 4] [--max-batch-size 8] [--max-wait-ms 5]
      [--rounds 3] [--workload still|pan]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# Test-only helpers (tiny models built offline) live beside the tests, outside the product.
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

from gpu_server._generated import frames_pb2, service_pb2_grpc, status_pb2  # noqa: E402
from gpu_server.config import ServerConfig, load_config  # noqa: E402
from gpu_server.ingest.detect import DetectorSelection, build_detector, detector_workers  # noqa: E402
from gpu_server.ingest.detector import Detector  # noqa: E402
from gpu_server.ingest.ingestor import frame_thread_count  # noqa: E402
from gpu_server.ingest.intake import FrameIntake  # noqa: E402
from gpu_server.monitor.latency import STAGES  # noqa: E402
from gpu_server.server import GRPCServer  # noqa: E402

TOKEN = "bench-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
RESULTS = Path(__file__).resolve().parent / "results" / "detect_throughput.json"
# Detection only, as in-process: no language model or enrichment taking the cores.
SIDECAR_ONLY_DETECTS = {"llm.enabled": False, "enrich.enabled": False}


@dataclass
class Workload:
    jpegs: list[list[bytes]]  # per camera
    decoded: list[np.ndarray]  # every frame, BGR, in the same order as the JPEGs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="default,tiny",
        help="comma-separated: default (what an empty models folder gives), embedded, tiny "
             "(random-weight YOLO), hog, or a .pt file",
    )
    parser.add_argument(
        "--imgsz", type=int, default=None,
        help="detector.imgsz (also the size JPEGs are decoded down to); default 320 for the "
             "tiny YOLO, else the sidecar's default",
    )
    parser.add_argument("--frames", type=int, default=48, help="frames per camera")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--width", type=int, default=640, help="frame width")
    parser.add_argument("--height", type=int, default=None, help="frame height (default 4:3)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per model, best kept")
    parser.add_argument(
        "--paced-rate", type=float, default=5.0,
        help="after the rounds, one more sidecar run with each camera sending this many frames "
             "a second, for the stages' latency at a camera's pace (0: none)",
    )
    parser.add_argument(
        "--workload", choices=("still", "pan"), default="still",
        help="still: cameras on a wall (the default); pan: every frame another view, which "
             "the scene check reports as tampering",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--conf", type=float, default=None,
                        help="YOLO's threshold; default 0.0001 for the tiny YOLO, else 0.25")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def detector_config(
    model: str, args: argparse.Namespace, workdir: Path, data_dir: Path | None = None
) -> ServerConfig:
    """The sidecar's configuration for one model: the detector the bench builds from it, and
    the server the bench runs with it, share it."""
    models_dir = workdir / "models"  # empty unless the tiny YOLO is built into it
    models_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        # Plaintext on loopback: the bench measures detection, not TLS.
        "host": "127.0.0.1", "port": 0, "token": TOKEN, "tls.mode": "off",
        "models_dir": models_dir, "data_dir": data_dir or workdir / "data",
        "detector.device": args.device,
        "batching.max_batch_size": args.max_batch_size,
        "batching.max_wait_ms": args.max_wait_ms,
        "dedupe.capacity": 0,
        **SIDECAR_ONLY_DETECTS,
    }
    if model in ("embedded", "hog"):
        overrides["detector.weights"] = model
    elif model == "tiny":
        overrides["detector.weights"] = str(models_dir / "tiny-yolo.pt")
        overrides["detector.confidence"] = args.conf if args.conf is not None else 0.0001
    elif model != "default":
        overrides["detector.weights"] = str(Path(model).resolve())
        overrides["detector.confidence"] = args.conf if args.conf is not None else 0.25
    imgsz = args.imgsz if args.imgsz is not None else (320 if model == "tiny" else None)
    if imgsz is not None:
        overrides["detector.imgsz"] = imgsz
    return load_config(env={}, overrides=overrides)


def build_model(model: str, args: argparse.Namespace, workdir: Path) -> DetectorSelection:
    """The detector as the sidecar builds it for this model's configuration (blocking)."""
    os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    if model == "tiny":
        from testlib.tiny_yolo import build_tiny_yolo

        build_tiny_yolo(workdir / "models" / "tiny-yolo.pt")
    return build_detector(detector_config(model, args, workdir))


def make_workload(args: argparse.Namespace) -> Workload:
    """Distinct frames per camera (so dedupe never kicks in), cut from the sample photos.

    `args.workload` "still" (this bench's default): each camera films one view, every frame a
    shift of 0-3 px and a brightness step of it, so each frame is new content while the
    sidecar's scene check sees the same view, as from a camera on a wall. "pan" (the default
    for other benches, which pass no `workload`): every frame another crop and zoom of the
    photo, which the scene check takes for a moved camera, so nearly every frame also makes a
    tamper event.
    """
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    sources = [Image.open(assets / name).convert("RGB") for name in ("bus.jpg", "zidane.jpg")]
    width, height = args.width, args.height or args.width * 3 // 4
    still = getattr(args, "workload", "pan") == "still"
    jpegs: list[list[bytes]] = []
    decoded: list[np.ndarray] = []
    for camera in range(args.cameras):
        source = sources[camera % len(sources)]
        frames = []
        for index in range(args.frames):
            if still:
                view = _still_frame(source, camera, index, width, height)
            else:
                # A slow pan across the photo: every frame differs, like a moving camera.
                scale = 0.6 + 0.3 * ((index * 7 + camera) % 10) / 10
                crop_w, crop_h = int(source.width * scale), int(source.height * scale)
                left = (index * 5 + camera * 11) % max(1, source.width - crop_w)
                top = (index * 3 + camera * 7) % max(1, source.height - crop_h)
                view = source.crop((left, top, left + crop_w, top + crop_h))
                view = view.resize((width, height))
            out = io.BytesIO()
            # Another quality after every 336 still frames keeps the bytes distinct.
            view.save(out, format="JPEG", quality=85 - (index // 336 if still else 0))
            data = out.getvalue()
            frames.append(data)
            rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            decoded.append(np.ascontiguousarray(rgb[:, :, ::-1]))
        jpegs.append(frames)
    return Workload(jpegs, decoded)


def _still_frame(
    source: Image.Image, camera: int, index: int, width: int, height: int
) -> Image.Image:
    """One camera's fixed view of the photo, shifted by 0-3 px and brightened by a step for
    each frame (16 shifts x 21 steps)."""
    crop_w, crop_h = int(source.width * 0.8), int(source.height * 0.8)
    left = (camera * 23) % max(1, source.width - crop_w - 4) + index % 4
    top = (camera * 13) % max(1, source.height - crop_h - 4) + index // 4 % 4
    view = source.crop((left, top, left + crop_w, top + crop_h)).resize((width, height))
    return ImageEnhance.Brightness(view).enhance(0.9 + (index // 16 % 21) * 0.01)


def _reencoded(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, format="JPEG", quality=80)
    return out.getvalue()


@dataclass(frozen=True)
class Measured:
    fps: float
    cpu_ms_per_frame: float  # CPU time of the whole process (every thread) per frame


def _measure(frames: int, run: Callable[[], None]) -> Measured:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Measured(frames / wall, cpu * 1000.0 / frames)


def run_in_process(detector: Detector, images: list[np.ndarray], batch: int) -> float:
    """Frames per second of `detect_batch` on frames decoded beforehand."""
    return measure_in_process(detector, images, batch).fps


def measure_in_process(detector: Detector, images: list[np.ndarray], batch: int) -> Measured:
    detector.detect_batch(images[:batch])  # warm-up at this batch shape

    def loop() -> None:
        for start in range(0, len(images), batch):
            detector.detect_batch(images[start : start + batch])

    return _measure(len(images), loop)


def measure_from_jpegs(
    copies: Sequence[Detector], jpegs: list[bytes], batch: int, intake: FrameIntake
) -> Measured:
    """Decoding each JPEG (the sidecar's intake: simplejpeg, at the same scale) and
    `detect_batch` on batches of `batch`; with several copies, each on its own thread taking
    the next batch, as the sidecar's copies do."""
    headers = [intake.inspect(data) for data in jpegs]  # read before: not the decoding
    starts = range(0, len(jpegs), batch)
    batches = [range(start, min(start + batch, len(jpegs))) for start in starts]

    def detect(copy: Detector, indexes: range) -> None:
        copy.detect_batch([intake.decode(jpegs[i], headers[i]).pixels for i in indexes])

    for copy in copies:
        detect(copy, batches[0])  # warm-up at this batch shape
    taken = itertools.count()  # next() on a count is atomic: each batch goes to one copy

    def loop(copy: Detector) -> None:
        while (index := next(taken)) < len(batches):
            detect(copy, batches[index])

    def run() -> None:
        threads = [threading.Thread(target=loop, args=(copy,)) for copy in copies[1:]]
        for thread in threads:
            thread.start()
        loop(copies[0])
        for thread in threads:
            thread.join()

    return _measure(len(jpegs), run)


@dataclass(frozen=True)
class ClientPlan:
    """What the bench's client sends (picklable: it may run in a process of its own)."""

    port: int
    max_message_bytes: int
    warm: list[bytes]  # sent first, on one stream, untimed
    jpegs: list[list[bytes]]  # per camera, one stream each, all at once
    rate: float = 0.0  # frames per second per camera, the cameras staggered; 0: all at once


async def _send_frames(
    plan: ClientPlan, mark: Callable[[str], None]
) -> tuple[float, int, list[str]]:
    """The client: a warm-up stream, then one stream per camera at once; `mark` is told when
    the timed streams start and end. Returns the seconds they took, the frames accepted and
    the first refusals."""
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{plan.port}",
        options=[("grpc.max_send_message_length", plan.max_message_bytes)],
    )
    stub = service_pb2_grpc.SecurityAIStub(channel)
    refused: list[str] = []
    loop = asyncio.get_running_loop()

    async def requests(
        camera: int, frames: list[bytes], tag: str
    ) -> AsyncIterator[frames_pb2.Frame]:
        begin = loop.time() + camera / (plan.rate * len(plan.jpegs)) if plan.rate else 0.0
        for i, data in enumerate(frames):
            if plan.rate:
                await asyncio.sleep(max(0.0, begin + i / plan.rate - loop.time()))
            yield frames_pb2.Frame(camera_id=f"camera_{camera}", image=data, client_ref=f"{tag}{i}")

    async def camera_stream(camera: int, frames: list[bytes], tag: str) -> int:
        accepted = 0
        async for ack in stub.SubmitFrames(requests(camera, frames, tag), metadata=AUTH):
            accepted += ack.status == frames_pb2.ACK_STATUS_ACCEPTED
            if ack.status != frames_pb2.ACK_STATUS_ACCEPTED:
                refused.append(str(ack).replace("\n", " ")[-300:])
        return accepted

    try:
        await camera_stream(0, plan.warm, "warm")
        mark("started")
        started = time.perf_counter()
        accepted = await asyncio.gather(
            *(camera_stream(c, frames, "f") for c, frames in enumerate(plan.jpegs))
        )
        elapsed = time.perf_counter() - started
        mark("done")
    finally:
        await channel.close()
    return elapsed, sum(accepted), refused[:3]


def _client_process(plan: ClientPlan, messages: Any) -> None:
    """`_send_frames` in a process of its own, telling the bench through `messages`."""
    try:
        result = asyncio.run(_send_frames(plan, lambda what: messages.put((what,))))
    except BaseException as exc:
        messages.put(("error", repr(exc)))
        raise
    messages.put(("result", *result))


async def run_sidecar(
    detector: Detector, workload: Workload, args: argparse.Namespace, workdir: Path,
    extra: dict[str, Any] | None = None, *, config: ServerConfig | None = None,
    measured: dict[str, Any] | None = None, client_process: bool = False, rate: float = 0.0,
) -> tuple[float, dict[str, Any], list[int]]:
    """`extra`: more configuration overrides (dotted keys); `config`: the whole configuration
    instead (its data folder must be fresh: the sidecar remembers the frames it has seen).
    `client_process`: the camera streams run in a process of their own, as Home Assistant
    does, instead of on the sidecar's event loop; `rate`: each camera sends this many frames a
    second (warm-up included) instead of all at once. `measured` receives this process's CPU time
    per frame while the timed streams ran (`cpu_ms_per_frame`: the sidecar's, and the client's
    too unless it runs apart) and the number of events the sidecar made (`events_created`)."""
    if config is None:
        config = load_config(
            env={},
            overrides={
                "host": "127.0.0.1", "port": 0, "token": TOKEN, "tls.mode": "off",
                "data_dir": workdir / "data",
                "batching.max_batch_size": args.max_batch_size,
                "batching.max_wait_ms": args.max_wait_ms,
                "dedupe.capacity": 0,
                **(extra or {}),
            },
        )
    # Other bytes than the timed frames for the warm-up: a frame sent again is a duplicate.
    warm = [_reencoded(data) for data in workload.jpegs[0][: args.max_batch_size]]
    server = GRPCServer(config, detector=DetectorSelection(detector))
    port = await server.start()
    assert server.batcher is not None
    batcher = server.batcher
    marks: dict[str, tuple[float, int]] = {}

    def mark(what: str) -> None:
        marks[what] = (time.process_time(), len(batcher.batch_sizes))

    plan = ClientPlan(port, config.limits.max_message_bytes, warm, workload.jpegs, rate)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        if client_process:
            elapsed, accepted, refused = await _in_client_process(plan, mark)
        else:
            elapsed, accepted, refused = await _send_frames(plan, mark)
        total = sum(len(frames) for frames in workload.jpegs)
        if measured is not None and server.events is not None:
            measured["cpu_ms_per_frame"] = (
                (marks["done"][0] - marks["started"][0]) * 1000.0 / total
            )
            measured["events_created"] = server.events.status().events_created
        if accepted != total:
            raise RuntimeError(
                f"only {accepted} of {total} frames were accepted; first refusals: {refused}"
            )
        status: status_pb2.ServerStatus = await service_pb2_grpc.SecurityAIStub(
            channel
        ).GetStatus(status_pb2.GetStatusRequest(), metadata=AUTH)
        batch_sizes = list(batcher.batch_sizes)[marks["started"][1] :]
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


async def _in_client_process(
    plan: ClientPlan, mark: Callable[[str], None]
) -> tuple[float, int, list[str]]:
    """`_send_frames` in a fresh process (spawned: gRPC must not be forked), marking here."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(
        target=_client_process, args=(plan, messages), daemon=True
    )
    child.start()

    def next_message() -> tuple[Any, ...]:
        while True:
            try:
                message: tuple[Any, ...] = messages.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the client process ended ({child.exitcode})") from None
                continue
            if message[0] == "error":
                raise RuntimeError(f"the client process failed: {message[1]}")
            return message

    try:
        while (message := await asyncio.to_thread(next_message))[0] != "result":
            mark(message[0])
    finally:
        await asyncio.to_thread(child.join, 30)
    _, elapsed, accepted, refused = message
    return elapsed, accepted, refused


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


def _copies(detector: Detector, count: int) -> list[Detector]:
    """The detector and up to `count - 1` copies of it, made as the sidecar makes its own."""
    copies = [detector]
    while len(copies) < count and (copy := detector.replicate()) is not None:
        copies.append(copy)
    return copies


# The in-process loops the headline ratio compares with: the better of the two in each round.
LIKE_FOR_LIKE = ("jpeg_one_copy", "jpeg_copies")


def bench_model(
    model: str, workload: Workload, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    selection = build_model(model, args, workdir)
    detector = selection.detector
    config = detector_config(model, args, workdir)
    copies = _copies(detector, detector_workers(config.detector))
    intake = FrameIntake(config.limits, decode_side=config.detector.imgsz)
    jpegs = [data for frames in workload.jpegs for data in frames]
    batch = args.max_batch_size
    rounds: list[dict[str, Measured]] = []
    best_stages: dict[str, Any] = {}
    best_batches: list[int] = []
    events: list[int] = []

    def sidecar(round_: int) -> Measured:
        nonlocal best_stages, best_batches
        # A fresh data folder each round: the sidecar remembers the frames it has seen.
        round_config = detector_config(model, args, workdir, workdir / f"data-{model}-{round_}")
        measured: dict[str, Any] = {}
        fps, stages, batches = asyncio.run(
            run_sidecar(
                detector, workload, args, workdir, config=round_config, measured=measured,
                client_process=True,
            )
        )
        if fps > max((r["sidecar"].fps for r in rounds), default=0.0):
            best_stages, best_batches = stages, batches
        events.append(measured["events_created"])
        return Measured(fps, measured["cpu_ms_per_frame"])

    runs: dict[str, Callable[[int], Measured]] = {
        "sidecar": sidecar,
        "jpeg_one_copy": lambda _: measure_from_jpegs(copies[:1], jpegs, batch, intake),
        "jpeg_copies": lambda _: measure_from_jpegs(copies, jpegs, batch, intake),
        "decoded_single": lambda _: measure_in_process(detector, workload.decoded, 1),
        "decoded_batched": lambda _: measure_in_process(detector, workload.decoded, batch),
    }
    if len(copies) == 1:
        del runs["jpeg_copies"]
    for round_ in range(args.rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        measured = {path: runs[path](round_) for path in order}
        rounds.append(measured)

    paced: dict[str, Any] = {}
    if args.paced_rate > 0:
        paced_config = detector_config(model, args, workdir, workdir / f"data-{model}-paced")
        _, paced_stages, _ = asyncio.run(run_sidecar(
            detector, workload, args, workdir, config=paced_config, client_process=True,
            rate=args.paced_rate,
        ))
        paced = {"rate_per_camera": args.paced_rate, "stage_latency_ms": paced_stages}

    def median_of(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    def like_for_like(measured: dict[str, Measured]) -> Measured:
        return max((measured[p] for p in LIKE_FOR_LIKE if p in measured), key=lambda m: m.fps)

    return {
        "model": model if model in {"default", "embedded", "tiny", "hog"} else Path(model).name,
        "detector": detector.name,
        "backend": detector.backend,
        "device": detector.device,
        "fallback_reason": selection.fallback_reason,
        "imgsz": config.detector.imgsz,
        "detector_copies": len(copies),
        "frame_threads": frame_thread_count(config.limits.decode_threads),
        "fps_best": {p: round(max(r[p].fps for r in rounds), 1) for p in runs},
        "cpu_ms_per_frame_median": {
            p: median_of([r[p].cpu_ms_per_frame for r in rounds]) for p in runs
        },
        # The headline: the sidecar's frames per second over the better in-process loop on the
        # same JPEGs in the same round; the median of the rounds.
        "ratio_sidecar_vs_in_process": median_of(
            [r["sidecar"].fps / like_for_like(r).fps for r in rounds]
        ),
        # CPU per frame of that loop over the sidecar's (1.0: the sidecar adds no CPU work).
        "cpu_ratio_in_process_vs_sidecar": median_of(
            [like_for_like(r).cpu_ms_per_frame / r["sidecar"].cpu_ms_per_frame for r in rounds]
        ),
        "ratio_sidecar_vs": {
            p: median_of([r["sidecar"].fps / r[p].fps for r in rounds])
            for p in runs if p != "sidecar"
        },
        "rounds_fps": [{p: round(m.fps, 1) for p, m in r.items()} for r in rounds],
        "sidecar_events_created": events,
        "sidecar_mean_batch_size": round(sum(best_batches) / max(1, len(best_batches)), 2),
        # From GetStatus after the fastest sidecar round; the counts include the warm-up frames.
        "stage_latency_ms": best_stages,
        # The same, with each camera sending at a steady rate instead of all at once.
        "paced": paced,
    }


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hsai-bench-") as tmp:
        workload = make_workload(args)
        runs = [
            bench_model(model.strip(), workload, args, Path(tmp) / f"model-{index}")
            for index, model in enumerate(args.model.split(","))
            if model.strip()
        ]
    result = {
        "frame_size": f"{args.width}x{args.height or args.width * 3 // 4}",
        "cameras": args.cameras,
        "frames_total": args.cameras * args.frames,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "workload": args.workload,
        "rounds": args.rounds,
        "runs": runs,
        "load_average_1m": {"before": round(load_before[0], 2),
                            "after": round(os.getloadavg()[0], 2)},
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_tables(result)
    shown = args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out
    print(f"\nwrote {shown}")


def print_tables(result: dict[str, Any]) -> None:
    batch = result["max_batch_size"]
    load = result["load_average_1m"]
    print(
        f"{result['frames_total']} frames of {result['frame_size']} from {result['cameras']} "
        f"cameras ({result['workload']}), batches of up to {batch}, {result['rounds']} rounds; "
        f"load average {load['before']} before, {load['after']} after"
    )
    for run in result["runs"]:
        fps, ratio, cpu = run["fps_best"], run["ratio_sidecar_vs"], run["cpu_ms_per_frame_median"]
        copies = run["detector_copies"]
        print(
            f"\nmodel {run['model']}: {run['detector']} ({run['backend']}) on {run['device']}, "
            f"imgsz {run['imgsz']}, {copies} detector copies, {run['frame_threads']} frame "
            "threads" + (f"; fallback: {run['fallback_reason']}" if run["fallback_reason"] else "")
        )
        print(
            f"sidecar ÷ in-process, like for like: **{run['ratio_sidecar_vs_in_process']}** "
            f"(frames/s, median of rounds); CPU per frame, in-process ÷ sidecar: "
            f"{run['cpu_ratio_in_process_vs_sidecar']}\n"
        )
        rows = [
            (f"sidecar over gRPC ({copies} copies, mean batch {run['sidecar_mean_batch_size']})",
             "sidecar"),
            (f"in-process from JPEGs, one copy, {batch} per call", "jpeg_one_copy"),
            (f"in-process from JPEGs, {copies} copies side by side, {batch} per call",
             "jpeg_copies"),
            ("in-process, decoded beforehand, 1 per call", "decoded_single"),
            (f"in-process, decoded beforehand, {batch} per call", "decoded_batched"),
        ]
        print("| path | frames/s (best) | sidecar ÷ path (median) | CPU ms per frame |")
        print("| --- | ---: | ---: | ---: |")
        for label, path in rows:
            if path in fps:
                print(f"| {label} | {fps[path]} | {ratio.get(path, 1.0):.2f} | {cpu[path]} |")
        burst, paced = run["stage_latency_ms"], run["paced"].get("stage_latency_ms", {})
        print()
        header = "| stage | count | all at once: mean ms | p50 ms | p95 ms |"
        rule = "| --- | ---: | ---: | ---: | ---: |"
        if paced:
            rate = run["paced"]["rate_per_camera"]
            header += f" {rate:g}/s a camera: mean ms | p50 ms | p95 ms |"
            rule += " ---: | ---: | ---: |"
        print(header)
        print(rule)
        for name in [*STAGES, *sorted(set(burst) - set(STAGES))]:
            if name not in burst:
                continue
            row = [burst[name]] + ([paced[name]] if name in paced else [])
            cells = " | ".join(f"{s['mean_ms']} | {s['p50_ms']} | {s['p95_ms']}" for s in row)
            print(f"| {name} | {burst[name]['count']} | {cells} |")


if __name__ == "__main__":
    main()
