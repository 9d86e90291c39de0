"""The labelled real photos (data/photos/labels.yaml) and how a detector's findings on them are
counted: per class and per photo, found objects are matched to expected ones by count, not by
box, and objects marked optional count neither as a miss nor as a false alarm."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt
import yaml

PHOTOS_DIR: Final = Path(__file__).parents[1] / "data" / "photos"
LABELS_FILE: Final = PHOTOS_DIR / "labels.yaml"


@dataclass(frozen=True, slots=True)
class LabelledPhoto:
    name: str
    path: Path
    shows: str
    expected: Mapping[str, int]
    optional: Mapping[str, int]

    def read(self) -> npt.NDArray[np.uint8]:
        """The photo as a BGR array."""
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {self.path}")
        return np.asarray(image, dtype=np.uint8)


def _package_dir(package: str) -> Path:
    """An installed package's folder, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _counts(raw: Any, name: str, key: str) -> dict[str, int]:
    counts = dict(raw or {})
    for label, count in counts.items():
        if label != label.lower() or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name}: {key} {label}: {count!r} is not a lowercase class count")
    return counts


def load_photos(labels_file: Path = LABELS_FILE) -> list[LabelledPhoto]:
    """The labelled photos, in the file's order."""
    raw = yaml.safe_load(labels_file.read_text(encoding="utf-8"))
    photos = []
    for name, entry in raw.items():
        if entry.get("package"):
            path = _package_dir(entry["package"]) / entry["path"]
        else:
            path = labels_file.parent / name
        photos.append(LabelledPhoto(
            name, path, str(entry.get("shows", "")),
            _counts(entry.get("expected"), name, "expected"),
            _counts(entry.get("optional"), name, "optional"),
        ))
    return photos


@dataclass(slots=True)
class Tally:
    """One class's counts over some photos."""

    expected: int = 0
    found: int = 0  # reported, optional ones included
    matched: int = 0  # found and expected: min(found, expected) per photo
    false_alarms: int = 0  # found beyond the expected and optional ones
    photos_missed: list[str] = field(default_factory=list)
    photos_false: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        counted = self.matched + self.false_alarms
        return self.matched / counted if counted else None

    @property
    def recall(self) -> float | None:
        return self.matched / self.expected if self.expected else None

    def add(self, other: Tally) -> None:
        self.expected += other.expected
        self.found += other.found
        self.matched += other.matched
        self.false_alarms += other.false_alarms
        self.photos_missed += other.photos_missed
        self.photos_false += other.photos_false


def score(photo: LabelledPhoto, labels: Iterable[str]) -> dict[str, Tally]:
    """Per class: what a detector that reported `labels` on `photo` found, matched and
    invented."""
    found: dict[str, int] = {}
    for label in labels:
        found[label] = found.get(label, 0) + 1
    tallies = {}
    for label in sorted(set(found) | set(photo.expected)):
        expected = photo.expected.get(label, 0)
        count = found.get(label, 0)
        matched = min(count, expected)
        false_alarms = max(0, count - expected - photo.optional.get(label, 0))
        tallies[label] = Tally(
            expected, count, matched, false_alarms,
            [photo.name] if matched < expected else [],
            [photo.name] if false_alarms else [],
        )
    return tallies


def total(per_photo: Iterable[Mapping[str, Tally]]) -> dict[str, Tally]:
    """The tallies of many photos added up per class."""
    totals: dict[str, Tally] = {}
    for tallies in per_photo:
        for label, tally in tallies.items():
            totals.setdefault(label, Tally()).add(tally)
    return dict(sorted(totals.items()))
