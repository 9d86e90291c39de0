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

# ---- Risk levels ---------------------------------------------------------------------------

# The event types of the event entities, lowest first.
RISK_LEVELS: Final = ("low", "medium", "high", "critical")
# The lowest risk score of each level, for an event that names no level; below both: "low".
RISK_SCORE_MEDIUM: Final = 30
RISK_SCORE_HIGH: Final = 60
RISK_SCORE_CRITICAL: Final = 85
# From this level on, an event makes its camera's threat sensor turn on.
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


def is_threat(event: SecurityEvent) -> bool:
    """Return whether the event's risk level turns its camera's threat sensor on."""
    return RISK_LEVELS.index(risk_level_name(event)) >= RISK_LEVELS.index(THREAT_LEVEL)


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
