"""Detection on a GPU: frames per second by batch size for each way YOLO can run there, and JPEG
decoding on the GPU against the CPU. Run by `bench/gpu_check.sh`, which adds the language-model
bench.

On a CUDA device: PyTorch FP32, PyTorch FP16 and TensorRT FP16 (when the `tensorrt` package is
installed) at batch sizes 1 to 32, and `torchvision.io.decode_jpeg(device="cuda")` against
simplejpeg on the CPU. With `--smoke` (or without a CUDA device): the same code on the CPU, with
the tiny model, small batches and few frames, so the GPU path cannot rot unnoticed.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/gpu_check.py [--smoke] [--model yolo26n|tiny|PATH.pt]
      [--batches 1,2,4,8,16,32] [--imgsz 640] [--out bench/results/gpu_check_detect.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

import numpy as np  # noqa: E402
import simplejpeg  # noqa: E402
from detect_backends import build_weights  # noqa: E402
from detect_throughput import machine, make_workload  # noqa: E402

from gpu_server.config import load_config  # noqa: E402
from gpu_server.ingest.detect import build_detector  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check_detect.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="quick CPU run of every path")
    parser.add_argument("--model", default=None, help="default yolo26n; tiny with --smoke")
    parser.add_argument("--batches", default=None, help="default 1,2,4,8,16,32; 1,2 smoke")
    parser.add_argument("--imgsz", type=int, default=None, help="default 640; 160 smoke")
    parser.add_argument("--frames", type=int, default=None, help="frames per batch size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.model = args.model or ("tiny" if smoke else "yolo26n")
    args.batch_sizes = [int(b) for b in (args.batches or ("1,2" if smoke else
                                                          "1,2,4,8,16,32")).split(",")]
    args.imgsz = args.imgsz or (160 if smoke else 640)
    args.frames = args.frames or (4 if smoke else 64)
    return args


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def frames_per_second(
    run: Callable[[Sequence[Any]], object], items: list[Any], batch: int
) -> float:
    run(items[:batch])  # warm-up at this batch shape (kernels, TensorRT profiles)
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        run(items[start : start + batch])
    return len(items) / (time.perf_counter() - started)


def detector_paths(args: argparse.Namespace, weights: Path, workdir: Path,
                   device: str) -> dict[str, Callable[[Sequence[Any]], object]]:
    """Each way to run the model on `device`, as a function of a batch of BGR images."""
    conf = 0.25
    paths: dict[str, Callable[[Sequence[Any]], object]] = {}
    backends = ["pytorch", "onnx"] if args.smoke or device == "cpu" else ["pytorch", "tensorrt"]
    for backend in backends:
        config = load_config(env={}, overrides={
            "models_dir": weights.parent, "data_dir": workdir / "data",
            "detector.weights": str(weights), "detector.backend": backend,
            "detector.device": device, "detector.confidence": conf, "detector.imgsz": args.imgsz,
            "batching.max_batch_size": max(args.batch_sizes),
        })
        selection = build_detector(config)
        if selection.fallback:
            print(f"{backend}: {selection.fallback_reason}; left out", flush=True)
            continue
        paths[f"{backend} ({selection.detector.backend})"] = selection.detector.detect_batch
    if device.startswith("cuda"):
        # FP16 in PyTorch: ultralytics converts the model on the first half-precision call.
        from ultralytics import YOLO  # type: ignore[attr-defined]

        model = YOLO(str(weights))

        def half(images: Sequence[Any]) -> object:
            return model.predict(list(images), imgsz=args.imgsz, conf=conf, quantize=16,
                                 device=device, verbose=False)

        paths["pytorch fp16"] = half
    return paths


def decode_paths(device: str) -> dict[str, Callable[[Sequence[bytes]], object]]:
    """JPEG decoding: simplejpeg on the CPU, torchvision's decoder on `device` when present."""
    paths: dict[str, Callable[[Sequence[bytes]], object]] = {
        "simplejpeg (cpu)": lambda jpegs: [simplejpeg.decode_jpeg(j, colorspace="BGR")
                                           for j in jpegs],
    }
    try:
        import torch
        from torchvision.io import decode_jpeg
    except ImportError:
        return paths

    def torchvision_decode(jpegs: Sequence[bytes]) -> object:
        tensors = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
        images = decode_jpeg(tensors, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return images

    paths[f"torchvision ({device})"] = torchvision_decode
    return paths


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = "cuda:0" if cuda_available() and not args.smoke else "cpu"
    result: dict[str, Any] = {
        "smoke": args.smoke, "device": device, "model": args.model, "imgsz": args.imgsz,
        "frames": args.frames, "batch_sizes": args.batch_sizes,
    }
    with tempfile.TemporaryDirectory(prefix="hsai-gpu-check-") as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "0")
        weights = build_weights(args.model, workdir / "models")
        frames = argparse.Namespace(width=1920, height=1080, cameras=1, frames=args.frames)
        workload = make_workload(frames)
        images: list[np.ndarray] = workload.decoded
        detect: dict[str, dict[str, float]] = {}
        for name, run in detector_paths(args, weights, workdir, device).items():
            detect[name] = {str(b): round(frames_per_second(run, images, b), 2)
                            for b in args.batch_sizes}
            print(f"detect {name}: {detect[name]}", flush=True)
        decode: dict[str, dict[str, float]] = {}
        for name, run in decode_paths(device).items():
            decode[name] = {str(b): round(frames_per_second(run, workload.jpegs[0], b), 2)
                            for b in args.batch_sizes}
            print(f"decode 1080p {name}: {decode[name]}", flush=True)
    result.update({"detect_fps_by_batch": detect, "decode_1080p_fps_by_batch": decode,
                   "load_average": round(os.getloadavg()[0], 2), "machine": machine()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    print(f"\nwrote {args.out}")
    return result


def print_table(result: dict[str, Any]) -> None:
    sizes = [str(b) for b in result["batch_sizes"]]
    print(f"\n{result['model']} at {result['imgsz']} px on {result['device']}, 1080p frames "
          f"(frames/s by batch size)\n")
    print("| path | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    print("| --- |" + " ---: |" * len(sizes))
    for group in ("detect_fps_by_batch", "decode_1080p_fps_by_batch"):
        kind = "detect" if group.startswith("detect") else "decode"
        for name, by_batch in result[group].items():
            print(f"| {kind}: {name} | " + " | ".join(str(by_batch[b]) for b in sizes) + " |")


if __name__ == "__main__":
    main()
