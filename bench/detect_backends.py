"""Detector backends compared in one run: PyTorch against ONNX Runtime, in-process and through the
sidecar over gRPC, for each model and frame size.

For every model (the tiny random-weight YOLO and full-size ones with random weights built from
ultralytics' model definitions, no download) and each backend, the detector is built the way the
sidecar builds it (`detector.backend`, the exported file cached beside the weights; the export
time is reported apart). Then, per frame size:
  * in-process P1: ultralytics' own `YOLO(file).predict(image)` on the same file, one already
    decoded frame per call, with ultralytics' defaults (for an ONNX file also with ONNX
    Runtime's threads told to sleep, the better of the two kept);
  * in-process P1 from JPEGs: the same, fed what the sidecar is fed: each frame's JPEG
    decoded by OpenCV at full size inside the timed loop;
  * sidecar: an in-process server on loopback, N camera streams sending JPEG bytes, timed from
    the first frame sent to the last ack (transfer, decoding at reduced scale, batching and
    the detector's copies running side by side included).
Ratios: ONNX ÷ PyTorch (in-process P1 and sidecar) and sidecar ÷ in-process P1 per backend.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/detect_backends.py [--models tiny,yolo26n] [--imgsz 640]
      [--sizes 640x480,1920x1080] [--frames 8] [--cameras 2] [--device cpu]
      [--backends pytorch,onnx] [--rounds 3] [--workers 0]
      [--sidecar-rounds 2] [--out bench/results/detect_backends.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

import numpy as np  # noqa: E402
from detect_throughput import machine, make_workload, run_in_process, run_sidecar  # noqa: E402

from gpu_server.config import load_config  # noqa: E402
from gpu_server.ingest.detect import build_detector, detector_workers  # noqa: E402
from gpu_server.ingest.exported import stop_spinning  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "detect_backends.json"
# The language model server and enrichment would take the same cores as detection at start.
SIDECAR_ONLY_DETECTS = {"llm.enabled": False, "enrich.enabled": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,yolo26n", help="tiny, yolo11n, yolo26n, ...")
    parser.add_argument("--backends", default="pytorch,onnx", help="pytorch, onnx, tensorrt")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--sizes", default="640x480,1920x1080", help="frame sizes, WxH")
    parser.add_argument("--frames", type=int, default=16, help="frames per camera")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0,
                        help="the sidecar's detector copies (detector.workers; 0: automatic)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process rounds, best kept")
    parser.add_argument("--sidecar-rounds", type=int, default=2, help="sidecar runs, best kept")
    parser.add_argument("--max-batch-size", type=int, default=4)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    # Random weights give boxes only at a tiny threshold; 0.25 keeps post-processing as light
    # as it is with real weights on a quiet scene.
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def build_weights(model: str, folder: Path) -> Path:
    from testlib.tiny_yolo import build_random_yolo, build_tiny_yolo

    if model == "tiny":
        return build_tiny_yolo(folder / "tiny-yolo.pt")
    if model.endswith(".pt"):
        return Path(model)
    return build_random_yolo(folder / f"{model}-random.pt", model)


def build(args: argparse.Namespace, weights: Path, backend: str, workdir: Path) -> Any:
    """The detector as the sidecar builds it for `backend`, and a result row to fill."""
    config = load_config(env={}, overrides={
        "models_dir": weights.parent, "data_dir": workdir / "data",
        "detector.weights": str(weights), "detector.backend": backend,
        "detector.device": args.device, "detector.confidence": args.conf,
        "detector.imgsz": args.imgsz, "batching.max_batch_size": args.max_batch_size,
        "detector.workers": args.workers,
    })
    started = time.perf_counter()
    selection = build_detector(config)
    detector = selection.detector
    row: dict[str, Any] = {
        "backend": backend, "runs_on": detector.backend, "device": detector.device,
        "file": detector.weights, "fallback_reason": selection.fallback_reason,
        "sidecar_copies": detector_workers(config.detector),
        # The export (first build only) and the warm-up.
        "build_s": round(time.perf_counter() - started, 1), "sizes": {},
    }
    return detector, row


class PlainPredict:
    """In-process predict as a user of ultralytics writes it: `YOLO(file).predict(image)`."""

    def __init__(self, path: Path, args: argparse.Namespace, *, sleeping_threads: bool) -> None:
        from ultralytics import YOLO

        self.variant = "ONNX Runtime threads sleeping" if sleeping_threads else "defaults"
        self._model = YOLO(str(path), task="detect")
        self._args = args
        self.detect_batch([np.zeros((480, 640, 3), dtype=np.uint8)])  # loads the session
        if sleeping_threads:
            stop_spinning(self._model, path)

    def detect_batch(self, images: list[np.ndarray]) -> list[Any]:
        return list(self._model.predict(
            images, conf=self._args.conf, imgsz=self._args.imgsz, verbose=False,
            device=self._args.device,
        ))


def baselines(detector: Any, args: argparse.Namespace) -> list[PlainPredict]:
    path = Path(detector.path)
    plain = [PlainPredict(path, args, sleeping_threads=False)]
    if path.suffix == ".onnx":
        plain.append(PlainPredict(path, args, sleeping_threads=True))
    return plain


def p1_fps(plain: list[PlainPredict], frames: list[np.ndarray]) -> tuple[float, str]:
    """The best in-process variant, with torch's threads as ultralytics sets them."""
    import torch
    from ultralytics.utils import NUM_THREADS

    sidecar_threads = torch.get_num_threads()
    torch.set_num_threads(NUM_THREADS)
    try:
        runs = [(run_in_process(p, frames, 1), p.variant) for p in plain]
    finally:
        torch.set_num_threads(sidecar_threads)
    return max(runs)


def p1_jpeg_fps(plain: PlainPredict, jpegs: list[bytes]) -> float:
    """In-process predict fed what the sidecar is fed, JPEG bytes: each decoded by OpenCV at
    full size (as ultralytics decodes a file) in the timed loop, then predicted alone."""
    import cv2
    import torch
    from ultralytics.utils import NUM_THREADS

    def decoded(data: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)

    sidecar_threads = torch.get_num_threads()
    torch.set_num_threads(NUM_THREADS)
    try:
        plain.detect_batch([decoded(jpegs[0])])  # warm-up
        started = time.perf_counter()
        for data in jpegs:
            plain.detect_batch([decoded(data)])
        return len(jpegs) / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(sidecar_threads)


def bench_model(args: argparse.Namespace, weights: Path, workdir: Path) -> list[dict[str, Any]]:
    built = [build(args, weights, b, workdir) for b in args.backends.split(",")]
    plain = [baselines(detector, args) for detector, _ in built]
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        frames_args = argparse.Namespace(**{**vars(args), "width": width, "height": height})
        workload = make_workload(frames_args)
        # Backends take turns, best of the rounds: load from other processes on a shared
        # machine then hits both alike instead of skewing the ratio.
        best = [(0.0, "")] * len(built)
        best_jpeg = [0.0] * len(built)
        jpegs = [data for frames in workload.jpegs for data in frames]
        for _ in range(args.rounds):
            for index in range(len(built)):
                best[index] = max(best[index], p1_fps(plain[index], workload.decoded))
                variant = next(p for p in plain[index] if p.variant == best[index][1])
                best_jpeg[index] = max(best_jpeg[index], p1_jpeg_fps(variant, jpegs))
        for (detector, row), (p1, variant), p1_jpeg in zip(built, best, best_jpeg, strict=True):
            # Best of the sidecar rounds too; each round a fresh data folder, since the
            # sidecar remembers the frames it has seen.
            sidecar, batches = 0.0, []
            for round_ in range(args.sidecar_rounds):
                fps, _, sizes = asyncio.run(run_sidecar(
                    detector, workload, frames_args,
                    workdir / f"{row['backend']}-{size}-{round_}",
                    {**SIDECAR_ONLY_DETECTS, "detector.workers": args.workers},
                ))
                if fps > sidecar:
                    sidecar, batches = fps, sizes
            row["sizes"][size] = {
                "in_process_p1_fps": round(p1, 2), "in_process_p1_variant": variant,
                "in_process_p1_jpeg_fps": round(p1_jpeg, 2),
                "sidecar_fps": round(sidecar, 2),
                "sidecar_over_p1": round(sidecar / p1, 2),
                "sidecar_over_p1_jpeg": round(sidecar / p1_jpeg, 2),
                "sidecar_mean_batch": round(sum(batches) / max(1, len(batches)), 2),
            }
            print(f"  {row['backend']:8} {size:>10}: P1 {p1:7.2f} fps, P1 from JPEGs "
                  f"{p1_jpeg:7.2f} fps, sidecar {sidecar:7.2f} fps", flush=True)
    return [row for _, row in built]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hsai-bench-") as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "0")
        for model in args.models.split(","):
            print(f"{model}:", flush=True)
            weights = build_weights(model, workdir / "models")
            # A data folder per model: the sidecar remembers the frames it has seen.
            rows = bench_model(args, weights, workdir / model)
            results.append({"model": model, "backends": rows})
    result = {
        "imgsz": args.imgsz, "device": args.device, "confidence": args.conf,
        "cameras": args.cameras, "frames_per_camera": args.frames, "rounds": args.rounds,
        "sidecar_rounds": args.sidecar_rounds,
        "max_batch_size": args.max_batch_size, "models": results,
        "ratios": ratios(results),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    print(f"\nwrote {args.out}")
    return result


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each non-PyTorch backend against PyTorch, per model and frame size."""
    out = []
    for model in results:
        by_backend = {row["backend"]: row for row in model["backends"]}
        base = by_backend.get("pytorch")
        if base is None:
            continue
        for name, row in by_backend.items():
            if name == "pytorch":
                continue
            for size, numbers in row["sizes"].items():
                ref = base["sizes"][size]
                out.append({
                    "model": model["model"], "backend": name, "size": size,
                    "p1_vs_pytorch": round(numbers["in_process_p1_fps"]
                                           / ref["in_process_p1_fps"], 2),
                    "sidecar_vs_pytorch": round(numbers["sidecar_fps"] / ref["sidecar_fps"], 2),
                })
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"\nimgsz {result['imgsz']} on {result['device']}, {result['cameras']} cameras x "
          f"{result['frames_per_camera']} frames, load average before/after "
          f"{result['load_average_before_after']}")
    print()
    print("| model | backend (runs on) | frames | in-process P1 fps | P1 from JPEGs fps "
          "| sidecar fps | sidecar copies | sidecar ÷ P1 | sidecar ÷ P1 from JPEGs |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model in result["models"]:
        for row in model["backends"]:
            for size, n in row["sizes"].items():
                print(f"| {model['model']} | {row['backend']} ({row['runs_on']}) | {size} "
                      f"| {n['in_process_p1_fps']} | {n['in_process_p1_jpeg_fps']} "
                      f"| {n['sidecar_fps']} | {row['sidecar_copies']} "
                      f"| {n['sidecar_over_p1']} | {n['sidecar_over_p1_jpeg']} |")
    if result["ratios"]:
        print()
        print("| model | backend | frames | ÷ PyTorch, in-process P1 | ÷ PyTorch, sidecar |")
        print("| --- | --- | --- | ---: | ---: |")
        for r in result["ratios"]:
            print(f"| {r['model']} | {r['backend']} | {r['size']} | {r['p1_vs_pytorch']} "
                  f"| {r['sidecar_vs_pytorch']} |")


if __name__ == "__main__":
    main()
