"""The household's alert rules on their own: escalation, quiet hours, minimum levels, the
household's own people, and the threat they make."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import pytest

from custom_components.home_security_ai.alerts.alerting import (
    AlertSettings,
    ArmedMode,
    HoldBackReason,
    HouseholdMember,
    PeopleSeen,
    QuietHours,
    assess,
    raise_level,
    settings_from_options,
)
from custom_components.home_security_ai.vocabulary import is_threat

# 2026-01-02 is a Friday.
FRIDAY = datetime(2026, 1, 2)
WEEKNIGHTS = QuietHours(days=frozenset(range(5)), start=time(22), end=time(6))


def _at(day_offset: int, hour: int, minute: int = 0) -> datetime:
    return FRIDAY.replace(day=FRIDAY.day + day_offset, hour=hour, minute=minute)


@pytest.mark.parametrize(
    ("when", "quiet"),
    [
        (_at(0, 21, 59), False),  # Friday, before the window
        (_at(0, 22, 0), True),  # Friday, at its start
        (_at(0, 23, 59), True),
        (_at(1, 0, 0), True),  # Saturday morning: Friday's window, past midnight
        (_at(1, 5, 59), True),
        (_at(1, 6, 0), False),  # the end is not part of the window
        (_at(1, 22, 0), False),  # Saturday evening: no window starts on Saturday
        (_at(2, 3, 0), False),  # Sunday morning: Saturday started none
        (_at(2, 22, 30), False),  # Sunday evening: not a listed day
        (_at(3, 3, 0), False),  # Monday morning: the window would have started on Sunday
        (_at(3, 22, 0), True),  # Monday evening
        (_at(4, 3, 0), True),  # Tuesday morning, from Monday
    ],
)
def test_a_window_across_midnight_belongs_to_the_day_it_started(
    when: datetime, quiet: bool
) -> None:
    assert WEEKNIGHTS.covers(when) is quiet


FRIDAY_NOON = _at(0, 12)


def test_a_window_within_a_day_and_a_whole_day() -> None:
    lunch = QuietHours(days=frozenset({4}), start=time(12), end=time(13, 30))
    assert lunch.covers(_at(0, 12, 0))
    assert lunch.covers(_at(0, 13, 29))
    assert not lunch.covers(_at(0, 13, 30))
    assert not lunch.covers(_at(1, 12, 30))  # Saturday
    # Equal start and end: a whole day from that time, into the next morning.
    sunday = QuietHours(days=frozenset({6}), start=time(8), end=time(8))
    assert not sunday.covers(_at(2, 7, 59))
    assert sunday.covers(_at(2, 8, 0))
    assert sunday.covers(_at(2, 23, 0))
    assert sunday.covers(_at(3, 7, 59))  # Monday before eight
    assert not sunday.covers(_at(3, 8, 0))
    # Sunday to Monday wraps the week: a Sunday window covers Monday morning.
    sunday_night = QuietHours(days=frozenset({6}), start=time(23), end=time(1))
    assert sunday_night.covers(_at(3, 0, 30))


def _assess(
    level: str,
    *,
    mode: ArmedMode = ArmedMode.HOME,
    nobody_home: bool = False,
    when: datetime = FRIDAY_NOON,
    incident_alert: bool = True,
    settings: AlertSettings | None = None,
    failsafe: bool = False,
) -> dict[str, object]:
    return assess(
        raw_level=level,
        camera_id="porch",
        when=when,
        incident_alert=incident_alert,
        mode=mode,
        nobody_home=nobody_home,
        settings=settings or AlertSettings(),
        failsafe=failsafe,
    ).as_data()


def test_raise_level() -> None:
    assert [raise_level(level) for level in ("low", "medium", "high", "critical")] == [
        "medium",
        "high",
        "critical",
        "critical",
    ]


def test_at_home_nothing_changes() -> None:
    assert _assess("medium") == {
        "risk_level": "medium",
        "raw_risk_level": "medium",
        "armed_mode": "home",
        "escalated": False,
        "escalation_reason": None,
        "alert": True,
        "alert_reason": None,
        "updates_page": False,
    }


def test_away_or_nobody_home_escalates_one_step() -> None:
    away = _assess("medium", mode=ArmedMode.AWAY)
    assert (away["risk_level"], away["raw_risk_level"]) == ("high", "medium")
    assert (away["escalated"], away["escalation_reason"]) == (True, "armed_away")
    empty = _assess("high", nobody_home=True)
    assert (empty["risk_level"], empty["escalation_reason"]) == ("critical", "nobody_home")
    night = _assess("high", mode=ArmedMode.NIGHT, nobody_home=True)
    assert night["escalation_reason"] == "nobody_home"
    # Critical cannot go higher: not escalated.
    top = _assess("critical", mode=ArmedMode.AWAY)
    assert (top["risk_level"], top["escalated"], top["escalation_reason"]) == (
        "critical",
        False,
        None,
    )
    # Turned off in the options.
    off = _assess("medium", mode=ArmedMode.AWAY, settings=AlertSettings(escalate=False))
    assert (off["risk_level"], off["escalated"]) == ("medium", False)


def test_disarmed_records_without_escalating_or_alerting() -> None:
    disarmed = _assess("high", mode=ArmedMode.DISARMED, nobody_home=True)
    assert disarmed["risk_level"] == "high"
    assert disarmed["escalated"] is False
    assert disarmed["armed_mode"] == "disarmed"
    assert (disarmed["alert"], disarmed["alert_reason"]) == (False, "disarmed")
    critical = _assess("critical", mode=ArmedMode.DISARMED)
    assert (critical["alert"], critical["alert_reason"]) == (True, None)


def test_quiet_hours_hold_back_all_but_critical() -> None:
    settings = AlertSettings(quiet_hours=(WEEKNIGHTS,))
    night = _assess("high", when=_at(1, 3), settings=settings)
    assert (night["alert"], night["alert_reason"]) == (False, "quiet_hours")
    assert _assess("high", when=_at(1, 7), settings=settings)["alert"] is True
    assert _assess("critical", when=_at(1, 3), settings=settings)["alert"] is True
    # Escalated to critical (nobody home): it gets through as well.
    escalated = _assess("high", when=_at(1, 3), nobody_home=True, settings=settings)
    assert (escalated["risk_level"], escalated["alert"]) == ("critical", True)


def test_minimum_level_per_camera() -> None:
    settings = AlertSettings(min_levels={"porch": "high", "garden": "critical"})
    low = _assess("medium", settings=settings)
    assert (low["alert"], low["alert_reason"]) == (False, "below_minimum_level")
    assert _assess("high", settings=settings)["alert"] is True
    # The level after escalation counts.
    assert _assess("medium", mode=ArmedMode.AWAY, settings=settings)["alert"] is True


def test_the_failsafe_comes_before_the_camera_minimum() -> None:
    """A confident person at night that no model weighed pages even on a camera whose minimum
    is critical (the seed's detector-only rule); disarmed and the incident still decide."""
    settings = AlertSettings(min_levels={"porch": "critical"})
    held = _assess("high", settings=settings)
    assert (held["alert"], held["alert_reason"]) == (False, "below_minimum_level")
    assert _assess("high", settings=settings, failsafe=True)["alert"] is True
    disarmed = _assess("high", mode=ArmedMode.DISARMED, settings=settings, failsafe=True)
    assert disarmed["alert_reason"] == "disarmed"
    update = _assess("high", incident_alert=False, settings=settings, failsafe=True)
    assert update["alert_reason"] == "incident"


def test_the_incident_decides_first() -> None:
    """An update of an incident that already alerted stays quiet, critical or not."""
    update = _assess("critical", incident_alert=False)
    assert (update["alert"], update["alert_reason"]) == (False, "incident")


def test_settings_from_options() -> None:
    assert settings_from_options({}) == AlertSettings()
    settings = settings_from_options(
        {
            "escalate": False,
            "quiet_days": ["fri", "sat"],
            "quiet_start": "22:00:00",
            "quiet_end": "06:30:00",
            "min_alert_levels": {"porch": "high"},
            "min_alert_scores": {"garden": 50},
            "quiet_windows": [
                {"days": ["sun"], "start": "13:00:00", "end": "15:00:00"},
                {"days": [], "start": "01:00:00", "end": "02:00:00"},
            ],
        }
    )
    assert settings.escalate is False
    assert settings.quiet_hours == (
        QuietHours(days=frozenset({4, 5}), start=time(22), end=time(6, 30)),
        QuietHours(days=frozenset({6}), start=time(13), end=time(15)),
    )
    assert settings.min_levels == {"porch": "high"}
    assert settings.min_scores == {"garden": 50}
    # Days without times (or times without days) make no window.
    assert settings_from_options({"quiet_days": ["mon"], "quiet_start": None}).quiet_hours == ()


def test_several_quiet_hours_windows() -> None:
    """Weeknights and Sunday's nap: either holds an event back."""
    nap = QuietHours(days=frozenset({6}), start=time(13), end=time(15))
    settings = AlertSettings(quiet_hours=(WEEKNIGHTS, nap))
    assert _assess("high", when=_at(0, 23), settings=settings)["alert_reason"] == "quiet_hours"
    assert _assess("high", when=_at(2, 14), settings=settings)["alert_reason"] == "quiet_hours"
    assert _assess("high", when=_at(2, 16), settings=settings)["alert"] is True


def test_a_minimum_score_per_camera() -> None:
    """The seed's per-camera threshold by score: a medium 35 is held back below 50, a 55 not."""
    settings = AlertSettings(min_scores={"porch": 50})
    low = assess(
        raw_level="medium", camera_id="porch", when=FRIDAY_NOON, incident_alert=True,
        mode=ArmedMode.HOME, nobody_home=False, settings=settings, score=35,
    ).as_data()
    assert (low["alert"], low["alert_reason"]) == (False, "below_minimum_level")
    high_enough = assess(
        raw_level="medium", camera_id="porch", when=FRIDAY_NOON, incident_alert=True,
        mode=ArmedMode.HOME, nobody_home=False, settings=settings, score=55,
    ).as_data()
    assert high_enough["alert"] is True


QUIET = AlertSettings(quiet_hours=(WEEKNIGHTS,))


@pytest.mark.parametrize(
    ("level", "options", "active", "threat"),
    [
        ("high", {}, False, True),  # alerts: turns the threat on
        ("critical", {"mode": ArmedMode.DISARMED}, False, True),  # critical always alerts
        ("medium", {"mode": ArmedMode.AWAY}, False, True),  # raised to high, alerts
        ("medium", {}, False, False),  # alerts, but below high
        ("high", {"mode": ArmedMode.DISARMED}, True, False),
        ("high", {"when": _at(1, 3), "settings": QUIET}, True, False),
        ("high", {"settings": AlertSettings(min_levels={"porch": "critical"})}, True, False),
        # Held back by its incident (an update, a cooldown): keeps an active threat on only.
        ("high", {"incident_alert": False}, True, True),
        ("high", {"incident_alert": False}, False, False),
        ("medium", {"incident_alert": False}, True, False),
    ],
)
def test_the_threat_follows_the_decision(
    level: str, options: dict[str, Any], active: bool, threat: bool
) -> None:
    """Threat active turns on for an alert from high up; held back, it does not."""
    decided = _assess(level, **options)
    made = is_threat(
        str(decided["risk_level"]),
        alert=bool(decided["alert"]),
        held_by_incident=decided["alert_reason"] == HoldBackReason.INCIDENT,
        active=active,
    )
    assert made is threat


ANNA_AND_BOB = {"Anna": HouseholdMember(), "Bob": HouseholdMember(cameras=frozenset({"porch"}))}


@pytest.mark.parametrize(
    ("people", "household_only"),
    [
        (PeopleSeen(names=frozenset({"Anna"}), most_people=1), True),
        (PeopleSeen(names=frozenset({"Anna", "Bob"}), most_people=2), True),
        # An unknown face beside Anna, or a second person whose face was not seen: alert.
        (PeopleSeen(names=frozenset({"Anna"}), unknown_faces=1, most_people=2), False),
        (PeopleSeen(names=frozenset({"Anna"}), most_people=2), False),
        # A friend who is enrolled but does not live here, or anything else in view: alert.
        (PeopleSeen(names=frozenset({"Anna", "Carol"}), most_people=2), False),
        (PeopleSeen(names=frozenset({"Anna"}), most_people=1, other_findings=True), False),
        (PeopleSeen(), False),
    ],
)
def test_household_members_never_page_on_their_own(
    people: PeopleSeen, household_only: bool
) -> None:
    settings = AlertSettings(household=ANNA_AND_BOB)
    # Night, nobody else home: the level is high or critical, and still no page for Anna.
    decision = assess(
        raw_level="high", camera_id="porch", when=_at(1, 23), incident_alert=True,
        mode=ArmedMode.NIGHT, nobody_home=True, settings=settings, people=people,
    ).as_data()
    if household_only:
        assert (decision["alert"], decision["alert_reason"]) == (False, "household")
    else:
        assert decision["alert"] is True


def test_a_household_member_is_expected_on_their_cameras_in_their_hours() -> None:
    evenings = HouseholdMember(cameras=frozenset({"porch"}), start=time(17), end=time(1))
    assert evenings.expected("porch", _at(0, 18))
    assert evenings.expected("porch", _at(1, 0, 30))  # past midnight
    assert not evenings.expected("porch", _at(1, 3))
    assert not evenings.expected("garden", _at(0, 18))
    assert HouseholdMember().expected("garden", _at(1, 3))
    settings = settings_from_options(
        {"household": {"Anna": {"cameras": ["porch"], "start": "17:00", "end": "01:00"}}}
    )
    assert settings.household["Anna"] == evenings
