"""What the events part hands out: a stored security event and its parts, as plain data.

The gRPC edge converts these to and from the contract's messages; nothing here knows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpu_server.context import SceneChangeKind
from gpu_server.core.detection import Detection
from gpu_server.core.enrichment import (
    PersonPose,
    PersonSighting,
    PlateReading,
    Reidentified,
    VisitorSighting,
)
from gpu_server.llm.schema import AuditRubric
from gpu_server.vocabulary import RiskLevel


class EventKind(StrEnum):
    SECURITY = "security"
    # A window with nothing to assess: it only tells the client its frames are done.
    NOTHING_TO_REPORT = "nothing_to_report"
    INCIDENT_ENDED = "incident_ended"


@dataclass(frozen=True, slots=True)
class EventDetection:
    detection: Detection
    frame_sha256: str
    zones: tuple[str, ...] = ()  # zones the box stands in (its foot point)


@dataclass(frozen=True, slots=True)
class EventDwell:
    """How long a person has stayed in an entry or sensitive zone (see `dwell.py`)."""

    zone: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EventIncident:
    """The incident an event belongs to (see `incidents.py`)."""

    incident_id: str
    update: bool  # False for the event that opened the incident
    camera_ids: tuple[str, ...]
    started_at_ms: int
    alert: bool  # whether this event should page someone
    cooldown_remaining_s: float = 0.0
    # After this event: seconds of cooldown left per kind of finding, by kind.
    cooldowns: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityEvent:
    event_id: str
    camera_id: str
    kind: EventKind
    started_at_ms: int
    ended_at_ms: int
    frame_sha256s: tuple[str, ...]
    risk_score: int = 0
    risk_level: RiskLevel = RiskLevel.LOW
    summary: str = ""
    reasoning: str = ""
    recommended_action: str = ""
    # What a vision-language model saw in the key frame; empty when no model looked.
    scene_description: str = ""
    detections: tuple[EventDetection, ...] = ()
    zones: tuple[str, ...] = ()
    fast_path: bool = False
    fallback: bool = False
    fallback_reason: str = ""
    # The rules' fail-safe held: a confident person at night or at an entry, no model's judgement.
    failsafe: bool = False
    model: str = ""
    prompt_version: str = ""
    scene_change: SceneChangeKind = SceneChangeKind.NONE
    anomaly_score: float = 0.0
    created_at_ms: int = 0
    incident: EventIncident | None = None
    # What in a language model's text the detections or the rules did not back.
    audit_notes: tuple[str, ...] = ()
    # Enrichment: faces matched against the known people, text read off vehicles, and why a
    # part did not run.
    people: tuple[PersonSighting, ...] = ()
    plates: tuple[PlateReading, ...] = ()
    # People of this event seen on other cameras shortly before (re-identification).
    reidentified: tuple[Reidentified, ...] = ()
    # The posture of the people in the person boxes (lying, crouching, climbing).
    poses: tuple[PersonPose, ...] = ()
    # Each person as a visitor: known by name, or a stranger seen before or not.
    visitors: tuple[VisitorSighting, ...] = ()
    enrichment_notes: tuple[str, ...] = ()
    # Loitering: the entry or sensitive zones where a person has stayed longer than the
    # configured time, with how long (across events); empty when nobody lingered.
    dwell: tuple[EventDwell, ...] = ()
    # The audit's 1-5 rubric of the assessment's text; None where nothing was assessed.
    audit_rubric: AuditRubric | None = None
    # Given by the outbox when the event is stored; 0 before.
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class ZoneRequest:
    """One zone as Configure gives it, not yet validated."""

    name: str
    kind: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraRequest:
    """One camera's settings as Configure gives them, not yet validated."""

    camera_id: str
    display_name: str = ""
    # 0 keeps the server's default.
    batch_window_s: int = 0
    idle_timeout_s: int = 0
    prompt_version: str = ""
    time_zone: str = ""
    zones: tuple[ZoneRequest, ...] = ()
