"""Dwell time: how long a person has stayed in each entry or sensitive zone of a camera.

A stay in a zone goes on while a person keeps being seen standing there (by the foot point of
the box) with gaps of at most `gap_s` between sightings; a longer gap ends it, and the next
sighting starts a new one. Times are the frames' capture times, so a stay spans windows and
events, and frames that arrive out of order (two analyses of one camera finishing in either
order, a resent frame) still count where they belong. A stay longer than `loiter_s` is
loitering, which the event says.

Only state in memory, per camera and zone: a restart forgets the stays under way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from gpu_server.context import ZoneMap
from gpu_server.events.model import EventDwell
from gpu_server.events.windows import WindowFrame
from gpu_server.vocabulary import LabelGroup, ZoneKind, label_group

# The zones where standing around matters; a yard, a driveway or the street do not count.
DWELL_ZONE_KINDS: Final = frozenset({ZoneKind.ENTRY, ZoneKind.SENSITIVE})


@dataclass(frozen=True, slots=True)
class DwellSettings:
    gap_s: float = 15.0
    loiter_s: float = 60.0

    def __post_init__(self) -> None:
        if self.gap_s <= 0 or self.loiter_s <= 0:
            raise ValueError("the dwell gap and the loitering time must be positive")


@dataclass(frozen=True, slots=True)
class Sighting:
    """A moment a person stood in these entry or sensitive zones."""

    when: datetime  # timezone-aware capture time
    zones: frozenset[str]


def person_sightings(frames: Sequence[WindowFrame], zone_map: ZoneMap) -> list[Sighting]:
    """The frames that show a person standing in an entry or sensitive zone, with those zones.

    A person who stands in an ignore zone as well (a pavement drawn inside a porch) does not
    count, as everywhere else.
    """
    if not any(zone.kind in DWELL_ZONE_KINDS for zone in zone_map.zones):
        return []
    sightings: list[Sighting] = []
    for frame in frames:
        zones: set[str] = set()
        for det in frame.detections:
            if label_group(det.label) is not LabelGroup.PERSON:
                continue
            assignment = zone_map.zones_for_box(
                (det.x1, det.y1, det.x2, det.y2), frame.width, frame.height
            )
            if assignment.ignored:
                continue
            zones.update(hit.name for hit in assignment.zones if hit.kind in DWELL_ZONE_KINDS)
        if zones:
            sightings.append(Sighting(frame.captured_at, frozenset(zones)))
    return sightings


def _runs(times: Sequence[datetime], gap_s: float) -> list[tuple[datetime, datetime]]:
    """Sorted times as runs: first and last of each stretch without a gap over `gap_s`."""
    runs: list[tuple[datetime, datetime]] = []
    for when in times:
        if runs and (when - runs[-1][1]).total_seconds() <= gap_s:
            runs[-1] = (runs[-1][0], when)
        else:
            runs.append((when, when))
    return runs


@dataclass(slots=True)
class _Stay:
    since: datetime
    last: datetime


class DwellTracker:
    """The stays under way per camera and zone. Not thread-safe: call from one thread (the
    event loop)."""

    def __init__(self, settings: DwellSettings | None = None) -> None:
        self.settings = settings or DwellSettings()
        self._stays: dict[str, dict[str, _Stay]] = {}

    def observe(self, camera_id: str, sightings: Iterable[Sighting]) -> tuple[EventDwell, ...]:
        """Take a window's sightings; for each zone they show, how long the stay had lasted at
        their latest sighting there (0 for a first sighting), zones in name order."""
        gap = self.settings.gap_s
        times: dict[str, list[datetime]] = {}
        for sighting in sightings:
            for zone in sighting.zones:
                times.setdefault(zone, []).append(sighting.when)
        stays = self._stays.setdefault(camera_id, {})
        out: list[EventDwell] = []
        for zone, seen in sorted(times.items()):
            for first, last in _runs(sorted(seen), gap):
                stay = stays.get(zone)
                if stay is None or (first - stay.last).total_seconds() > gap:
                    stays[zone] = _Stay(first, last)  # a new stay (or the first)
                elif (stay.since - last).total_seconds() <= gap:
                    stay.since = min(stay.since, first)
                    stay.last = max(stay.last, last)
                # else: before the stay under way, with a longer gap: an earlier stay, over.
            latest = max(seen)
            stay = stays[zone]
            if stay.since <= latest <= stay.last:
                out.append(EventDwell(zone, (latest - stay.since).total_seconds()))
        self._forget_ended(camera_id)
        return tuple(out)

    def loitering(self, camera_id: str, sightings: Iterable[Sighting]) -> tuple[EventDwell, ...]:
        """`observe`, keeping only the stays longer than the loitering time."""
        return tuple(
            item
            for item in self.observe(camera_id, sightings)
            if item.seconds >= self.settings.loiter_s
        )

    def _forget_ended(self, camera_id: str) -> None:
        """Drop the camera's stays that ended more than a gap before its newest sighting (a
        zone renamed or removed, someone gone)."""
        stays = self._stays.get(camera_id)
        if not stays:
            self._stays.pop(camera_id, None)
            return
        newest = max(stay.last for stay in stays.values())
        for zone in [
            zone
            for zone, stay in stays.items()
            if (newest - stay.last).total_seconds() > self.settings.gap_s
        ]:
            del stays[zone]

    def stays(self, camera_id: str) -> int:
        """Stays the camera has under way (tests and diagnostics)."""
        return len(self._stays.get(camera_id, {}))
