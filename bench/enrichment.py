"""What enrichment costs per batch on this machine: faces (dlib), poses (BlazePose), plates
(PP-OCR).

Runs the sidecar's real enrichment step (`gpu_server.enrich.pipeline.Enricher`, models loaded
through the model zoo's registry) on crops of real photos (ultralytics' zidane.jpg, scikit-
image's astronaut) and on rendered plates, and reports:
  * the first batch of each kind, which loads the model (cold), and the mean of the next ones;
  * milliseconds per model and batch, from the step's own timings;
  * resident memory the process gained when each model loaded, one model at a time in a zoo of
    its own before the batches run (what the zoo's estimates FACE_MODEL_MEMORY,
    POSE_MODEL_MEMORY and OCR_MODEL_MEMORY should cover).

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/enrichment.py [--repeats 5] [--out bench/results/enrichment.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# Test-only helpers (rendered plates, whole-frame boxes) live beside the tests.
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server" / "enrich"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from enrich_testlib import crops_of, plate_scene, whole  # noqa: E402

from gpu_server.config import EnrichConfig  # noqa: E402
from gpu_server.enrich.faces import FACE_MODEL_KEY, FACE_MODEL_MEMORY  # noqa: E402
from gpu_server.enrich.pipeline import Crop, Enricher  # noqa: E402
from gpu_server.enrich.plates import OCR_MODEL_KEY, OCR_MODEL_MEMORY  # noqa: E402
from gpu_server.enrich.pose import POSE_MODEL_KEY, POSE_MODEL_MEMORY  # noqa: E402
from gpu_server.models.registry import MIB, ModelRegistry  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "enrichment.json"


def rss_bytes() -> int:
    """Resident memory of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def photos() -> dict[str, np.ndarray]:
    import skimage
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    data = Path(skimage.__file__).parent / "data"
    return {
        "zidane": cv2.imread(str(assets / "zidane.jpg")),
        "astronaut": cv2.imread(str(data / "astronaut.png")),
    }


def batches() -> dict[str, list[Crop]]:
    images = photos()
    zidane, astronaut = images["zidane"], images["astronaut"]
    tighter = np.ascontiguousarray(zidane[60:600, 700:1250])
    people = [
        *crops_of(zidane, whole("person", zidane), sha="a"),
        *crops_of(tighter, whole("person", tighter), sha="b"),
        *crops_of(astronaut, whole("person", astronaut), sha="c"),
    ]
    plates: list[Crop] = []
    for index, text in enumerate(("AB 123 CD", "KA 55 XY")):
        scene = plate_scene(text)
        plates.extend(crops_of(scene, whole("car", scene), sha=f"p{index}"))
    return {
        "people (3 person crops)": people,
        "vehicles (2 vehicle crops)": plates,
        "both (3 + 2 crops)": people + plates,
    }


MODELS = (
    (FACE_MODEL_KEY, FACE_MODEL_MEMORY),
    (POSE_MODEL_KEY, POSE_MODEL_MEMORY),
    (OCR_MODEL_KEY, OCR_MODEL_MEMORY),
)


async def model_memory(data: Path, work: dict[str, list[Crop]]) -> dict[str, int]:
    """Resident memory gained by loading each model alone and running it once on its crops (a
    batch loads several at once; ONNX Runtime grows with the first sizes it sees)."""
    registry = ModelRegistry(4096 * MIB)
    Enricher(EnrichConfig(), data, registry)
    people, vehicles = work["people (3 person crops)"], work["vehicles (2 vehicle crops)"]
    memory: dict[str, int] = {}
    for key, _ in MODELS:
        before = rss_bytes()
        async with registry.use(key) as model:
            for crop in vehicles if key == OCR_MODEL_KEY else people:
                if key == FACE_MODEL_KEY:
                    model.faces(crop.pixels)
                elif key == POSE_MODEL_KEY:
                    model.pose(crop.pixels)
                else:
                    model.read(crop.pixels)
            memory[key] = rss_bytes() - before
    await registry.close()
    return memory


async def run(repeats: int) -> dict[str, Any]:
    work = batches()
    with tempfile.TemporaryDirectory() as data:
        memory = await model_memory(Path(data), work)
        registry = ModelRegistry(4096 * MIB)
        enricher = Enricher(EnrichConfig(), Path(data), registry)
        status = enricher.status()
        if not (status.faces_available and status.plates_available and status.pose_available):
            raise SystemExit(f"enrichment unavailable: {status}")
        rows: list[dict[str, Any]] = []
        for name, crops in work.items():
            started = time.perf_counter()
            first = await enricher.enrich(crops)
            cold_ms = (time.perf_counter() - started) * 1000.0
            warm: list[float] = []
            per_model: dict[str, list[float]] = {}
            for _ in range(repeats):
                started = time.perf_counter()
                result = await enricher.enrich(crops)
                warm.append((time.perf_counter() - started) * 1000.0)
                for task, ms in result.timings_ms.items():
                    per_model.setdefault(task, []).append(ms)
            rows.append(
                {
                    "batch": name,
                    "crops": len(crops),
                    "cold_ms": round(cold_ms, 1),
                    "warm_mean_ms": round(mean(warm), 1),
                    "warm_ms_per_model": {task: round(mean(v), 1) for task, v in per_model.items()},
                    "people": [p.name or "unknown" for p in first.people],
                    "poses": [list(p.flags) for p in first.poses],
                    "plates": [p.normalized for p in first.plates],
                }
            )
        await registry.close()
    return {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "repeats": repeats,
        "batches": rows,
        "model_memory": {
            key: {"rss_gain_mib": round(value / MIB, 1), "zoo_estimate_mib": estimate // MIB}
            for key, estimate in MODELS
            if (value := memory.get(key)) is not None
        },
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"{'batch':<28} {'cold ms':>9} {'warm ms':>9}  per model (warm ms)")
    for row in report["batches"]:
        models = ", ".join(f"{task} {ms}" for task, ms in row["warm_ms_per_model"].items())
        print(f"{row['batch']:<28} {row['cold_ms']:>9} {row['warm_mean_ms']:>9}  {models}")
    print()
    print(f"{'model':<24} {'RSS gained MiB':>15} {'zoo estimate MiB':>17}")
    for key, value in report["model_memory"].items():
        print(f"{key:<24} {value['rss_gain_mib']:>15} {value['zoo_estimate_mib']:>17}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = asyncio.run(run(args.repeats))
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
