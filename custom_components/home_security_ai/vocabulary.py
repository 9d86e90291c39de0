"""The words and numbers both sides agree on: zone kinds, risk levels, limits on settings.

Each is defined here once; the forms, the actions, the entities and the event stream read it
from here. The sidecar holds the same limits in its own module (it cannot import this one);
a test keeps the numbers equal.
"""

from __future__ import annotations

from typing import Final

from .client import RiskLevel, SecurityEvent

# ---- Zones ---------------------------------------------------------------------------------

ZONE_KINDS: Final = ("entry", "perimeter", "driveway", "yard", "sensitive", "ignore", "other")

# ---- Labels --------------------------------------------------------------------------------

# Detection labels that mean a person (the sidecar's PERSON_LABELS).
PERSON_LABELS: Final = ("face", "pedestrian", "people", "person")
# Detection labels that mean a vehicle, and an animal (the sidecar's VEHICLE_LABELS and
# ANIMAL_LABELS).
VEHICLE_LABELS: Final = (
    "airplane", "bicycle", "boat", "bus", "car", "motorbike", "motorcycle", "scooter", "train",
    "truck", "van", "vehicle",
)
ANIMAL_LABELS: Final = (
    "animal", "bear", "bird", "cat", "cow", "deer", "dog", "elephant", "fox", "giraffe", "horse",
    "raccoon", "sheep", "zebra",
)
# The findings besides people. Anything else (a cup, a chair) is context, never a finding.
OTHER_FINDING_LABELS: Final = (*VEHICLE_LABELS, *ANIMAL_LABELS)

# ---- Risk levels ---------------------------------------------------------------------------

# The event types of the event entities, lowest first.
RISK_LEVELS: Final = ("low", "medium", "high", "critical")
# The lowest risk score of each level, for an event that names no level; below both: "low".
RISK_SCORE_MEDIUM: Final = 30
RISK_SCORE_HIGH: Final = 60
RISK_SCORE_CRITICAL: Final = 85
# From this level on (after the household's rules), an event that alerts turns its camera's
# threat sensor on.
THREAT_LEVEL: Final = "high"


def risk_level_name(event: SecurityEvent) -> str:
    """Return the event's risk level as an event type, from its score when unspecified."""
    if event.risk_level != RiskLevel.UNSPECIFIED:
        return event.risk_level.name.lower()
    score = event.risk_score
    if score >= RISK_SCORE_CRITICAL:
        return "critical"
    if score >= RISK_SCORE_HIGH:
        return "high"
    return "medium" if score >= RISK_SCORE_MEDIUM else "low"


def is_threat(level: str, *, alert: bool, held_by_incident: bool, active: bool) -> bool:
    """Return whether an event turns its camera's threat sensor on, or keeps it on.

    `level` is the event's risk level after the household's rules, `alert` their decision,
    `held_by_incident` whether only its incident held it back (an update of an incident that
    alerted already, or a cooldown), `active` whether the sensor is on now. From THREAT_LEVEL
    up, an event that alerts turns the sensor on and one held by its incident keeps it on; an
    event held back for any other reason (disarmed, quiet hours, below the camera's minimum
    level) does neither.
    """
    if RISK_LEVELS.index(level) < RISK_LEVELS.index(THREAT_LEVEL):
        return False
    return alert or (held_by_incident and active)


# ---- Limits of the sidecar's camera settings (the forms refuse anything beyond them) -------

# Cameras the sidecar keeps settings for, in all and in one Configure call.
MAX_CAMERAS: Final = 64
MAX_ZONES_PER_CAMERA: Final = 32
MAX_POINTS_PER_ZONE: Final = 64
MAX_ZONE_NAME_CHARS: Final = 64
MAX_DISPLAY_NAME_CHARS: Final = 128
MAX_TIME_ZONE_CHARS: Final = 64
MAX_PROMPT_VERSION_CHARS: Final = 32
# A camera's batch window and idle timeout: 0 keeps the server's default, else 1 s to 1 h.
MAX_BATCH_SECONDS: Final = 3600
# The encoded size of one Configure request: every camera at every limit fits well inside.
MAX_CONFIGURE_BYTES: Final = 4 * 1024 * 1024
