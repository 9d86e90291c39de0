"""Whether a security event should alert someone, and at which level: plain rules, no Home
Assistant.

The sidecar decides per incident (its first event alerts, updates and cooldowns do not); on top
of that the household's own rules apply here:

- Escalation: armed away, or nobody of the chosen people at home, raises the level one step
  (low to medium, ..., high to critical), when the option is on. Disarmed never escalates.
- Held back: while disarmed, below the camera's minimum level or score, or in one of the quiet
  hours windows, the event is still recorded but says `alert: false` with the reason. A
  critical event always alerts.
- The sidecar's fail-safe (a confident person at night or at an entry point that no model
  weighed) comes before the camera's minimum level, as the seed's detector-only rule does.
- The household: an event whose only findings are people, each of them a household member
  recognised by face (on their cameras, in their hours), does not alert, whatever its level.
  An unknown face, a person whose face was not seen, or anything else in view still alerts.

Quiet hours follow the seed's notification filter: a window has weekdays and a start and end
time; a window whose end is not after its start spans midnight and belongs to the day it
started on (Friday 22:00-06:00 covers Saturday 03:00, and Monday 03:00 only when Sunday is
one of its days). Equal start and end make a window of a whole day from that time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any, Final

from ..const import (
    CONF_ESCALATE,
    CONF_HOUSEHOLD,
    CONF_MIN_LEVELS,
    CONF_MIN_SCORES,
    CONF_QUIET_DAYS,
    CONF_QUIET_END,
    CONF_QUIET_START,
    CONF_QUIET_WINDOWS,
)
from ..vocabulary import RISK_LEVELS

# Weekday keys as the options store them, Monday first (datetime.weekday() order).
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Every event alerts from this level on, held back or not.
ALWAYS_ALERT_LEVEL: Final = "critical"


class ArmedMode(StrEnum):
    """The household's arming, chosen on the server device."""

    HOME = "home"
    AWAY = "away"
    NIGHT = "night"
    DISARMED = "disarmed"


class EscalationReason(StrEnum):
    """Why an event's level was raised."""

    ARMED_AWAY = "armed_away"
    NOBODY_HOME = "nobody_home"


class HoldBackReason(StrEnum):
    """Why an event does not alert."""

    # The sidecar's incident already alerted (an update, or a cooldown).
    INCIDENT = "incident"
    DISARMED = "disarmed"
    # Everyone seen is a household member.
    HOUSEHOLD = "household"
    BELOW_MINIMUM_LEVEL = "below_minimum_level"
    QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True, kw_only=True)
class QuietHours:
    """A weekly window in local time during which events below critical do not alert."""

    # The weekdays a window starts on, Monday 0.
    days: frozenset[int]
    start: time
    end: time

    def covers(self, when: datetime) -> bool:
        """Return whether the local time `when` lies in one of the windows."""
        moment = when.time().replace(tzinfo=None)
        day = when.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= moment < self.end
        # Spans midnight: the evening part on a listed day, the morning part after one.
        started_today = day in self.days and moment >= self.start
        started_yesterday = (day - 1) % 7 in self.days and moment < self.end
        return started_today or started_yesterday


@dataclass(frozen=True, kw_only=True)
class HouseholdMember:
    """An enrolled person who lives here: on which cameras and in which hours they are expected."""

    # Camera ids; empty: every camera.
    cameras: frozenset[str] = frozenset()
    # Local start and end; None: at any time. An end not after the start spans midnight.
    start: time | None = None
    end: time | None = None

    def expected(self, camera_id: str, when: datetime) -> bool:
        """Return whether the member is expected on the camera at the local time `when`."""
        if self.cameras and camera_id not in self.cameras:
            return False
        if self.start is None or self.end is None:
            return True
        moment = when.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True, kw_only=True)
class PeopleSeen:
    """What an event says about who was there, for the household rule."""

    # Names of the recognised faces, and how many faces matched nobody.
    names: frozenset[str] = frozenset()
    unknown_faces: int = 0
    # The most person boxes in any one frame, and whether anything but people was found.
    most_people: int = 0
    other_findings: bool = False

    def only(
        self, household: Mapping[str, HouseholdMember], camera_id: str, when: datetime
    ) -> bool:
        """Return whether everyone seen is a household member expected here and now."""
        members = {
            name for name in self.names
            if (member := household.get(name)) is not None and member.expected(camera_id, when)
        }
        return (
            bool(members)
            and members == self.names
            and self.unknown_faces == 0
            and not self.other_findings
            and self.most_people <= len(members)
        )


@dataclass(frozen=True, kw_only=True)
class AlertSettings:
    """The household's rules, as the options hold them."""

    escalate: bool = True
    # Events below critical in any of these windows do not alert.
    quiet_hours: tuple[QuietHours, ...] = ()
    # Camera id -> the lowest level that alerts ("low" when absent).
    min_levels: Mapping[str, str] = field(default_factory=dict)
    # Camera id -> the lowest risk score (0-100) that alerts, beside the level.
    min_scores: Mapping[str, int] = field(default_factory=dict)
    # Enrolled name -> where and when they are expected.
    household: Mapping[str, HouseholdMember] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlertDecision:
    """What the household's alert rules decided for one event (the sidecar's own assessment
    is its risk level and score, which this one may raise or hold back)."""

    level: str
    raw_level: str
    armed_mode: ArmedMode
    escalation_reason: EscalationReason | None = None
    alert: bool = True
    alert_reason: HoldBackReason | None = None
    # An update of an incident that paged: no new page, but its notification is refreshed.
    updates_page: bool = False

    @property
    def escalated(self) -> bool:
        """Return whether the level was raised."""
        return self.escalation_reason is not None

    def as_data(self) -> dict[str, Any]:
        """Return the fields that the bus event and the event entity carry."""
        return {
            "risk_level": self.level,
            "raw_risk_level": self.raw_level,
            "armed_mode": self.armed_mode.value,
            "escalated": self.escalated,
            "escalation_reason": _value(self.escalation_reason),
            "alert": self.alert,
            "alert_reason": _value(self.alert_reason),
            "updates_page": self.updates_page,
        }


def _value(reason: StrEnum | None) -> str | None:
    return reason.value if reason is not None else None


def quiet_window(days: Any, start: Any, end: Any) -> QuietHours | None:
    """One quiet-hours window as the options hold it; None when it is not complete."""
    chosen = frozenset(WEEKDAYS.index(day) for day in days or () if day in WEEKDAYS)
    if not (chosen and start and end):
        return None
    return QuietHours(days=chosen, start=time.fromisoformat(start), end=time.fromisoformat(end))


def settings_from_options(options: Mapping[str, Any]) -> AlertSettings:
    """Read the household's rules from the entry's options."""
    windows = [
        quiet_window(
            options.get(CONF_QUIET_DAYS), options.get(CONF_QUIET_START), options.get(CONF_QUIET_END)
        ),
        *(
            quiet_window(item.get("days"), item.get("start"), item.get("end"))
            for item in options.get(CONF_QUIET_WINDOWS, [])
        ),
    ]
    return AlertSettings(
        escalate=bool(options.get(CONF_ESCALATE, True)),
        quiet_hours=tuple(window for window in windows if window is not None),
        min_levels=dict(options.get(CONF_MIN_LEVELS, {})),
        min_scores={
            camera: int(score) for camera, score in options.get(CONF_MIN_SCORES, {}).items()
        },
        household={
            name: household_member(entry)
            for name, entry in options.get(CONF_HOUSEHOLD, {}).items()
        },
    )


def household_member(entry: Mapping[str, Any]) -> HouseholdMember:
    """Read one member's cameras and hours as the options hold them."""
    start, end = entry.get("start"), entry.get("end")
    return HouseholdMember(
        cameras=frozenset(entry.get("cameras") or ()),
        start=time.fromisoformat(start) if start and end else None,
        end=time.fromisoformat(end) if start and end else None,
    )


def level_at_least(level: str, minimum: str) -> bool:
    """Return whether risk level `level` is `minimum` or higher."""
    return RISK_LEVELS.index(level) >= RISK_LEVELS.index(minimum)


def raise_level(level: str) -> str:
    """Return the next higher risk level; critical stays critical."""
    return RISK_LEVELS[min(RISK_LEVELS.index(level) + 1, len(RISK_LEVELS) - 1)]


def assess(
    *,
    raw_level: str,
    camera_id: str,
    when: datetime,
    incident_alert: bool,
    mode: ArmedMode,
    nobody_home: bool,
    settings: AlertSettings,
    failsafe: bool = False,
    people: PeopleSeen | None = None,
    score: int | None = None,
) -> AlertDecision:
    """Apply arming, presence, minimum levels and quiet hours to one event.

    `when` is the event's local time; `nobody_home` is true only when people are chosen and
    none of them is at home.
    """
    reason: EscalationReason | None = None
    if settings.escalate and mode is not ArmedMode.DISARMED:
        if mode is ArmedMode.AWAY:
            reason = EscalationReason.ARMED_AWAY
        elif nobody_home:
            reason = EscalationReason.NOBODY_HOME
    level = raise_level(raw_level) if reason is not None else raw_level
    if level == raw_level:
        reason = None  # critical cannot go higher
    hold_back: HoldBackReason | None = None
    if not incident_alert:
        hold_back = HoldBackReason.INCIDENT
    elif people is not None and people.only(settings.household, camera_id, when):
        hold_back = HoldBackReason.HOUSEHOLD
    elif level_at_least(level, ALWAYS_ALERT_LEVEL):
        hold_back = None
    elif mode is ArmedMode.DISARMED:
        hold_back = HoldBackReason.DISARMED
    elif not failsafe and (
        not level_at_least(level, settings.min_levels.get(camera_id, RISK_LEVELS[0]))
        or (score is not None and score < settings.min_scores.get(camera_id, 0))
    ):
        hold_back = HoldBackReason.BELOW_MINIMUM_LEVEL
    elif any(window.covers(when) for window in settings.quiet_hours):
        hold_back = HoldBackReason.QUIET_HOURS
    return AlertDecision(
        level=level,
        raw_level=raw_level,
        armed_mode=mode,
        escalation_reason=reason,
        alert=hold_back is None,
        alert_reason=hold_back,
    )
