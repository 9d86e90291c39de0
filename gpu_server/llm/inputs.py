"""What one analysis is about: a camera's window of detections and the context around it."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpu_server.vocabulary import RiskZoneKind

# Local hours counted as night: the time of day that raises risk most.
NIGHT_START_HOUR: Final = 22
NIGHT_END_HOUR: Final = 6


def daypart_for_hour(hour: int) -> str:
    if hour >= NIGHT_START_HOUR or hour < NIGHT_END_HOUR:
        return "night"
    if hour < 12:
        return "morning"
    if hour < 18:
        return "afternoon"
    return "evening"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionInput(_Input):
    label: str = Field(min_length=1, max_length=64)
    confidence: float = Field(ge=0.0, le=1.0)
    zone: str | None = Field(default=None, max_length=200)


class ZoneInput(_Input):
    name: str = Field(min_length=1, max_length=200)
    kind: RiskZoneKind = RiskZoneKind.OTHER


class BaselineInput(_Input):
    # 0 = exactly as usual for this camera and hour, 1 = never seen before.
    anomaly_score: float = Field(ge=0.0, le=1.0)
    expected_events_this_hour: float = Field(default=0.0, ge=0.0)
    # Short lines such as "Tue 02:00: 0 events"; newest first.
    history: tuple[str, ...] = ()


class CameraActivity(_Input):
    """Something another camera saw recently."""

    camera_name: str = Field(min_length=1, max_length=200)
    minutes_ago: float = Field(ge=0.0)
    labels: tuple[str, ...] = ()


class PersonInput(_Input):
    """A face in the window: a known person by name, or unknown (by embedding distance)."""

    name: str | None = Field(default=None, max_length=200)  # None: unknown
    distance: float = Field(default=0.0, ge=0.0)


class PoseInput(_Input):
    """A person of the window whose posture stands out (from the pose landmarks)."""

    person: int = Field(ge=1)  # the person box, from 1, the most confident first
    flags: tuple[Literal["lying", "crouching", "climbing"], ...] = Field(min_length=1)


class SamePersonInput(_Input):
    """A person of this window seen on another camera shortly before (re-identification)."""

    camera_name: str = Field(min_length=1, max_length=200)
    seconds_ago: float = Field(ge=0.0)
    cue: str = Field(min_length=1, max_length=20)  # "face" or "colour" (of the clothes)

class DwellInput(_Input):
    """An entry or sensitive zone where a person has stayed longer than the loitering time
    (seen there again and again, across windows)."""

    zone: str = Field(min_length=1, max_length=200)
    seconds: float = Field(ge=0.0)


class ReturningVisitor(_Input):
    """A stranger of the window seen on earlier visits (by face or appearance)."""

    visits: int = Field(ge=2)  # this one included
    since: str = Field(min_length=1, max_length=40)  # "Monday", "yesterday", "May 3"


# The household's own words on an earlier event (see feedback/): untrusted like any text, but
# not a sign that someone in the scene tries to steer the analysis.
HOUSEHOLD_SOURCE: Final = "household_note"


class UntrustedText(_Input):
    """Text read from an image or another source that anyone could have written."""

    source: str = Field(min_length=1, max_length=40)  # "ocr_plate", "caption", ...
    text: str = Field(max_length=100_000)


class FeedbackInput(_Input):
    """How the household judged earlier events of this camera with this object in this zone at
    this hour of the week (0 = Monday 00:00)."""

    label: str = Field(min_length=1, max_length=64)  # the kind: person, vehicle, animal, other
    zone: str | None = Field(default=None, max_length=200)
    hour_of_week: int = Field(ge=0, lt=168)
    false_alarms: int = Field(default=0, ge=0)
    confirmed: int = Field(default=0, ge=0)
    # Judged a false alarm often enough that its risk is lowered.
    calibrated: bool = False


class AnalysisInput(_Input):
    camera_id: str = Field(min_length=1, max_length=200)
    camera_name: str = Field(min_length=1, max_length=200)
    start: datetime
    end: datetime
    # The camera's local wall-clock time of the window; night and weekday come from it.
    local_time: datetime
    detections: tuple[DetectionInput, ...] = ()
    # The most of each kind (person, vehicle, animal, other) seen in one frame: one person in ten
    # frames is ten detections but one person. Empty: every detection is a distinct object.
    seen_at_once: dict[str, int] = Field(default_factory=dict)
    zones: tuple[ZoneInput, ...] = ()
    baseline: BaselineInput | None = None
    other_cameras: tuple[CameraActivity, ...] = ()
    scene_changed: bool = False
    untrusted_texts: tuple[UntrustedText, ...] = ()
    # Faces seen (enrichment), and the names of known vehicles whose plate was read.
    people: tuple[PersonInput, ...] = ()
    known_vehicles: tuple[str, ...] = ()
    same_person: tuple[SamePersonInput, ...] = ()
    poses: tuple[PoseInput, ...] = ()
    returning: tuple[ReturningVisitor, ...] = ()
    # Entry or sensitive zones where a person has been loitering, and for how long.
    dwell: tuple[DwellInput, ...] = ()
    feedback: tuple[FeedbackInput, ...] = ()
    # Optional per-camera prompt version; the service default applies when None.
    prompt_version: str | None = None
    # The confidence from which the detector's detections are as good as certain (0.9 for
    # YOLO, 0.5 for the embedded SSD): the rules judge "confident" on the detector's scale.
    detector_sure_confidence: float = Field(default=0.9, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _span_is_ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self

    @property
    def daypart(self) -> str:
        return daypart_for_hour(self.local_time.hour)

    @property
    def is_night(self) -> bool:
        return self.daypart == "night"

    def zone_kind(self, zone: str | None) -> RiskZoneKind | None:
        for candidate in self.zones:
            if candidate.name == zone:
                return candidate.kind
        return None
