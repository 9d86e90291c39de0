"""Re-identification across cameras: "the same person was on the Driveway 40 s ago".

Three cues, strongest first: a face embedding (when a face was found; the same threshold as
the known people), the embedding of a CLIP-class appearance model when one is in the models
folder (appearance.py; cosine similarity), and otherwise the colours of the person's crop (hue
and saturation histograms of its upper and lower half, which stand for clothing; compared by
histogram intersection). Colour alone is a weak cue: it links only within the index's
time-to-live, only across different cameras, and the event says which cue linked it.

Sightings are kept in memory for `ttl_s` and written to the data folder now and then and at
shutdown, so a restart within the time-to-live does not forget them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from gpu_server.core.enrichment import (
    Reidentified,
)
from gpu_server.core.images import BgrImage
from gpu_server.files import atomic_write

_LOGGER = logging.getLogger(__name__)

INDEX_FILE: Final = "reid_index.json"
HUE_BINS: Final = 16
SATURATION_BINS: Final = 8
# Histogram intersection (0..1) from which two crops' colours are taken for the same clothes.
COLOUR_MATCH: Final = 0.75
MAX_SIGHTINGS: Final = 500
# A face that matches says more than colours that do.
_CUE_RANK: Final = {"colour": 0, "appearance": 1, "face": 2}
_FLUSH_EVERY_S: Final = 60.0

Descriptor = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Sighting:
    camera_id: str
    at_ms: int
    colour: Descriptor | None = None  # normalised histograms
    face: Descriptor | None = None  # a 128-d face embedding
    appearance: Descriptor | None = None  # a normalised appearance-model embedding


def colour_descriptor(pixels: BgrImage) -> Descriptor:
    """Hue-saturation histograms of the crop's upper and lower half, each summing to 1."""
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV)
    middle = max(1, hsv.shape[0] // 2)
    parts = []
    for half in (hsv[:middle], hsv[middle:]):
        histogram = cv2.calcHist(
            [half], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]
        ).flatten()
        total = float(histogram.sum())
        parts.append(histogram / total if total > 0 else histogram)
    return np.concatenate(parts).astype(np.float32)


def colour_similarity(a: Descriptor, b: Descriptor) -> float:
    """Histogram intersection of both halves, averaged: 1 for the same colours, 0 for none."""
    return float(np.minimum(a, b).sum() / 2.0)


class AppearanceIndex:
    """Recent sightings per camera; thread-safe (the enrichment runs in worker threads)."""

    def __init__(
        self,
        data_dir: Path | None,
        *,
        ttl_s: float,
        face_distance: float,
        appearance_match: float = 0.85,
    ) -> None:
        self._path = data_dir / INDEX_FILE if data_dir is not None else None
        self.ttl_s = ttl_s
        self._face_distance = face_distance
        self._appearance_match = appearance_match
        self._lock = threading.Lock()
        self._sightings: list[Sighting] = []
        self._flushed_ms = 0
        self._load()

    def match(
        self,
        camera_id: str,
        colours: Sequence[Descriptor],
        faces: Sequence[Descriptor],
        now_ms: int,
        appearances: Sequence[Descriptor] = (),
    ) -> list[Reidentified]:
        """The other cameras that saw one of these people within the time-to-live, the best
        sighting per camera, faces before colours."""
        best: dict[str, Reidentified] = {}
        with self._lock:
            recent = self._recent(now_ms)
        for seen in recent:
            if seen.camera_id == camera_id:
                continue
            found = self._compare(seen, colours, faces, appearances, now_ms)
            if found is None:
                continue
            current = best.get(seen.camera_id)
            if current is None or (_CUE_RANK[found.cue], found.similarity) > (
                _CUE_RANK[current.cue],
                current.similarity,
            ):
                best[seen.camera_id] = found
        return sorted(best.values(), key=lambda item: item.seconds_ago)

    def _compare(
        self,
        seen: Sighting,
        colours: Sequence[Descriptor],
        faces: Sequence[Descriptor],
        appearances: Sequence[Descriptor],
        now_ms: int,
    ) -> Reidentified | None:
        ago = (now_ms - seen.at_ms) / 1000.0
        if seen.face is not None and faces:
            nearest = min(float(np.linalg.norm(face - seen.face)) for face in faces)
            if nearest <= self._face_distance:
                return Reidentified(seen.camera_id, ago, "face", max(0.0, 1.0 - nearest))
            return None  # a face that does not match is not made up for by colours
        if seen.appearance is not None and appearances:
            likeness = max(float(np.dot(item, seen.appearance)) for item in appearances)
            if likeness >= self._appearance_match:
                return Reidentified(seen.camera_id, ago, "appearance", likeness)
            return None
        if seen.colour is not None and colours:
            likeness = max(colour_similarity(colour, seen.colour) for colour in colours)
            if likeness >= COLOUR_MATCH:
                return Reidentified(seen.camera_id, ago, "colour", likeness)
        return None

    def add(
        self,
        camera_id: str,
        colours: Sequence[Descriptor],
        faces: Sequence[Descriptor],
        now_ms: int,
        appearances: Sequence[Descriptor] = (),
    ) -> None:
        """Remember this window's people; written to disk at most once a minute. With appearance
        embeddings the colours are not kept: the model's judgement replaces theirs."""
        new = [Sighting(camera_id, now_ms, face=face) for face in faces]
        new += [Sighting(camera_id, now_ms, appearance=item) for item in appearances]
        if not appearances:
            new += [Sighting(camera_id, now_ms, colour=colour) for colour in colours]
        with self._lock:
            self._sightings = (self._recent(now_ms) + new)[-MAX_SIGHTINGS:]
            due = now_ms - self._flushed_ms >= _FLUSH_EVERY_S * 1000
        if due:
            self.flush(now_ms)

    def _recent(self, now_ms: int) -> list[Sighting]:
        oldest = now_ms - self.ttl_s * 1000
        return [seen for seen in self._sightings if oldest <= seen.at_ms <= now_ms + 1000]

    def flush(self, now_ms: int) -> None:
        if self._path is None:
            return
        with self._lock:
            rows = [
                {
                    "camera_id": seen.camera_id,
                    "at_ms": seen.at_ms,
                    "colour": _rounded(seen.colour),
                    "face": _rounded(seen.face),
                    "appearance": _rounded(seen.appearance),
                }
                for seen in self._recent(now_ms)
            ]
            self._flushed_ms = now_ms
        try:
            atomic_write(self._path, json.dumps({"version": 1, "sightings": rows}), private=True)
        except OSError as exc:
            _LOGGER.warning("Cannot write the re-identification index: %s", exc)

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            rows = json.loads(self._path.read_text(encoding="utf-8"))["sightings"]
            self._sightings = [
                Sighting(
                    camera_id=str(row["camera_id"]),
                    at_ms=int(row["at_ms"]),
                    colour=_vector(row.get("colour")),
                    face=_vector(row.get("face")),
                    appearance=_vector(row.get("appearance")),
                )
                for row in rows
            ][-MAX_SIGHTINGS:]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Only recent sightings are lost; the index fills again from the next windows.
            _LOGGER.warning("Ignoring an unreadable re-identification index: %s", exc)
            self._sightings = []


def _rounded(vector: Descriptor | None) -> list[float] | None:
    return None if vector is None else [round(float(value), 4) for value in vector]


def _vector(values: object) -> Descriptor | None:
    if not isinstance(values, list):
        return None
    return np.asarray(values, dtype=np.float32)
