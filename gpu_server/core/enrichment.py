"""What enrichment found in a window: faces and known people, plates, postures, people seen
on other cameras or on earlier visits. Plain results; the models that find them are in enrich/."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reidentified:
    """A person of this window seen before on another camera."""

    camera_id: str
    seconds_ago: float
    cue: str  # "face", "appearance" or "colour"
    # 0..1: 1 - distance for faces, the cosine for appearance, the intersection for colours.
    similarity: float


@dataclass(frozen=True, slots=True)
class VisitorSighting:
    """One person of an event as a visitor."""

    visitor_id: str  # "known:<name>" for an enrolled person, else a short random id
    name: str | None  # the enrolled name; None for a stranger
    cue: str  # "face", "appearance" or "colour"
    visits: int  # this one included
    first_seen_ms: int

    @property
    def known(self) -> bool:
        return self.name is not None


@dataclass(frozen=True, slots=True)
class PersonSighting:
    face_id: str
    name: str | None  # None: unknown, decided by the embedding distance
    distance: float  # to the nearest enrolled face; -1 with nobody enrolled
    frame_sha256: str
    box: tuple[float, float, float, float]  # the face, in pixels of the frame

    @property
    def unknown(self) -> bool:
        return self.name is None


@dataclass(frozen=True, slots=True)
class PlateReading:
    raw: str  # as the OCR read it: untrusted, for the sanitizer only
    text: str  # after the sanitizer's cleaning
    normalized: str
    confidence: float
    known_label: str | None
    suspicious: bool
    frame_sha256: str


@dataclass(frozen=True, slots=True)
class PersonPose:
    """The posture of one person crop of the window."""

    person: int  # which person crop, from 1, the most confident first
    frame_sha256: str
    box: tuple[float, float, float, float]  # the visible landmarks, in pixels of the frame
    flags: tuple[str, ...]  # PoseFlag values; empty: nothing unusual, or not decided
    confidence: float


@dataclass(frozen=True, slots=True)
class EnrichmentResult:
    people: tuple[PersonSighting, ...] = ()
    plates: tuple[PlateReading, ...] = ()
    # People of the window seen on other cameras within the re-identification time-to-live.
    reidentified: tuple[Reidentified, ...] = ()
    notes: tuple[str, ...] = ()
    # Time each model took for the window, by task (loading included when it loaded).
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)
    poses: tuple[PersonPose, ...] = ()
    # Each person of the window as a visitor: known by name, or a stranger seen before or not.
    visitors: tuple[VisitorSighting, ...] = ()
