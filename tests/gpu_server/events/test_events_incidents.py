"""Incidents and cooldown, with a fake clock: one walk past a camera is one incident."""

from __future__ import annotations

from datetime import timedelta

from testlib.fakes import FakeClock

from gpu_server.events.incidents import IncidentSettings, IncidentTracker
from gpu_server.vocabulary import RiskLevel

HIGH, MEDIUM, LOW, CRITICAL = RiskLevel.HIGH, RiskLevel.MEDIUM, RiskLevel.LOW, RiskLevel.CRITICAL


def tracker(clock: FakeClock, **settings: float) -> IncidentTracker:
    defaults = {"gap_s": 120.0, "link_s": 60.0, "cooldown_s": 600.0}
    defaults.update(settings)
    return IncidentTracker(IncidentSettings(**defaults), clock)


def test_a_walk_past_a_camera_is_one_incident_alerted_once_and_updated() -> None:
    clock = FakeClock()
    incidents = tracker(clock)
    assert incidents.may_fast_path("porch")
    first = incidents.stamp("porch", {"person"}, HIGH, fast_path=True)
    assert first.alert
    assert not first.update
    assert first.cameras == ("porch",)
    # The person keeps walking for a minute: no second early alert, the incident goes on.
    for _ in range(6):
        clock.advance(10)
        incidents.activity("porch")
        assert not incidents.may_fast_path("porch")
    window = incidents.stamp("porch", {"person"}, HIGH)
    assert window.incident_id == first.incident_id
    assert window.update
    assert not window.alert  # same level: an update, not a new page
    escalated = incidents.stamp("porch", {"person"}, CRITICAL)
    assert escalated.update
    assert escalated.alert  # a higher level breaks through


def test_quiet_ends_the_incident_and_the_cooldown_holds_the_next_alert() -> None:
    clock = FakeClock()
    incidents = tracker(clock)
    first = incidents.stamp("porch", {"person"}, HIGH)
    assert first.cooldowns == {"person": 600}  # the alert starts the camera's cooldown
    clock.advance(119)
    assert incidents.due() == []
    clock.advance(1)
    (ended,) = incidents.due()
    assert ended.incident_id == first.incident_id
    assert ended.cameras == ("porch",)
    assert ended.kinds == ("person",)
    assert incidents.open_incident("porch") is None

    clock.advance(60)  # 3 minutes after the alert, well inside the 10-minute cooldown
    again = incidents.stamp("porch", {"person"}, HIGH)
    assert again.incident_id != first.incident_id
    assert not again.update
    assert not again.alert
    assert again.cooldown_remaining_s == 420
    assert incidents.cooldowns("porch") == {"person": 420}
    # A kind of finding that is not cooling down gives the held-back incident its alert.
    other = incidents.stamp("porch", {"vehicle"}, MEDIUM)
    assert other.incident_id == again.incident_id
    assert other.update
    assert other.alert
    assert other.cooldowns == {"person": 420, "vehicle": 600}
    assert not incidents.stamp("porch", {"vehicle"}, MEDIUM).alert


def test_cooldown_is_beaten_by_a_higher_level_and_never_holds_critical() -> None:
    clock = FakeClock()
    incidents = tracker(clock, gap_s=10)
    incidents.stamp("porch", {"person"}, HIGH)
    for level, alert in ((MEDIUM, False), (HIGH, False), (CRITICAL, True), (CRITICAL, True)):
        clock.advance(20)
        incidents.due()
        stamp = incidents.stamp("porch", {"person"}, level)
        assert not stamp.update
        assert stamp.alert is alert, level


def test_cooldown_is_per_camera_and_can_be_turned_off() -> None:
    clock = FakeClock()
    incidents = tracker(clock, gap_s=10, link_s=0)
    incidents.stamp("porch", {"person"}, HIGH)
    assert incidents.stamp("garden", {"person"}, HIGH).alert
    off = tracker(clock, gap_s=10, cooldown_s=0)
    off.stamp("porch", {"person"}, HIGH)
    clock.advance(20)
    assert off.stamp("porch", {"person"}, HIGH).alert
    assert off.cooldowns("porch") == {}


def test_a_person_crossing_two_cameras_is_one_incident() -> None:
    clock = FakeClock()
    incidents = tracker(clock)
    driveway = incidents.stamp("driveway", {"person"}, HIGH, fast_path=True)
    clock.advance(40)
    porch = incidents.stamp("porch", {"person"}, HIGH, fast_path=True)
    assert porch.incident_id == driveway.incident_id
    assert porch.update
    assert porch.cameras == ("driveway", "porch")
    assert not porch.alert  # the household was told already
    assert incidents.open_incident("porch") == driveway.incident_id
    clock.advance(200)
    (ended,) = incidents.due()
    assert ended.cameras == ("driveway", "porch")
    assert ended.events == 2


def test_cameras_are_not_linked_by_animals_or_after_the_link_window() -> None:
    clock = FakeClock()
    incidents = tracker(clock, cooldown_s=0)
    cat = incidents.stamp("driveway", {"animal"}, LOW)
    clock.advance(10)
    person = incidents.stamp("porch", {"person"}, HIGH)
    assert person.incident_id != cat.incident_id
    clock.advance(61)
    incidents.activity("porch")
    late = incidents.stamp("garden", {"person"}, HIGH)
    assert late.incident_id != person.incident_id
    assert late.cameras == ("garden",)


def test_an_incident_starts_with_its_earliest_frame() -> None:
    """The calendar and the events tell one time: when the first frame was taken, not when
    the analysis ended."""
    clock = FakeClock()
    incidents = tracker(clock)
    taken = clock.wall() - timedelta(seconds=40)
    first = incidents.stamp("porch", {"person"}, HIGH, started_at=taken)
    assert first.started_at == taken
    # A later event whose frames began earlier (a window closed after a fast path) moves it.
    earlier = taken - timedelta(seconds=5)
    assert incidents.stamp("porch", {"person"}, HIGH, started_at=earlier).started_at == earlier
    assert incidents.stamp("porch", {"person"}, HIGH, started_at=taken).started_at == earlier
    clock.advance(120)
    (ended,) = incidents.due()
    assert ended.started_at == earlier


def test_a_different_stranger_breaks_through_the_cooldown_the_same_one_does_not() -> None:
    clock = FakeClock()
    incidents = tracker(clock)
    first = incidents.stamp("porch", {"person"}, HIGH, strangers=["a"])
    assert first.alert
    clock.advance(150)  # the incident has ended; the cooldown runs for 600 s
    incidents.due()
    again = incidents.stamp("porch", {"person"}, HIGH, strangers=["a"])
    assert not again.alert  # the same stranger, back within the cooldown
    clock.advance(150)
    incidents.due()
    other = incidents.stamp("porch", {"person"}, HIGH, strangers=["b"])
    assert other.alert  # someone else: one page per visitor
    clock.advance(150)
    incidents.due()
    # A person nobody could tell apart may be either of them: held.
    unknown = incidents.stamp("porch", {"person"}, HIGH)
    assert not unknown.alert


def test_a_person_nobody_told_apart_holds_back_whoever_comes_next() -> None:
    """Walking from the gate (back turned) to the door (face seen) stays one page."""
    clock = FakeClock()
    incidents = tracker(clock)
    assert incidents.stamp("porch", {"person"}, HIGH).alert
    clock.advance(150)
    incidents.due()
    assert not incidents.stamp("porch", {"person"}, HIGH, strangers=["a"]).alert


def test_a_stranger_joining_an_open_incident_pages() -> None:
    clock = FakeClock()
    incidents = tracker(clock)
    first = incidents.stamp("porch", {"person"}, HIGH, strangers=["a"])
    assert first.alert
    clock.advance(20)
    same = incidents.stamp("porch", {"person"}, HIGH, strangers=["a"])
    assert (same.incident_id, same.alert) == (first.incident_id, False)
    clock.advance(20)
    joined = incidents.stamp("porch", {"person"}, HIGH, strangers=["a", "b"])
    assert (joined.incident_id, joined.alert) == (first.incident_id, True)


def test_enrolled_people_start_no_cooldown() -> None:
    """Anna coming home holds back nobody: the stranger after her pages."""
    clock = FakeClock()
    incidents = tracker(clock)
    assert incidents.stamp("porch", {"person"}, HIGH, known_only=True).alert
    clock.advance(150)
    incidents.due()
    assert incidents.cooldowns("porch") == {}
    assert incidents.stamp("porch", {"person"}, HIGH, strangers=["x"]).alert
