"""Plain data types exchanged with the sidecar.

The client converts protobuf messages to and from these frozen dataclasses, so that
nothing outside the client package has to know about protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class FrameSource(IntEnum):
    """Where a frame came from (values match the wire format)."""

    UNSPECIFIED = 0
    CAMERA_ENTITY = 1
    UPLOAD = 2
    VIDEO = 3


class AckStatus(IntEnum):
    """Outcome of one frame (values match the wire format)."""

    UNSPECIFIED = 0
    ACCEPTED = 1
    DUPLICATE = 2
    REJECTED = 3


class RejectReason(IntEnum):
    """Why the sidecar refused a frame (values match the wire format)."""

    UNSPECIFIED = 0
    EMPTY = 1
    NOT_AN_IMAGE = 2
    TRUNCATED = 3
    DIMENSIONS_TOO_LARGE = 4
    DECOMPRESSION_BOMB = 5
    TOO_MANY_BYTES = 6
    HASH_MISMATCH = 7
    INVALID_CAMERA_ID = 8
    INTERNAL = 9
    BACKPRESSURE = 10  # the sidecar's event outbox is full: keep the frame, resend it later


class RiskLevel(IntEnum):
    """How risky an event is (values match the wire format)."""

    UNSPECIFIED = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class EventKind(IntEnum):
    """What an event from the outbox means (values match the wire format)."""

    UNSPECIFIED = 0
    SECURITY = 1
    # A batch closed with nothing worth analyzing; it only releases the frames it covers.
    NOTHING_TO_REPORT = 2
    # An incident was quiet for its gap and is over; no frames, no risk.
    INCIDENT_ENDED = 3


class SceneChangeKind(IntEnum):
    """Whether the camera's view changed (values match the wire format)."""

    NONE = 0
    COVERED = 1
    MOVED = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameIn:
    """One encoded still image to analyze."""

    camera_id: str
    image: bytes
    client_ref: str
    captured_at_ms: int
    source: FrameSource = FrameSource.UNSPECIFIED
    source_ref: str = ""
    content_sha256: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Box:
    """Axis-aligned box in pixels of the original image."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Detection:
    """One detected object."""

    label: str
    class_id: int
    confidence: float
    box: Box


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameTimings:
    """Per-stage timings of one frame in milliseconds."""

    decode_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameAck:
    """The sidecar's answer to one frame."""

    client_ref: str
    camera_id: str
    content_sha256: str
    status: AckStatus
    status_code: int
    reject_reason: RejectReason
    message: str
    image_width: int
    image_height: int
    detections: tuple[Detection, ...]
    detector: str
    timings: FrameTimings
    # For DUPLICATE: the sequence of the stored event that already covers this content, 0 when
    # no event covers it yet. Sequences count within the outbox named by EventsStatus.outbox_id.
    covered_sequence: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class EventDetection:
    """One detection of an event, with the frame it was seen in and the zones it touches."""

    detection: Detection
    frame_sha256: str
    zones: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Incident:
    """The burst of activity an event belongs to, on one camera or several."""

    incident_id: str
    update: bool  # False for the event that opened the incident
    camera_ids: tuple[str, ...]
    started_at_ms: int
    alert: bool  # whether this event should page someone
    cooldown_remaining_s: float = 0.0
    # After this event: seconds of cooldown left per kind of finding on the camera.
    cooldowns: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRubric:
    """The sidecar's audit of an assessment's text, each point from 1 (poor) to 5 (good)."""

    context_used: int
    coherent: int
    justified: int
    actionable: int
    score: float


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonSighting:
    """A face in one of the event's frames: a known person, or unknown by embedding distance."""

    face_id: str  # for HomeSecurityAIClient.enroll_person
    name: str = ""  # empty when unknown
    unknown: bool = True
    distance: float = -1.0  # to the nearest enrolled face; -1 with nobody enrolled
    frame_sha256: str = ""
    box: Box | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonPose:
    """The posture of one of the event's person boxes, from the sidecar's pose model."""

    person: int  # which person box, from 1, the most confident first
    flags: tuple[str, ...] = ()  # "lying", "crouching", "climbing"; empty: nothing unusual
    confidence: float = 0.0
    frame_sha256: str = ""
    box: Box | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Reidentification:
    """A person of the event seen on another camera shortly before."""

    camera_id: str
    seconds_ago: float
    cue: str  # "face", or "colour" of the clothes (a weaker cue)
    similarity: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Visitor:
    """A person of the event as a visitor: an enrolled person, or a stranger seen before or not."""

    visitor_id: str
    name: str | None = None  # the enrolled name; None for a stranger
    cue: str = ""  # "face", "appearance" or "colour"
    visits: int = 1  # this one included
    first_seen_ms: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Dwell:
    """How long a person of the event has stayed in an entry or sensitive zone (loitering)."""

    zone: str
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class PlateReading:
    """Text read on a vehicle (untrusted; cleaned by the sidecar)."""

    text: str
    normalized: str = ""
    confidence: float = 0.0
    known: bool = False
    known_label: str = ""
    suspicious: bool = False  # the text reads like instructions to the language model
    frame_sha256: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class KnownPerson:
    """A person of the sidecar's gallery of known faces."""

    name: str
    embeddings: int = 0
    updated_at_ms: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class SecurityEvent:
    """One event from the sidecar's outbox."""

    sequence: int
    event_id: str
    camera_id: str
    kind: EventKind
    started_at_ms: int = 0
    ended_at_ms: int = 0
    risk_score: int = 0
    risk_level: RiskLevel = RiskLevel.UNSPECIFIED
    summary: str = ""
    reasoning: str = ""
    recommended_action: str = ""
    # What a vision-language model saw in the key frame; empty when no model looked.
    scene_description: str = ""
    # The sidecar's fail-safe held: a confident person at night or at an entry, no model weighed it.
    failsafe: bool = False
    detections: tuple[EventDetection, ...] = ()
    zones: tuple[str, ...] = ()
    frame_sha256s: tuple[str, ...] = ()
    fast_path: bool = False
    fallback: bool = False
    fallback_reason: str = ""
    model: str = ""
    prompt_version: str = ""
    scene_change: SceneChangeKind = SceneChangeKind.NONE
    anomaly_score: float = 0.0
    created_at_ms: int = 0
    incident: Incident | None = None
    # What in a language model's text the detections or the rules did not back.
    audit_notes: tuple[str, ...] = ()
    # Enrichment: faces matched against the known people, text read on vehicles, and why a part
    # did not run.
    people: tuple[PersonSighting, ...] = ()
    plates: tuple[PlateReading, ...] = ()
    reidentified: tuple[Reidentification, ...] = ()
    visitors: tuple[Visitor, ...] = ()
    poses: tuple[PersonPose, ...] = ()
    # Loitering: the zones where a person has stayed longer than the sidecar's loitering time.
    dwell: tuple[Dwell, ...] = ()
    enrichment_notes: tuple[str, ...] = ()
    audit_rubric: AuditRubric | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Zone:
    """A named polygon on a camera's image; points are (x, y) in 0..1 of width and height."""

    name: str
    kind: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class CameraSettings:
    """What the sidecar should know about one camera; zeros and blanks keep its defaults."""

    camera_id: str
    display_name: str = ""
    zones: tuple[Zone, ...] = ()
    batch_window_s: int = 0
    idle_timeout_s: int = 0
    prompt_version: str = ""
    time_zone: str = ""


class FeedbackVerdict(IntEnum):
    """The household's verdict on an event (values as in the contract)."""

    FALSE_ALARM = 1
    CORRECT = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedbackResult:
    """The answer to Feedback."""

    camera_id: str
    false_alarms: int  # counted so far for the event's cases
    calibrated: bool  # whether one of the event's cases now has its risk lowered


@dataclass(frozen=True, kw_only=True, slots=True)
class CameraFeedback:
    """The household's verdicts on one camera's events."""

    false_alarms: int = 0
    confirmed: int = 0
    calibrated_cases: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalyzeNowResult:
    """The answer to AnalyzeNow."""

    closed: bool
    batch_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class DetectorStatus:
    """The detector the sidecar runs."""

    name: str = ""
    backend: str = ""
    device: str = ""
    weights: str = ""
    fallback: bool = False
    fallback_reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyStats:
    """Latency summary of one pipeline stage."""

    count: int = 0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    max_ms: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuDevice:
    """One GPU as seen by the sidecar."""

    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_celsius: float


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuStatus:
    """GPU availability and usage."""

    available: bool = False
    reason: str = ""
    driver_version: str = ""
    devices: tuple[GpuDevice, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameCounters:
    """Frames the sidecar has handled since it started."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class EventsStatus:
    """The sidecar's events pipeline: open batches, outbox and risk analysis."""

    open_batches: int = 0
    outbox_depth: int = 0
    outbox_max_events: int = 0
    last_sequence: int = 0
    llm_model: str = ""
    llm_unavailable_reason: str = ""
    analyses_running: int = 0
    events_created: int = 0
    # Random id of the sidecar's outbox database; event sequences count within one outbox.
    outbox_id: str = ""
    # Frames refused since the sidecar started because its outbox had no room for their event.
    outbox_refused_frames: int = 0


class LanguageModelState(StrEnum):
    """Where the sidecar's language model stands; the rules assess events while it is not ready."""

    UNKNOWN = "unknown"  # a sidecar too old to say
    OFF = "off"
    LOADING = "loading"
    READY = "ready"
    RESTARTING = "restarting"
    CIRCUIT_OPEN = "circuit_open"
    UNREACHABLE = "unreachable"
    FAILED = "failed"


# States in which the language model should answer but does not.
LANGUAGE_MODEL_FAILING = frozenset(
    {
        LanguageModelState.RESTARTING,
        LanguageModelState.CIRCUIT_OPEN,
        LanguageModelState.UNREACHABLE,
        LanguageModelState.FAILED,
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LanguageModelStatus:
    """The language model that writes the risk assessments."""

    state: LanguageModelState = LanguageModelState.UNKNOWN
    backend: str = ""  # "embedded" (a model server the sidecar runs) or "remote"
    model: str = ""
    endpoint: str = ""
    reason: str = ""
    restarts: int = 0
    consecutive_failures: int = 0
    queue_depth: int = 0
    queue_capacity: int = 0
    analyses: int = 0
    fallbacks: int = 0
    retry_in_s: float = 0.0
    # What the model may do with an event: "judge", "narrate" or "off", and why.
    authority: str = ""
    authority_reason: str = ""
    replaced: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedModel:
    """A model of the sidecar's zoo that is loaded now."""

    key: str
    task: str
    memory_bytes: int
    users: int = 0
    idle_s: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelZooStatus:
    """The sidecar's model zoo: loaded models inside one memory budget."""

    budget_bytes: int = 0
    used_bytes: int = 0
    registered: int = 0
    loaded: tuple[LoadedModel, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrichmentStatus:
    """Faces, plates and poses: whether the sidecar can add them to events, and why not."""

    faces_available: bool = False
    faces_reason: str = ""
    plates_available: bool = False
    plates_reason: str = ""
    pose_available: bool = False
    pose_reason: str = ""
    known_people: int = 0
    known_plates: int = 0
    batches: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerStatus:
    """Status of the sidecar."""

    server_id: str
    version: str = ""
    uptime_s: float = 0.0
    detector: DetectorStatus = field(default_factory=DetectorStatus)
    queue_depth: int = 0
    stage_latency: dict[str, LatencyStats] = field(default_factory=dict)
    gpu: GpuStatus = field(default_factory=GpuStatus)
    frames: FrameCounters = field(default_factory=FrameCounters)
    events: EventsStatus = field(default_factory=EventsStatus)
    language_model: LanguageModelStatus = field(default_factory=LanguageModelStatus)
    model_zoo: ModelZooStatus = field(default_factory=ModelZooStatus)
    enrichment: EnrichmentStatus = field(default_factory=EnrichmentStatus)
    # The household's verdicts, by camera id.
    feedback: dict[str, CameraFeedback] = field(default_factory=dict)
