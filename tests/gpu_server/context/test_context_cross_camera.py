"""Cross-camera activity log with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gpu_server.context import CrossCameraLog

T0 = datetime(2025, 6, 1, 22, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_events_expire_after_the_window() -> None:
    clock = FakeClock(T0)
    log = CrossCameraLog(timedelta(seconds=120), clock=clock)
    log.add("driveway", T0, ["person"])
    clock.now = T0 + timedelta(seconds=60)
    log.add("garden", clock.now, ["dog"])
    assert len(log) == 2
    clock.now = T0 + timedelta(seconds=121)
    assert [e.camera_id for e in log.recent()] == ["garden"]
    clock.now = T0 + timedelta(seconds=181)
    assert len(log) == 0


def test_summary_of_other_cameras_before_a_window() -> None:
    clock = FakeClock(T0 + timedelta(seconds=40))
    log = CrossCameraLog(timedelta(minutes=5), clock=clock, camera_names={"drive": "Driveway"})
    log.add("drive", T0 - timedelta(seconds=30), ["car"], ["Drive"])
    log.add("drive", T0, ["person", "car"], ["Drive"])
    log.add("back_door", T0 + timedelta(seconds=40), ["person"])  # the camera being analyzed
    log.add("garden", T0 + timedelta(seconds=50), ["cat"])  # after the window: left out

    notes = log.summarize("back_door", T0 + timedelta(seconds=40), T0 + timedelta(seconds=45))
    assert len(notes) == 1
    note = notes[0]
    assert note.camera_name == "Driveway"
    assert note.seconds_before == pytest.approx(40)
    assert note.labels == {"car": 2, "person": 1}
    assert note.zones == ("Drive",)


def test_summary_orders_latest_first_and_limits() -> None:
    clock = FakeClock(T0)
    log = CrossCameraLog(timedelta(minutes=10), clock=clock)
    for index in range(6):
        log.add(f"cam{index}", T0 - timedelta(seconds=100 - index * 10), ["person"])
    notes = log.summarize("front", T0, limit=3)
    assert [n.camera_id for n in notes] == ["cam5", "cam4", "cam3"]
    assert notes[0].seconds_before == pytest.approx(50)


def test_event_inside_the_window_is_described_as_such() -> None:
    log = CrossCameraLog(clock=FakeClock(T0))
    log.add("side", T0 + timedelta(seconds=5), ["person"])
    (note,) = log.summarize("front", T0, T0 + timedelta(seconds=10))
    assert note.seconds_before == pytest.approx(-5)


def test_size_bound_and_input_checks() -> None:
    log = CrossCameraLog(max_events=3, clock=FakeClock(T0))
    for index in range(5):
        log.add("cam", T0 - timedelta(seconds=index), ["person"])
    assert len(log) == 3
    log.add("cam", T0, [])  # nothing seen is not logged
    assert len(log) == 3
    with pytest.raises(ValueError, match="timezone-aware"):
        log.add("cam", datetime(2025, 1, 1), ["person"])
    with pytest.raises(ValueError, match="positive"):
        CrossCameraLog(timedelta(0))


def test_out_of_order_stragglers_are_pruned() -> None:
    clock = FakeClock(T0)
    log = CrossCameraLog(timedelta(seconds=60), clock=clock)
    log.add("a", T0, ["person"])
    log.add("b", T0 - timedelta(seconds=50), ["car"])  # older than the head
    clock.now = T0 + timedelta(seconds=30)
    assert {e.camera_id for e in log.recent()} == {"a"}
