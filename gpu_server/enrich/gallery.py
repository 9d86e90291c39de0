"""The known people: face embeddings by name, in the sidecar's data folder.

Enrolling adds a face to a person (creating the person); removing a person deletes every
embedding stored for them, on disk too. The file is rewritten atomically on every change, so a
crash leaves the old gallery or the new one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from gpu_server.enrich.faces import EMBEDDING_SIZE, Embedding
from gpu_server.errors import InvalidRequestError
from gpu_server.files import atomic_write
from gpu_server.llm.sanitizer import clean

_LOGGER = logging.getLogger(__name__)

GALLERY_FILE: Final = "known_people.json"
MAX_NAME_CHARS: Final = 60
# The faces kept per person: more angles help, an unbounded list only costs matching time.
MAX_FACES_PER_PERSON: Final = 32
MAX_PEOPLE: Final = 500


@dataclass(frozen=True, slots=True)
class KnownPerson:
    name: str
    embeddings: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class Match:
    name: str | None  # None: nobody enrolled is within the match distance
    distance: float  # to the nearest enrolled face; -1 with nobody enrolled


def person_name(raw: str) -> str:
    """The name as stored: cleaned like any text that reaches a prompt, and not empty."""
    name, cut = clean(raw, MAX_NAME_CHARS)
    if not name or cut:
        raise InvalidRequestError(
            f"a person's name must have 1 to {MAX_NAME_CHARS} printable characters"
        )
    return name


class PeopleGallery:
    def __init__(self, data_dir: Path, match_distance: float) -> None:
        self.path = data_dir / GALLERY_FILE
        self.match_distance = match_distance
        self._lock = threading.Lock()
        self._faces: dict[str, list[Embedding]] = {}
        self._updated: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            for name, entry in raw["people"].items():
                vectors = [np.asarray(item, np.float32) for item in entry["embeddings"]]
                if vectors and all(vector.shape == (EMBEDDING_SIZE,) for vector in vectors):
                    self._faces[name] = vectors
                    self._updated[name] = int(entry.get("updated_at_ms", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # Kept aside rather than overwritten: the faces in it were enrolled by a person.
            aside = self.path.with_name(f"{self.path.name}.unreadable")
            _LOGGER.exception(
                "The known people in %s are unreadable; moved to %s", self.path, aside
            )
            self.path.replace(aside)
            self._faces.clear()
            self._updated.clear()

    def _save(self) -> None:
        payload = {
            "version": 1,
            "people": {
                name: {
                    "updated_at_ms": self._updated.get(name, 0),
                    "embeddings": [[round(float(x), 6) for x in vector] for vector in vectors],
                }
                for name, vectors in self._faces.items()
            },
        }
        atomic_write(self.path, json.dumps(payload), private=True)

    def enroll(self, raw_name: str, embedding: Embedding) -> KnownPerson:
        name = person_name(raw_name)
        with self._lock:
            if name not in self._faces and len(self._faces) >= MAX_PEOPLE:
                raise InvalidRequestError(f"at most {MAX_PEOPLE} people can be enrolled")
            faces = self._faces.setdefault(name, [])
            faces.append(np.asarray(embedding, np.float32))
            del faces[:-MAX_FACES_PER_PERSON]
            self._updated[name] = int(time.time() * 1000)
            self._save()
            return KnownPerson(name, len(faces), self._updated[name])

    def remove(self, raw_name: str) -> int:
        """Delete the person and every face enrolled for them; how many faces that was."""
        name = person_name(raw_name)
        with self._lock:
            faces = self._faces.pop(name, None)
            self._updated.pop(name, None)
            if faces is None:
                return 0
            self._save()
            return len(faces)

    def people(self) -> list[KnownPerson]:
        with self._lock:
            return [
                KnownPerson(name, len(faces), self._updated.get(name, 0))
                for name, faces in sorted(self._faces.items())
            ]

    def match(self, embedding: Embedding) -> Match:
        """The enrolled person nearest to this face, if within the match distance."""
        best_name, best = None, -1.0
        with self._lock:
            for name, faces in self._faces.items():
                nearest = float(np.min(np.linalg.norm(np.stack(faces) - embedding, axis=1)))
                if best < 0 or nearest < best:
                    best_name, best = name, nearest
        if best_name is None or best > self.match_distance:
            return Match(None, best)
        return Match(best_name, best)
