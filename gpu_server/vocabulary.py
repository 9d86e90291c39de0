"""The sidecar's shared vocabulary: limits, label groups, zone kinds and risk levels.

Every module that needs one of these names or numbers imports it from here, so the rules, the
baseline, the prompt and Configure's checks cannot disagree.

The limits are what one client may configure, checked before anything expensive is done with
it. Home Assistant's integration holds the same numbers in its own `limits.py` (it cannot import
the sidecar), so its forms refuse what the sidecar would; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

# -- limits on camera settings (the integration keeps the same numbers) --------------------

# Cameras the sidecar keeps settings for, in all and in one Configure call.
MAX_CAMERAS: Final = 64
MAX_ZONES_PER_CAMERA: Final = 32
MAX_POINTS_PER_ZONE: Final = 64
MAX_ZONE_NAME_CHARS: Final = 64
MAX_DISPLAY_NAME_CHARS: Final = 128
MAX_TIME_ZONE_CHARS: Final = 64
MAX_PROMPT_VERSION_CHARS: Final = 32
# A camera's window and idle timeout: 0 keeps the server's default, else 1 s to 1 h.
MAX_BATCH_SECONDS: Final = 3600
# The encoded size of one Configure request: every camera at every limit fits well inside.
MAX_CONFIGURE_BYTES: Final = 4 * 1024 * 1024

# -- label groups --------------------------------------------------------------------------


class LabelGroup(StrEnum):
    """What kind of thing a detector label names; the baseline counts and the rules weigh these."""

    PERSON = "person"
    VEHICLE = "vehicle"
    ANIMAL = "animal"
    OTHER = "other"


PERSON_LABELS: Final = frozenset({"person", "people", "pedestrian", "face"})
VEHICLE_LABELS: Final = frozenset(
    {
        "bicycle", "car", "motorcycle", "motorbike", "bus", "train", "truck", "boat",
        "airplane", "van", "scooter", "vehicle",
    }
)
ANIMAL_LABELS: Final = frozenset(
    {
        "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
        "fox", "deer", "raccoon", "animal",
    }
)


def label_group(label: str) -> LabelGroup:
    """The group of a detector label (any case, surrounding spaces ignored)."""
    name = label.strip().lower()
    if name in PERSON_LABELS:
        return LabelGroup.PERSON
    if name in VEHICLE_LABELS:
        return LabelGroup.VEHICLE
    if name in ANIMAL_LABELS:
        return LabelGroup.ANIMAL
    return LabelGroup.OTHER


def is_security_finding(label: str) -> bool:
    """Whether a label can make a security event on its own: a person, vehicle or animal."""
    return label_group(label) is not LabelGroup.OTHER


# -- zone kinds ----------------------------------------------------------------------------


class ZoneKind(StrEnum):
    """The kinds a user gives a zone in Configure."""

    ENTRY = "entry"
    PERIMETER = "perimeter"
    DRIVEWAY = "driveway"
    YARD = "yard"
    SENSITIVE = "sensitive"
    IGNORE = "ignore"
    OTHER = "other"


class RiskZoneKind(StrEnum):
    """How much a zone matters to the risk; what the prompt and the rules see.

    Entry points and sensitive areas raise the risk most.
    """

    ENTRY = "entry"
    SENSITIVE = "sensitive"
    PERIMETER = "perimeter"
    OTHER = "other"


# A configured kind as the risk sees it; ignore zones never reach the risk analysis.
RISK_ZONE_KIND: Final[Mapping[ZoneKind, RiskZoneKind]] = MappingProxyType(
    {
        ZoneKind.ENTRY: RiskZoneKind.ENTRY,
        ZoneKind.SENSITIVE: RiskZoneKind.SENSITIVE,
        ZoneKind.PERIMETER: RiskZoneKind.PERIMETER,
        ZoneKind.DRIVEWAY: RiskZoneKind.PERIMETER,
        ZoneKind.YARD: RiskZoneKind.PERIMETER,
        ZoneKind.OTHER: RiskZoneKind.OTHER,
    }
)

# -- risk levels ---------------------------------------------------------------------------

SCORE_MIN: Final = 0
SCORE_MAX: Final = 100


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# Lowest score of each level, highest level first.
LEVEL_FLOORS: Final[tuple[tuple[int, RiskLevel], ...]] = (
    (85, RiskLevel.CRITICAL),
    (60, RiskLevel.HIGH),
    (30, RiskLevel.MEDIUM),
    (0, RiskLevel.LOW),
)


def level_for_score(score: int) -> RiskLevel:
    """The level a score falls in: low 0-29, medium 30-59, high 60-84, critical 85-100."""
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise ValueError(f"risk score {score} is outside {SCORE_MIN}..{SCORE_MAX}")
    for floor, level in LEVEL_FLOORS:
        if score >= floor:
            return level
    raise AssertionError("unreachable: the lowest floor is 0")  # pragma: no cover
