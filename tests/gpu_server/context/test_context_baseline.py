"""Activity baseline: warm-up, scoring, local hours and persistence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gpu_server.context import ActivityBaseline, group_counts, hour_of_week
from gpu_server.vocabulary import LabelGroup, label_group

BERLIN = ZoneInfo("Europe/Berlin")
# A Monday at local midnight.
MONDAY = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _busy_hour_counts(how: int) -> dict[str, int]:
    # A front door: people in the evening (17:00-19:59), nobody at night.
    hour = how % 24
    return {"person": 2 + how % 2 if 17 <= hour < 20 else 0, "car": 1}


def _train(baseline: ActivityBaseline, weeks: int, camera: str = "front") -> None:
    for step in range(weeks * 168):
        start = MONDAY + timedelta(hours=step)
        counts = _busy_hour_counts(step % 168)
        # Several windows per hour; the hour's sample is their peak.
        for minute in (5, 25, 45):
            baseline.record(camera, start + timedelta(minutes=minute), counts)
    # A window in a later hour commits the last trained one.
    baseline.record(camera, MONDAY + timedelta(weeks=weeks, hours=1), {})


def _at(day: int, hour: int, minute: int = 30) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def test_label_groups() -> None:
    assert label_group("person") is LabelGroup.PERSON
    assert label_group("Truck") is LabelGroup.VEHICLE
    assert label_group("dog") is LabelGroup.ANIMAL
    assert label_group("backpack") is LabelGroup.OTHER
    assert group_counts(["person", "person", "car", "cat", "chair"]) == {
        LabelGroup.PERSON: 2,
        LabelGroup.VEHICLE: 1,
        LabelGroup.ANIMAL: 1,
        LabelGroup.OTHER: 1,
    }


def test_hour_of_week_uses_local_time() -> None:
    assert hour_of_week(datetime(2025, 3, 3, 0, 30, tzinfo=BERLIN), BERLIN) == 0
    assert hour_of_week(datetime(2025, 3, 9, 23, 59, tzinfo=BERLIN), BERLIN) == 167
    # 23:30 UTC on a Sunday is already Monday 00:30 in Berlin (winter, UTC+1).
    assert hour_of_week(datetime(2025, 3, 2, 23, 30, tzinfo=UTC), BERLIN) == 0
    # Summer time: UTC+2.
    assert hour_of_week(datetime(2025, 7, 7, 6, 0, tzinfo=UTC), BERLIN) == 8
    with pytest.raises(ValueError, match="timezone-aware"):
        hour_of_week(datetime(2025, 3, 3, 0, 30), BERLIN)


def test_new_camera_is_warming_up_not_anomalous() -> None:
    baseline = ActivityBaseline(default_tz=UTC)
    result = baseline.anomaly_score("new", _at(1, 3), {"person": 10})
    assert result.warming_up
    assert result.score == 0.0
    baseline.record("new", _at(1, 3), {"person": 10})
    baseline.record("new", _at(1, 4), {"person": 0})
    assert baseline.anomaly_score("new", _at(1, 3), {"person": 10}).warming_up


def test_unusual_counts_at_a_quiet_hour_score_high() -> None:
    baseline = ActivityBaseline(default_tz=UTC)
    _train(baseline, weeks=4)
    night = baseline.anomaly_score("front", _at(1, 3), {"person": 3})
    assert not night.warming_up
    assert not night.pooled
    assert night.samples == 4
    assert night.expected[LabelGroup.PERSON] == pytest.approx(0.0)
    assert night.expected[LabelGroup.VEHICLE] == pytest.approx(1.0)
    assert night.score > 0.9
    assert max(night.groups, key=lambda g: g.z).group is LabelGroup.PERSON

    evening = baseline.anomaly_score("front", _at(1, 18), {"person": 3, "car": 1})
    assert evening.expected[LabelGroup.PERSON] == pytest.approx(2.0)
    assert evening.score < 0.5
    usual = baseline.anomaly_score("front", _at(1, 3), {"car": 1})
    assert usual.score < 0.05
    # Less than usual is not a threat.
    empty = baseline.anomaly_score("front", _at(1, 18), {})
    assert empty.score == 0.0


def test_young_bucket_falls_back_to_same_hour_of_day() -> None:
    baseline = ActivityBaseline(default_tz=UTC, min_samples=3)
    for day in range(4):  # Monday..Thursday only
        for hour in range(24):
            baseline.record("front", _at(day, hour, 10), _busy_hour_counts(hour))
    baseline.record("front", _at(4, 1), {})  # commits Thursday's last hour
    friday = baseline.anomaly_score("front", _at(4, 3), {"person": 3})
    assert friday.pooled
    assert not friday.warming_up
    assert friday.samples == 4
    assert friday.score > 0.9


def test_hour_sample_is_the_peak_not_the_sum() -> None:
    baseline = ActivityBaseline(default_tz=UTC, min_samples=1)
    for minute in range(0, 60, 5):
        baseline.record("front", _at(0, 10, minute), {"person": 1})
    baseline.record("front", _at(0, 11), {})
    result = baseline.anomaly_score("front", _at(7, 10), {"person": 1})
    assert result.expected[LabelGroup.PERSON] == pytest.approx(1.0)


def test_per_camera_timezone_moves_the_bucket() -> None:
    baseline = ActivityBaseline(default_tz=UTC, min_samples=1)
    baseline.set_timezone("ny", "America/New_York")
    # 03:30 UTC on a Tuesday is 22:30 Monday in New York.
    baseline.record("ny", _at(1, 3), {"person": 4})
    baseline.record("ny", _at(1, 5), {})
    result = baseline.anomaly_score("ny", _at(1, 3, 59), {"person": 4})
    assert result.hour_of_week == 22
    assert result.expected[LabelGroup.PERSON] == pytest.approx(4.0)
    with pytest.raises(KeyError):
        baseline.set_timezone("ny", "Mars/Olympus_Mons")


def test_late_records_do_not_reopen_closed_hours() -> None:
    baseline = ActivityBaseline(default_tz=UTC, min_samples=1)
    baseline.record("front", _at(0, 10), {"person": 1})
    baseline.record("front", _at(0, 11), {"person": 0})
    baseline.record("front", _at(0, 10, 50), {"person": 9})  # late: ignored
    baseline.record("front", _at(0, 12), {})
    assert baseline.anomaly_score("front", _at(7, 10), {}).expected[LabelGroup.PERSON] == 1.0


def test_survives_a_restart(tmp_path: Path) -> None:
    first = ActivityBaseline(tmp_path, default_tz=UTC)
    first.set_timezone("front", "Europe/Berlin")
    _train(first, weeks=3)
    first.record("front", _at(1, 3), {"person": 1})  # an hour still open at shutdown
    assert first.flush()
    assert not first.flush()  # nothing new to write
    before = first.anomaly_score("front", _at(1, 2), {"person": 3})

    second = ActivityBaseline(tmp_path, default_tz=UTC)
    assert second.timezone("front") == BERLIN
    after = second.anomaly_score("front", _at(1, 2), {"person": 3})
    assert after == before
    assert not after.warming_up
    # The open hour came back too and is committed once the next hour is recorded.
    second.record("front", _at(1, 4), {})
    second.flush()
    raw = json.loads((tmp_path / "baseline.json").read_text(encoding="utf-8"))
    assert "open_hour" in raw["cameras"]["front"]


def test_periodic_flush_uses_the_injected_clock(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    baseline = ActivityBaseline(tmp_path, default_tz=UTC, flush_interval_s=60, monotonic=clock)
    baseline.record("front", _at(0, 1), {"person": 1})
    assert not (tmp_path / "baseline.json").exists()
    clock.now = 61.0
    baseline.record("front", _at(0, 1, 40), {"person": 1})
    assert (tmp_path / "baseline.json").exists()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        json.dumps({"version": 1, "cameras": {"front": {"buckets": {"999": {}}}}}),
        json.dumps({"version": 1, "cameras": {"front": {"buckets": {"1": {"alien": [1, 0, 0]}}}}}),
        json.dumps({"version": 1, "timezones": {"front": "No/Such_Zone"}, "cameras": {}}),
        json.dumps([1, 2, 3]),
    ],
)
def test_corrupt_file_starts_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    (tmp_path / "baseline.json").write_text(content, encoding="utf-8")
    baseline = ActivityBaseline(tmp_path, default_tz=UTC)
    assert "starting fresh" in caplog.text
    assert (tmp_path / "baseline.json.corrupt").exists()
    assert baseline.anomaly_score("front", _at(0, 1), {"person": 5}).warming_up
    baseline.record("front", _at(0, 1), {"person": 1})
    assert baseline.flush()
    assert json.loads((tmp_path / "baseline.json").read_text(encoding="utf-8"))["version"] == 1


def test_rejects_naive_times_and_negative_counts() -> None:
    baseline = ActivityBaseline(default_tz=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        baseline.record("front", datetime(2025, 3, 3, 1), {"person": 1})
    with pytest.raises(ValueError, match="negative"):
        baseline.record("front", _at(0, 1), {"person": -1})
