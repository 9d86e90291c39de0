"""Incidents: what the household is told about, rather than one event per frame or window.

A camera's incident opens with its first event that found something (a detection or a tamper)
and every later event of that camera joins it while activity goes on; it ends after `gap_s`
without any. The event that opens an incident is its alert; the ones that follow are updates of
it (same id, newer score and summary). A person walking past for a minute is one incident,
alerted once by the fast path and then updated by the window's analysis.

Cameras are linked: a camera whose first person comes within `link_s` of a person on another
camera's open incident joins that incident, which then lists both cameras. A person
re-identified as one seen on another camera (enrich/reid.py) joins that camera's open incident
whenever it is, as long as that incident is still open.

Cooldown: once a camera has alerted for a kind of finding (person, vehicle, tamper, ...), a new
incident of that camera with only kinds still cooling down does not alert again for `cooldown_s`,
unless its level is higher than the one that started the cooldown; critical always alerts.
Events are delivered either way; `alert` only says whether this one should page someone.

People are told apart where enrichment can (enrich/visitors.py: by face or appearance, not by
the colours of clothes): a person's cooldown is kept per visitor, so a different stranger at the
door five minutes after the first pages, and a different stranger joining an open incident
pages too. A person nobody could tell apart counts
as whoever is cooling down on the camera (maybe the same person, face hidden); enrolled people
start no cooldown of their own (whether they page is the household's rule).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from gpu_server.core.clock import Clock
from gpu_server.vocabulary import LabelGroup, RiskLevel

PERSON_KIND: Final = LabelGroup.PERSON.value
TAMPER_KIND: Final = "tamper"
_LEVEL_ORDER: Final = {
    RiskLevel.LOW: 0,
    RiskLevel.MEDIUM: 1,
    RiskLevel.HIGH: 2,
    RiskLevel.CRITICAL: 3,
}


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    gap_s: float = 120.0  # quiet time that ends an incident
    link_s: float = 60.0  # a person on another camera this recently joins its incident
    cooldown_s: float = 600.0  # per camera and kind of finding; 0 turns cooldown off


@dataclass(frozen=True, slots=True)
class IncidentStamp:
    """What one event says about the incident it belongs to."""

    incident_id: str
    update: bool  # False for the event that opened the incident
    cameras: tuple[str, ...]
    started_at: datetime
    alert: bool  # whether this event should page someone
    # The longest cooldown still running for this camera's kinds in this event (0: none).
    cooldown_remaining_s: float
    # After this event: seconds of cooldown left per kind of finding on the camera.
    cooldowns: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Incident:
    incident_id: str
    cameras: list[str]
    started_at: datetime
    last_activity: float  # monotonic
    events: int = 0
    fast_path_alerted: bool = False
    alerted_level: RiskLevel | None = None
    person_seen_at: float | None = None  # monotonic, for linking cameras
    kinds: set[str] = field(default_factory=set)
    # The strangers told apart in this incident so far (visitor ids).
    strangers: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class EndedIncident:
    incident_id: str
    cameras: tuple[str, ...]
    started_at: datetime
    ended_at: datetime
    events: int
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Cooldown:
    until: float  # monotonic
    level: RiskLevel


def _higher(level: RiskLevel, than: RiskLevel | None) -> bool:
    return than is None or _LEVEL_ORDER[level] > _LEVEL_ORDER[than]


class IncidentTracker:
    """Open incidents by camera, and each camera's cooldowns. Use it from the event loop."""

    def __init__(self, settings: IncidentSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._by_camera: dict[str, Incident] = {}
        # (camera, kind, visitor): the visitor is "" for a finding nobody told apart.
        self._cooldowns: dict[tuple[str, str, str], _Cooldown] = {}
        # Cameras whose early alert is being analysed: monotonic time it was taken.
        self._fast_path_taken: dict[str, float] = {}

    def activity(self, camera_id: str) -> None:
        """Something was detected on the camera: its open incident goes on."""
        incident = self._open_for(camera_id)
        if incident is not None:
            incident.last_activity = self._clock.monotonic()

    def may_fast_path(self, camera_id: str) -> bool:
        """Only the first confident person of an incident gets the early alert."""
        taken = self._fast_path_taken.get(camera_id)
        if taken is not None and self._clock.monotonic() - taken < self.settings.gap_s:
            return False
        incident = self._open_for(camera_id)
        return incident is None or not incident.fast_path_alerted

    def take_fast_path(self, camera_id: str) -> bool:
        """Reserve the camera's early alert now, before its analysis ends; False if taken."""
        if not self.may_fast_path(camera_id):
            return False
        self._fast_path_taken[camera_id] = self._clock.monotonic()
        return True

    def stamp(
        self,
        camera_id: str,
        kinds: Iterable[str],
        level: RiskLevel,
        *,
        fast_path: bool = False,
        same_person_on: Iterable[str] = (),
        started_at: datetime | None = None,
        strangers: Iterable[str] = (),
        known_only: bool = False,
    ) -> IncidentStamp:
        """Put an event that found something into its incident, opening one if needed.

        `same_person_on`: cameras where a person of this event was seen before, nearest first.
        `started_at`: when the event's first frame was taken; an incident starts with the
        earliest of its events, so the calendar and the events tell one time (now if unknown).
        `strangers`: the visitor ids of the unknown people told apart; `known_only`: every
        person of the event is an enrolled person.
        """
        told_apart = frozenset(strangers)
        now = self._clock.monotonic()
        found = set(kinds)
        incident = self._open_for(camera_id)
        update = incident is not None
        if incident is None:
            incident = (
                self._same_person(camera_id, same_person_on)
                or self._linked(found, now)
                or Incident(
                    incident_id=uuid.uuid4().hex,
                    cameras=[],
                    started_at=started_at or self._clock.wall(),
                    last_activity=now,
                )
            )
            update = bool(incident.cameras)
            if camera_id not in incident.cameras:
                incident.cameras.append(camera_id)
            self._by_camera[camera_id] = incident
        incident.events += 1
        incident.last_activity = now
        if started_at is not None and started_at < incident.started_at:
            incident.started_at = started_at
        incident.kinds |= found
        if PERSON_KIND in found:
            incident.person_seen_at = now
        if fast_path:
            incident.fast_path_alerted = True
            self._fast_path_taken.pop(camera_id, None)

        remaining = self._remaining(camera_id, found, now)
        if incident.alerted_level is None:
            # The first alert of the incident: held back only by a cooldown it does not beat.
            alert = level is RiskLevel.CRITICAL or self._beats_cooldown(
                camera_id, found, level, told_apart
            )
        else:
            # Updates alert again when they raise the level, or when a stranger other than
            # the ones told apart so far joins.
            newcomer = bool(incident.strangers) and bool(told_apart - incident.strangers)
            alert = _higher(level, incident.alerted_level) or newcomer
        incident.strangers |= told_apart
        if alert:
            if _higher(level, incident.alerted_level):
                incident.alerted_level = level
            self._start_cooldown(
                camera_id, found, level, now, strangers=told_apart, known_only=known_only
            )
        return IncidentStamp(
            incident_id=incident.incident_id,
            update=update,
            cameras=tuple(incident.cameras),
            started_at=incident.started_at,
            alert=alert,
            cooldown_remaining_s=remaining,
            cooldowns=self.cooldowns(camera_id),
        )

    def cooldowns(self, camera_id: str) -> dict[str, float]:
        """Seconds of cooldown left per kind of finding on the camera."""
        now = self._clock.monotonic()
        left: dict[str, float] = {}
        for (camera, kind, _), cooldown in self._cooldowns.items():
            if camera == camera_id and cooldown.until > now:
                left[kind] = max(left.get(kind, 0.0), cooldown.until - now)
        return left

    def open_incident(self, camera_id: str) -> str | None:
        incident = self._open_for(camera_id)
        return incident.incident_id if incident is not None else None

    def due(self) -> list[EndedIncident]:
        """End and return the incidents that have been quiet for `gap_s`."""
        now = self._clock.monotonic()
        ended: dict[str, EndedIncident] = {}
        for camera_id, incident in list(self._by_camera.items()):
            if now - incident.last_activity < self.settings.gap_s:
                continue
            del self._by_camera[camera_id]
            ended.setdefault(
                incident.incident_id,
                EndedIncident(
                    incident_id=incident.incident_id,
                    cameras=tuple(incident.cameras),
                    started_at=incident.started_at,
                    ended_at=self._clock.wall(),
                    events=incident.events,
                    kinds=tuple(sorted(incident.kinds)),
                ),
            )
        for key in [key for key, value in self._cooldowns.items() if value.until <= now]:
            del self._cooldowns[key]
        return list(ended.values())

    def _open_for(self, camera_id: str) -> Incident | None:
        incident = self._by_camera.get(camera_id)
        if incident is None:
            return None
        if self._clock.monotonic() - incident.last_activity >= self.settings.gap_s:
            return None  # quiet for long enough: ended, though `due()` has not collected it
        return incident

    def _same_person(self, camera_id: str, cameras: Iterable[str]) -> Incident | None:
        for other in cameras:
            if other != camera_id and (incident := self._open_for(other)) is not None:
                return incident
        return None

    def _linked(self, found: set[str], now: float) -> Incident | None:
        if PERSON_KIND not in found or self.settings.link_s <= 0:
            return None
        candidates = [
            incident
            for incident in self._by_camera.values()
            if incident.person_seen_at is not None
            and now - incident.person_seen_at <= self.settings.link_s
            and now - incident.last_activity < self.settings.gap_s
        ]
        return max(candidates, key=lambda item: item.person_seen_at or 0.0, default=None)

    def _remaining(self, camera_id: str, found: set[str], now: float) -> float:
        left = self.cooldowns(camera_id)
        return max((left[kind] for kind in found if kind in left), default=0.0)

    def _running(
        self, camera_id: str, kind: str, visitor: str | None, now: float
    ) -> list[_Cooldown]:
        """The cooldowns that hold a finding back: the visitor's own, and one started by a
        finding nobody told apart; for a finding nobody told apart (visitor None), all of the
        camera's of that kind."""
        return [
            cooldown
            for (camera, cooled, who), cooldown in self._cooldowns.items()
            if camera == camera_id
            and cooled == kind
            and cooldown.until > now
            and (visitor is None or who in ("", visitor))
        ]

    def _beats_cooldown(
        self, camera_id: str, found: set[str], level: RiskLevel, strangers: frozenset[str]
    ) -> bool:
        now = self._clock.monotonic()
        for kind in found or {""}:
            visitors: Iterable[str | None] = (
                strangers if kind == PERSON_KIND and strangers else (None,)
            )
            for visitor in visitors:
                holding = self._running(camera_id, kind, visitor, now)
                if all(_higher(level, cooldown.level) for cooldown in holding):
                    return True
        return False

    def _start_cooldown(
        self,
        camera_id: str,
        found: set[str],
        level: RiskLevel,
        now: float,
        *,
        strangers: frozenset[str],
        known_only: bool,
    ) -> None:
        if self.settings.cooldown_s <= 0:
            return
        cooldown = _Cooldown(now + self.settings.cooldown_s, level)
        for kind in found:
            if kind != PERSON_KIND:
                self._cooldowns[(camera_id, kind, "")] = cooldown
            elif strangers:
                for visitor in strangers:
                    self._cooldowns[(camera_id, kind, visitor)] = cooldown
            elif not known_only:
                self._cooldowns[(camera_id, kind, "")] = cooldown
