"""Dwell time per zone: how long a person has stayed in an entry or sensitive zone, across
windows, with explicit capture times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gpu_server.context import ZoneMap
from gpu_server.context.zones import Zone
from gpu_server.core.detection import Detection
from gpu_server.events.dwell import DwellSettings, DwellTracker, Sighting, person_sightings
from gpu_server.events.model import EventDwell
from gpu_server.events.windows import WindowFrame
from gpu_server.vocabulary import ZoneKind

T0 = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)


def at(seconds: float, *zones: str) -> Sighting:
    return Sighting(T0 + timedelta(seconds=seconds), frozenset(zones or ("Back door",)))


def every(start: float, stop: float, step: float, *zones: str) -> list[Sighting]:
    """A sighting every `step` seconds from `start` up to `stop`, both included."""
    count = round((stop - start) / step)
    return [at(start + n * step, *zones) for n in range(count + 1)]


@pytest.fixture
def tracker() -> DwellTracker:
    return DwellTracker(DwellSettings(gap_s=15.0, loiter_s=60.0))


def test_continuous_presence_adds_up_across_windows(tracker: DwellTracker) -> None:
    assert tracker.observe("yard", [at(0)]) == (EventDwell("Back door", 0.0),)
    # Three windows of a person seen every 5 s: the stay runs on through them.
    assert tracker.observe("yard", every(5, 40, 5)) == (EventDwell("Back door", 40.0),)
    assert tracker.loitering("yard", every(45, 55, 5)) == ()
    assert tracker.loitering("yard", every(60, 190, 10)) == (EventDwell("Back door", 190.0),)


def test_a_gap_longer_than_the_setting_starts_a_new_stay(tracker: DwellTracker) -> None:
    tracker.observe("yard", every(0, 50, 5))
    # 15 s between two sightings still counts as staying; 16 s does not.
    assert tracker.observe("yard", [at(65)]) == (EventDwell("Back door", 65.0),)
    assert tracker.observe("yard", [at(81), at(90)]) == (EventDwell("Back door", 9.0),)
    assert tracker.loitering("yard", every(95, 140, 5)) == ()


def test_each_zone_has_its_own_stay(tracker: DwellTracker) -> None:
    tracker.observe("yard", every(0, 60, 10, "Back door"))
    tracker.observe("yard", every(40, 60, 10, "Back door", "Shed"))
    assert tracker.observe("yard", every(70, 80, 10, "Back door", "Shed")) == (
        EventDwell("Back door", 80.0),
        EventDwell("Shed", 40.0),
    )
    # Another camera's zone of the same name is another place.
    assert tracker.observe("porch", [at(80)]) == (EventDwell("Back door", 0.0),)
    # Only the door is loitering so far.
    assert tracker.loitering("yard", [at(90, "Back door", "Shed")]) == (
        EventDwell("Back door", 90.0),
    )


def test_windows_analysed_out_of_order_still_add_up(tracker: DwellTracker) -> None:
    """Two analyses of one camera may end in either order; a resent old frame is no new stay."""
    tracker.observe("yard", every(60, 90, 10))
    assert tracker.observe("yard", every(0, 50, 10)) == (EventDwell("Back door", 50.0),)
    assert tracker.loitering("yard", [at(100)]) == (EventDwell("Back door", 100.0),)
    # A frame from long before the stay does not end or restart it.
    assert tracker.observe("yard", [at(-600)]) == ()
    assert tracker.loitering("yard", [at(110)]) == (EventDwell("Back door", 110.0),)


def test_ended_stays_are_forgotten(tracker: DwellTracker) -> None:
    tracker.observe("yard", every(0, 30, 10, "Back door"))
    tracker.observe("yard", [at(40, "Shed")])
    assert tracker.stays("yard") == 2
    tracker.observe("yard", [at(100, "Shed")])
    assert tracker.stays("yard") == 1  # the door's stay ended 70 s before
    assert tracker.observe("yard", []) == ()


def test_the_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        DwellSettings(gap_s=0.0)


def _zone(name: str, kind: str, points: tuple[tuple[float, float], ...]) -> Zone:
    return Zone(name=name, kind=ZoneKind(kind), points=points)


def _frame(seconds: float, *detections: Detection) -> WindowFrame:
    return WindowFrame(
        sha256=f"{seconds:064.0f}",
        captured_at=T0 + timedelta(seconds=seconds),
        width=100,
        height=100,
        detections=detections,
    )


def _standing(label: str, x: float, y: float) -> Detection:
    """A box whose foot point (bottom centre) is at (x, y) in a 100x100 frame."""
    return Detection(label, 0, 0.9, x - 5, y - 30, x + 5, y)


LEFT = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
RIGHT = ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))


@pytest.mark.parametrize(
    ("kind", "counts"),
    [("entry", True), ("sensitive", True), ("perimeter", False), ("driveway", False),
     ("yard", False), ("other", False), ("ignore", False)],
)
def test_only_entry_and_sensitive_zones_count(kind: str, counts: bool) -> None:
    zones = ZoneMap(camera_id="yard", zones=(_zone("Here", kind, LEFT),))
    sightings = person_sightings([_frame(0, _standing("person", 25, 90))], zones)
    assert sightings == ([Sighting(T0, frozenset({"Here"}))] if counts else [])


def test_sightings_are_people_standing_in_the_zone() -> None:
    zones = ZoneMap(
        camera_id="yard",
        zones=(_zone("Back door", "entry", LEFT), _zone("Safe", "sensitive", RIGHT)),
    )
    frames = [
        _frame(0, _standing("person", 25, 90)),
        _frame(1, _standing("dog", 25, 90), _standing("car", 75, 90)),  # no person: no stay
        _frame(2, _standing("Person", 25, 90), _standing("pedestrian", 75, 90)),
        _frame(3),
    ]
    assert person_sightings(frames, zones) == [
        Sighting(T0, frozenset({"Back door"})),
        Sighting(T0 + timedelta(seconds=2), frozenset({"Back door", "Safe"})),
    ]
    # Someone standing in an ignore zone drawn inside the door (the pavement) is not there.
    ignore = _zone("Pavement", "ignore", ((0.0, 0.8), (0.5, 0.8), (0.5, 1.0), (0.0, 1.0)))
    with_pavement = ZoneMap(camera_id="yard", zones=(*zones.zones, ignore))
    assert person_sightings(frames[:1], with_pavement) == []
