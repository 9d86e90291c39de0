"""Home Assistant's event-loop time per forwarded frame, in the real test harness.

The integration is set up with a config entry in `pytest-homeassistant-custom-component`
against a real sidecar (a subprocess, as the integration tests start it, with the HOG people
detector at a reduced size so that it keeps up). Frames, distinct JPEGs, go to
`FrameStream.async_submit` at a steady rate from one task, as a camera source hands them over;
each is spooled, sent, acked, and leaves the spool when the sidecar's event covers it.

What is measured is the event loop's own cost, not wall time, two ways, each over an idle
stretch first (connected, nothing sent) and then the forwarding stretch (the first frame until
every frame is acked and released), in the same process:

- the CPU time of the event-loop thread (`time.thread_time()` read on the loop);
- the CPU time inside the loop's callbacks (`asyncio.Handle._run` wrapped), grouped by what
  they run, which attributes the time to the submit (spool write), send and ack paths.

Per frame = (forwarding cost - idle cost per second x forwarding seconds) / frames acked.
Every file-system call made on the loop thread during forwarding is listed (there should be
none). The file is both the script and the pytest module the script runs.

Usage (from the repository root):
  .venvs/ha-2025.4/bin/python bench/ha_loop_time.py [--fps 20] [--seconds 30] [--cameras 1]
      [--loop-debug] [--profile] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from unittest.mock import patch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

SETTINGS_ENV = "HSAI_LOOP_BENCH"
# The sidecar: HOG on frames scaled to 320 px, so that it keeps up with 20 frames/s.
SIDECAR_ENV = {"HSAI_DETECTOR_WEIGHTS": "hog", "HSAI_DETECTOR_IMGSZ": "320"}
# How often the bench looks at the counters, in both stretches alike.
POLL_S = 0.05

# Callbacks by the path of a frame they serve (the coroutine of a task, or a function).
PATHS = {
    "submit + spool write": ("._submit_frames",),
    "send (the pump: replays, retries, frames that queued)": ("FrameStream._async_pump",),
    "acks handed back and handled": ("_Mailbox._wake",),
    "the session": ("ConnectionSupervisor._async_keep",),
    "events (release from the spool)": ("EventStream.",),
    "other calls' results from the client loop": ("_copy_state",),
    "executor hand-offs": ("_chain_future.", "_set_result_unless_cancelled", "_read_from_self"),
    # grpc.aio's own callbacks: none once every call runs on the client loop.
    "gRPC completion queue": ("PollerCompletionQueue.", "stream_frames.<locals>.write_all"),
}


def group_of(name: str) -> str:
    """Return the path a callback belongs to, or "other"."""
    for group, parts in PATHS.items():
        if any(part in name for part in parts):
            return group
    return "other"


# ---- The measurement, run by pytest -------------------------------------------------------------

# Imported by pytest only: its Home Assistant plugin must load before Home Assistant does.
if __name__ != "__main__":
    import pytest
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.home_security_ai.client import FrameIn, FrameSource
    from custom_components.home_security_ai.const import DOMAIN
    from custom_components.home_security_ai.delivery.frame_stream import FrameStream
    from tests.integration.loop_meter import LoopMeter, LoopSample, overhead_per_callback
    from tests.integration.sidecar_process import (
        Sidecar,
        bus_photo,
        grpc_aio_engine_session,
    )

    @pytest.fixture(scope="session", autouse=True)
    def grpc_aio_engine() -> Generator[None]:
        """Keep grpc.aio's poller thread alive (the harness fails on new threads)."""
        yield from grpc_aio_engine_session()

    @pytest.fixture(autouse=True)
    def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
        """Let Home Assistant load the integration from custom_components."""

    @pytest.fixture
    async def bench_sidecar(hass: HomeAssistant, tmp_path: Path) -> AsyncGenerator[Sidecar]:
        """A real sidecar with a cheap detector."""
        process = Sidecar(root=tmp_path / "sidecar", env=SIDECAR_ENV)
        await hass.async_add_executor_job(process.start)
        yield process
        await hass.async_add_executor_job(process.stop)

    async def _wait(what: str, done: Any, limit: float) -> None:
        deadline = time.monotonic() + limit
        while not done():
            if time.monotonic() > deadline:
                pytest.fail(f"Timed out waiting for {what}")
            await asyncio.sleep(POLL_S)

    def _frames(count: int, cameras: int, tag: str = "") -> list[FrameIn]:
        """Distinct JPEGs: the sample photo with its own trailing bytes each (after the image
        ends, so the picture is the same and only the content hash differs)."""
        import hashlib

        photo, run = bus_photo(), uuid.uuid4().hex
        frames = []
        for n in range(count):
            image = photo + f"HSAI{tag}{run}{n}".encode()
            frames.append(
                FrameIn(
                    camera_id=f"bench{n % cameras}",
                    image=image,
                    client_ref=str(n),
                    captured_at_ms=int(time.time() * 1000),
                    source=FrameSource.CAMERA_ENTITY,
                    source_ref=f"frame{n}",
                    content_sha256=hashlib.sha256(image).hexdigest(),
                )
            )
        return frames

    def _sample_json(sample: LoopSample) -> dict[str, Any]:
        return {
            "seconds": sample.seconds,
            "thread_cpu_s": sample.thread_cpu_s,
            "callback_cpu_s": sample.callback_cpu_s,
            "callback_wall_s": sum(s.wall_s for s in sample.callbacks.values()),
            "callback_calls": sample.callback_calls,
            "callbacks": {
                name: asdict(stats)
                for name, stats in sorted(
                    sample.callbacks.items(), key=lambda item: -item[1].cpu_s
                )
            },
            "file_calls": sample.file_calls,
            "gc_cpu_s": sample.gc_cpu_s,
            "gc": {str(gen): asdict(stats) for gen, stats in sorted(sample.gc.items())},
        }

    async def _forward(
        meter: LoopMeter,
        stream: FrameStream,
        frames: list[FrameIn],
        fps: float,
        settings: dict[str, Any],
    ) -> tuple[LoopSample, str]:
        """Send the frames at `fps` and measure until each is acked and released."""
        base, spool = stream.counters.acked, stream.spool
        profiler = cProfile.Profile() if settings["profile"] else None
        meter.start()
        if profiler is not None:
            profiler.enable()

        async def _submit_frames() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for n, frame in enumerate(frames):
                delay = start + n / fps - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                assert await stream.async_submit(frame)

        submitter = asyncio.get_running_loop().create_task(_submit_frames())
        await _wait(
            "every frame's ack and release",
            lambda: submitter.done()
            and stream.counters.acked - base >= len(frames)
            and spool.frame_count == 0,
            len(frames) / fps + 300,
        )
        profile_text = ""
        if profiler is not None:
            profiler.disable()
        sample = meter.stop()
        await submitter
        if profiler is not None:
            # Since Python 3.12 cProfile sees every thread: the executor's file I/O shows too.
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
            profile_text = out.getvalue()
            if settings["profile_out"]:
                profiler.dump_stats(settings["profile_out"])
        return sample, profile_text

    async def test_loop_time_per_frame(
        hass: HomeAssistant, bench_sidecar: Sidecar, tmp_path: Path
    ) -> None:
        """Measure an idle stretch, then the forwarding stretch; write the numbers."""
        settings = json.loads(os.environ[SETTINGS_ENV])
        fps, seconds, cameras = settings["fps"], settings["seconds"], settings["cameras"]
        total = round(fps * seconds)
        hass.loop.set_debug(settings["loop_debug"])
        frames = await hass.async_add_executor_job(_frames, total, cameras)
        sidecar = bench_sidecar
        entry = MockConfigEntry(
            domain=DOMAIN,
            unique_id=sidecar.server_id,
            data={"host": sidecar.host, "port": sidecar.port, "token": sidecar.token},
        )
        entry.add_to_hass(hass)
        with patch(
            "custom_components.home_security_ai.delivery.spool.spool_directory",
            lambda _hass, entry_id: tmp_path / "spool" / entry_id,
        ):
            assert await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
            data = entry.runtime_data
            stream, spool = data.frames, data.spool
            await _wait(
                "the streams", lambda: data.connection.connected and data.events.subscribed, 60
            )
            # One frame per camera first, so that their entities exist before measuring.
            for frame in await hass.async_add_executor_job(_frames, cameras, cameras, "warm"):
                assert await stream.async_submit(frame)
            await _wait("the warm-up frames", lambda: spool.frame_count == 0, 120)
            await hass.async_block_till_done()
            base = stream.counters.acked

            meter = LoopMeter(hass.loop)
            meter.start()
            # Polled as the forwarding stretch is, so that the bench's own polling cancels out.
            idle_end = hass.loop.time() + seconds
            await _wait("the idle stretch", lambda: hass.loop.time() >= idle_end, seconds + 60)
            idle = meter.stop()

            forward, profile_text = await _forward(meter, stream, frames, fps, settings)
            acked = stream.counters.acked - base
            counters = asdict(stream.counters)
            states = {
                camera_id: {
                    "sent": data.cameras[camera_id].frames_sent,
                    "accepted": data.cameras[camera_id].frames_accepted,
                    "duplicate": data.cameras[camera_id].frames_duplicate,
                }
                for camera_id in data.cameras
            }
            spool_stats = asdict(spool.stats)
            # Every frame acked once, none refused, dropped, retried or left in the spool.
            lost = {k: counters[k] for k in ("rejected", "dropped", "refused", "backpressure",
                                             "retried", "oversized")}
            assert acked == total, f"{acked} of {total} frames acked"
            assert not any(lost.values()), lost
            assert spool.frame_count == 0
            assert await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()

        result = {
            "fps": fps,
            "seconds": seconds,
            "cameras": cameras,
            "frames": total,
            "acked": acked,
            "frame_bytes": len(frames[0].image),
            "loop_debug": settings["loop_debug"],
            "counters": {k: v for k, v in counters.items() if k != "reject_reasons"},
            "cameras_state": states,
            "spool": spool_stats,
            "idle": _sample_json(idle),
            "forward": _sample_json(forward),
            "profile": profile_text,
            "meter_overhead_per_callback_s": overhead_per_callback(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_average": os.getloadavg()},
        }
        out_path = Path(settings["raw_out"])
        await hass.async_add_executor_job(out_path.write_text, json.dumps(result))


# ---- The script -----------------------------------------------------------------------------


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Per-frame loop time by both methods, and by path."""
    idle, forward, frames = raw["idle"], raw["forward"], raw["acked"]
    span = forward["seconds"]

    def per_frame(key: str) -> float:
        return (forward[key] - idle[key] / idle["seconds"] * span) / frames * 1000.0

    def idle_rate(key: str) -> float:
        return idle[key] / idle["seconds"] * 1000.0

    groups: dict[str, dict[str, float]] = {}
    for source, sign in ((forward, 1.0), (idle, -span / idle["seconds"])):
        for name, stats in source["callbacks"].items():
            row = groups.setdefault(
                group_of(name), {"calls": 0.0, "cpu_ms": 0.0, "max_cpu_ms": 0.0}
            )
            row["calls"] += sign * stats["calls"]
            row["cpu_ms"] += sign * stats["cpu_s"] * 1000.0
            if sign > 0:
                row["max_cpu_ms"] = max(row["max_cpu_ms"], stats["max_cpu_s"] * 1000.0)
    by_path = {
        group: {
            "calls_per_frame": row["calls"] / frames,
            "ms_per_frame": row["cpu_ms"] / frames,
            "max_callback_ms": row["max_cpu_ms"],
        }
        for group, row in groups.items()
    }
    slowest = max(forward["callbacks"].items(), key=lambda item: item[1]["max_cpu_s"])
    callbacks_per_frame = (
        forward["callback_calls"] - idle["callback_calls"] / idle["seconds"] * span
    ) / frames
    # What timing every callback costs by itself, taken out of the thread's CPU time.
    meter_ms = callbacks_per_frame * raw["meter_overhead_per_callback_s"] * 1000.0
    return {
        "methods": {
            "loop thread CPU": {
                "idle_ms_per_s": idle_rate("thread_cpu_s"),
                "forwarding_ms_per_s": forward["thread_cpu_s"] / span * 1000.0,
                "ms_per_frame": per_frame("thread_cpu_s") - meter_ms,
            },
            "CPU inside callbacks": {
                "idle_ms_per_s": idle_rate("callback_cpu_s"),
                "forwarding_ms_per_s": forward["callback_cpu_s"] / span * 1000.0,
                "ms_per_frame": per_frame("callback_cpu_s"),
            },
            "wall time inside callbacks": {
                "idle_ms_per_s": idle_rate("callback_wall_s"),
                "forwarding_ms_per_s": forward["callback_wall_s"] / span * 1000.0,
                "ms_per_frame": per_frame("callback_wall_s"),
            },
        },
        "by_path": by_path,
        "max_callback": {
            "name": slowest[0],
            "cpu_ms": slowest[1]["max_cpu_s"] * 1000.0,
            "wall_ms": slowest[1]["max_wall_s"] * 1000.0,
        },
        "callbacks_per_frame": callbacks_per_frame,
        "meter_ms_per_frame": meter_ms,
        "forward_seconds": span,
        "gc_ms_per_frame": per_frame("gc_cpu_s"),
        "file_calls_on_loop": forward["file_calls"],
    }


def print_tables(result: dict[str, Any]) -> None:
    print(f"{result['acked']} of {result['frames']} frames acked and released at "
          f"{result['fps']:g} frames/s ({result['frame_bytes']} bytes each), over "
          f"{result['summary']['forward_seconds']:.1f} s; idle stretch "
          f"{result['idle']['seconds']:.1f} s; loop debug {result['loop_debug']}")
    print()
    print("| method | idle ms/s | forwarding ms/s | loop ms per frame |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in result["summary"]["methods"].items():
        print(f"| {name} | {row['idle_ms_per_s']:.2f} | {row['forwarding_ms_per_s']:.2f} | "
              f"{row['ms_per_frame']:.3f} |")
    print()
    print("| path | callbacks per frame | loop ms per frame | max callback ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in sorted(result["summary"]["by_path"].items()):
        print(f"| {name} | {row['calls_per_frame']:.1f} | {row['ms_per_frame']:.3f} | "
              f"{row['max_callback_ms']:.2f} |")
    slowest = result["summary"]["max_callback"]
    print()
    print(f"{result['summary']['callbacks_per_frame']:.1f} callbacks per frame; timing them "
          f"cost {result['summary']['meter_ms_per_frame']:.3f} ms per frame, taken out of the "
          "thread CPU row")
    print(f"longest callback: {slowest['name']}: {slowest['cpu_ms']:.2f} ms CPU, "
          f"{slowest['wall_ms']:.2f} ms wall; file-system calls on the loop while forwarding: "
          f"{len(result['summary']['file_calls_on_loop'])}")
    gc_ms = result["summary"]["gc_ms_per_frame"]
    print(f"of the loop's time per frame, the garbage collector took {gc_ms:.3f} ms: " + ", ".join(
        f"generation {gen} {stats['collections']}x {stats['cpu_s'] * 1000.0:.0f} ms"
        for gen, stats in result["forward"]["gc"].items()
    ))
    print("top callbacks while forwarding (CPU ms, calls):")
    for name, stats in list(result["forward"]["callbacks"].items())[:12]:
        print(f"  {stats['cpu_s'] * 1000.0:8.1f} {stats['calls']:7d}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--loop-debug", action="store_true",
                        help="keep asyncio's debug mode on, as the test harness has it")
    parser.add_argument("--profile", action="store_true",
                        help="profile the loop thread while forwarding (cProfile)")
    parser.add_argument("--profile-out", type=Path,
                        help="also write the profile to this file (pstats), for sorting it "
                             "other ways")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/ha_loop_time.json")
    args = parser.parse_args()

    import tempfile

    import pytest

    with tempfile.TemporaryDirectory() as scratch:
        raw_out = Path(scratch) / "raw.json"
        os.environ[SETTINGS_ENV] = json.dumps({
            "fps": args.fps, "seconds": args.seconds, "cameras": args.cameras,
            "loop_debug": args.loop_debug, "profile": args.profile or bool(args.profile_out),
            "profile_out": str(args.profile_out.resolve()) if args.profile_out else "",
            "raw_out": str(raw_out),
        })
        code = pytest.main([
            str(Path(__file__).resolve()), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(REPO_ROOT), "-o", f"timeout={int(args.seconds * 3 + 600)}",
        ])
        if code != 0 or not raw_out.is_file():
            raise SystemExit(f"the measurement failed (pytest exit code {code})")
        result = json.loads(raw_out.read_text())
    result["summary"] = summarize(result)
    print_tables(result)
    if result["profile"]:
        print(result["profile"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
