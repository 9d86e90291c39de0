"""Who came: each person of an event as a visitor, recognised again on later days.

A visitor is a known person (by name), a stranger's face, or a stranger's appearance (the
embedding of an appearance model), kept in the data folder for `keep_days` after they were last
seen, so a stranger who comes back is linked ("seen 3 times since Monday"). A person whose face
and appearance are unknown is told apart only by the colours of the clothes, for a short while
and on one camera: enough to keep one person's cooldown from holding back another person's page,
too weak to link days.

Visits are counted, not frames: a sighting more than `visit_gap_s` after the last one is a new
visit.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from gpu_server.core.enrichment import (
    VisitorSighting,
)
from gpu_server.files import atomic_write

_LOGGER = logging.getLogger(__name__)

VISITORS_FILE: Final = "visitors.json"
MAX_VISITORS: Final = 2000
# Embeddings kept per visitor: a few angles help, many only cost matching time.
MAX_EMBEDDINGS: Final = 8
KNOWN_PREFIX: Final = "known:"
# The cues that tell two strangers apart; clothes' colours only suggest it.
STRONG_CUES: Final = frozenset({"face", "appearance"})

Vector = npt.NDArray[np.float32]


@dataclass(slots=True)
class _Visitor:
    visitor_id: str
    cue: str
    first_seen_ms: int
    last_seen_ms: int
    visits: int = 1
    camera_id: str = ""  # for colour visitors only: they are told apart on one camera
    vectors: list[Vector] = field(default_factory=list)

    def sighting(self, name: str | None = None) -> VisitorSighting:
        return VisitorSighting(self.visitor_id, name, self.cue, self.visits, self.first_seen_ms)


@dataclass(frozen=True, slots=True)
class Person:
    """What one person of an event offers to recognise them by, strongest cue first."""

    name: str | None = None  # an enrolled person's name
    face: Vector | None = None
    appearance: Vector | None = None
    colour: Vector | None = None


class VisitorBook:
    def __init__(
        self,
        data_dir: Path | None,
        *,
        face_distance: float,
        appearance_match: float,
        colour_match: float,
        keep_days: float = 30.0,
        colour_ttl_s: float = 600.0,
        visit_gap_s: float = 1800.0,
    ) -> None:
        self._path = data_dir / VISITORS_FILE if data_dir is not None else None
        self._face_distance = face_distance
        self._appearance_match = appearance_match
        self._colour_match = colour_match
        self._keep_ms = int(keep_days * 86_400_000)
        self._colour_ttl_ms = int(colour_ttl_s * 1000)
        self._visit_gap_ms = int(visit_gap_s * 1000)
        self._lock = threading.Lock()
        self._visitors: list[_Visitor] = []
        self._known: dict[str, _Visitor] = {}
        self._dirty = False
        self._load()

    def record(
        self, camera_id: str, people: Sequence[Person], now_ms: int
    ) -> tuple[VisitorSighting, ...]:
        """Blocking: each person as a visitor (new or seen before); one sighting per visitor."""
        seen: dict[str, VisitorSighting] = {}
        with self._lock:
            self._prune(now_ms)
            for person in people:
                sighting = self._recognise(camera_id, person, now_ms)
                if sighting is not None:
                    seen.setdefault(sighting.visitor_id, sighting)
            self._dirty = True
        return tuple(seen.values())

    def _recognise(self, camera_id: str, person: Person, now_ms: int) -> VisitorSighting | None:
        if person.name is not None:
            key = f"{KNOWN_PREFIX}{person.name}"
            known = self._known.get(key)
            if known is None:
                known = self._known[key] = _Visitor(key, "face", now_ms, now_ms)
            else:
                self._seen(known, now_ms)
            return known.sighting(person.name)
        for cue, vector in (
            ("face", person.face), ("appearance", person.appearance), ("colour", person.colour)
        ):
            if vector is None:
                continue
            visitor = self._nearest(cue, vector, camera_id, now_ms)
            if visitor is None:
                visitor = _Visitor(
                    uuid.uuid4().hex[:12], cue, now_ms, now_ms,
                    camera_id=camera_id if cue == "colour" else "",
                )
                self._visitors.append(visitor)
            else:
                self._seen(visitor, now_ms)
            visitor.vectors = [*visitor.vectors, vector][-MAX_EMBEDDINGS:]
            return visitor.sighting()
        return None

    def _nearest(
        self, cue: str, vector: Vector, camera_id: str, now_ms: int
    ) -> _Visitor | None:
        best: tuple[float, _Visitor] | None = None
        for visitor in self._visitors:
            if visitor.cue != cue or not visitor.vectors:
                continue
            if cue == "colour" and (
                visitor.camera_id != camera_id
                or now_ms - visitor.last_seen_ms > self._colour_ttl_ms
            ):
                continue
            likeness = max(self._likeness(cue, vector, other) for other in visitor.vectors)
            if self._matches(cue, likeness) and (best is None or likeness > best[0]):
                best = (likeness, visitor)
        return best[1] if best is not None else None

    @staticmethod
    def _likeness(cue: str, a: Vector, b: Vector) -> float:
        """Higher is more alike: minus the distance for faces, the cosine for appearance, the
        histogram intersection for colours."""
        if cue == "face":
            return -float(np.linalg.norm(a - b))
        if cue == "appearance":
            return float(np.dot(a, b))
        return float(np.minimum(a, b).sum() / max(float(a.sum()), 1e-6))

    def _matches(self, cue: str, likeness: float) -> bool:
        if cue == "face":
            return -likeness <= self._face_distance
        if cue == "appearance":
            return likeness >= self._appearance_match
        return likeness >= self._colour_match

    def _seen(self, visitor: _Visitor, now_ms: int) -> None:
        if now_ms - visitor.last_seen_ms > self._visit_gap_ms:
            visitor.visits += 1
        visitor.last_seen_ms = max(visitor.last_seen_ms, now_ms)

    def _prune(self, now_ms: int) -> None:
        self._visitors = [
            visitor
            for visitor in self._visitors
            if now_ms - visitor.last_seen_ms
            <= (self._colour_ttl_ms if visitor.cue == "colour" else self._keep_ms)
        ][-MAX_VISITORS:]

    # Persistence: faces and appearances only (colours are not worth keeping) ---------------

    def flush(self) -> None:
        """Blocking: write the visitors out when anything changed."""
        if self._path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            rows = [
                {
                    "id": visitor.visitor_id,
                    "cue": visitor.cue,
                    "first_seen_ms": visitor.first_seen_ms,
                    "last_seen_ms": visitor.last_seen_ms,
                    "visits": visitor.visits,
                    "vectors": [[round(float(x), 5) for x in vector] for vector in visitor.vectors],
                }
                for visitor in [*self._visitors, *self._known.values()]
                if visitor.cue != "colour"
            ]
            self._dirty = False
        try:
            atomic_write(self._path, json.dumps({"version": 1, "visitors": rows}), private=True)
        except OSError as exc:
            _LOGGER.warning("Cannot write the visitors: %s", exc)

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            for row in raw["visitors"]:
                visitor = _Visitor(
                    visitor_id=str(row["id"]),
                    cue=str(row["cue"]),
                    first_seen_ms=int(row["first_seen_ms"]),
                    last_seen_ms=int(row["last_seen_ms"]),
                    visits=int(row["visits"]),
                    vectors=[np.asarray(item, np.float32) for item in row["vectors"]],
                )
                if visitor.visitor_id.startswith(KNOWN_PREFIX):
                    self._known[visitor.visitor_id] = visitor
                elif visitor.cue in ("face", "appearance"):
                    self._visitors.append(visitor)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Only who came back is lost; the events themselves are elsewhere.
            _LOGGER.warning(
                "The visitors in %s are unreadable (%s); starting afresh", self._path, exc
            )
            self._visitors.clear()
            self._known.clear()
