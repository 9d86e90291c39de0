"""Alert rules in Home Assistant: the options flow, presence, arming, quiet hours, and the
per-camera analysis switch, through real events of the event stream."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any
from unittest.mock import patch

import pytest
import voluptuous as vol
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache,
)

from custom_components.home_security_ai.alerts.alerting import ArmedMode
from custom_components.home_security_ai.client import EventKind, RiskLevel, SecurityEvent
from custom_components.home_security_ai.const import (
    CONF_CAMERAS,
    CONF_ESCALATE,
    CONF_MIN_LEVELS,
    CONF_MIN_SCORES,
    CONF_PRESENCE_PERSONS,
    CONF_QUIET_DAYS,
    CONF_QUIET_END,
    CONF_QUIET_START,
    CONF_QUIET_WINDOWS,
    CONF_SNAPSHOT_INTERVAL,
    DOMAIN,
    EVENT_SECURITY,
)

from .conftest import TEST_CAMERA, PorchCamera, make_entry, wait_for
from .sidecar_process import Sidecar

_ids = count(1)


async def _ack_suppressed(*_args: Any) -> int:
    return 0


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if entry.entry_id not in {e.entry_id for e in hass.config_entries.async_entries(DOMAIN)}:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")


def _local_ms(year: int, month: int, day: int, hour: int) -> int:
    local = datetime(year, month, day, hour, tzinfo=dt_util.get_default_time_zone())
    return int(local.timestamp() * 1000)


# 2026-01-02 is a Friday.
FRIDAY_NOON = _local_ms(2026, 1, 2, 12)


class _Events:
    """Hands events to the entry's event stream, as the sidecar would; records the bus."""

    def __init__(self, hass: HomeAssistant, entry: MockConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self.fired: list[dict[str, Any]] = []
        self._sequence = count(entry.runtime_data.events.last_sequence + 1)
        hass.bus.async_listen(EVENT_SECURITY, self._record)

    def _record(self, event: Event) -> None:
        self.fired.append(dict(event.data))

    async def send(
        self, camera_id: str, level: RiskLevel, created_at_ms: int = FRIDAY_NOON
    ) -> dict[str, Any]:
        event = SecurityEvent(
            sequence=next(self._sequence),
            event_id=f"event-{next(_ids)}",
            camera_id=camera_id,
            kind=EventKind.SECURITY,
            risk_level=level,
            created_at_ms=created_at_ms,
        )
        with patch.object(self.entry.runtime_data.client, "ack_events", _ack_suppressed):
            await self.entry.runtime_data.events.async_handle(event)
        await self.hass.async_block_till_done()
        payload = self.fired[-1]
        assert payload["event_id"] == event.event_id
        return payload


def _threat(hass: HomeAssistant, camera_id: str) -> str:
    """Return the state of the camera's *Threat active* sensor."""
    state = hass.states.get(f"binary_sensor.{camera_id}_threat_active")
    assert state is not None, camera_id
    return state.state


def _entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, unique_id
    return entity_id


async def test_alert_options_apply_to_the_next_event(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Chosen in the options flow, without a reload: nobody home escalates, a camera's minimum
    level and quiet hours hold events back, critical always alerts."""
    hass.states.async_set("person.ann", "home")
    entry = mock_config_entry
    await _setup(hass, entry)
    data = entry.runtime_data
    for camera_id in ("porch", "garden"):
        data.cameras.async_register(camera_id, camera_id.title())
    await hass.async_block_till_done()

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "alerts"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "alerts"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_QUIET_DAYS: ["fri"], CONF_ESCALATE: True}
    )
    assert result["errors"] == {"base": "quiet_hours_incomplete"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_PRESENCE_PERSONS: ["person.ann"],
            CONF_ESCALATE: True,
            CONF_QUIET_DAYS: ["fri"],
            CONF_QUIET_START: "22:00:00",
            CONF_QUIET_END: "06:00:00",
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "alert_levels"
    assert result["description_placeholders"] == {"cameras": "Garden: garden; Porch: porch"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"porch": "high", "garden": "low"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {
        CONF_PRESENCE_PERSONS: ["person.ann"],
        CONF_ESCALATE: True,
        CONF_QUIET_DAYS: ["fri"],
        CONF_QUIET_START: "22:00:00",
        CONF_QUIET_END: "06:00:00",
        CONF_QUIET_WINDOWS: [],
        CONF_MIN_LEVELS: {"porch": "high"},
        CONF_MIN_SCORES: {},
    }
    assert entry.runtime_data is data, "applied without a reload"

    events = _Events(hass, entry)
    # Ann is home: a medium event on the porch is below its minimum level.
    held = await events.send("porch", RiskLevel.MEDIUM)
    assert (held["risk_level"], held["escalated"]) == ("medium", False)
    assert (held["alert"], held["alert_reason"]) == (False, "below_minimum_level")

    # Nobody home: the same event is raised to high, and alerts.
    hass.states.async_set("person.ann", "not_home")
    raised = await events.send("porch", RiskLevel.MEDIUM)
    assert raised["risk_level"] == "high"
    assert raised["raw_risk_level"] == "medium"
    assert (raised["escalated"], raised["escalation_reason"]) == (True, "nobody_home")
    assert (raised["alert"], raised["alert_reason"]) == (True, None)
    state = hass.states.get("event.porch_security_event")
    assert state is not None
    assert state.attributes["event_type"] == "high"
    assert state.attributes["raw_risk_level"] == "medium"
    assert state.attributes["escalation_reason"] == "nobody_home"
    assert state.attributes["alert"] is True

    # Saturday 03:00 belongs to Friday's quiet hours: held back, unless critical.
    hass.states.async_set("person.ann", "home")
    night = _local_ms(2026, 1, 3, 3)
    quiet = await events.send("garden", RiskLevel.HIGH, night)
    assert (quiet["alert"], quiet["alert_reason"]) == (False, "quiet_hours")
    # Held back, so no threat; the porch's escalated alert at high is one.
    assert _threat(hass, "garden") == "off"
    assert _threat(hass, "porch") == "on"
    state = hass.states.get("event.garden_security_event")
    assert state is not None
    assert state.attributes["alert"] is False
    assert state.attributes["alert_reason"] == "quiet_hours"
    critical = await events.send("garden", RiskLevel.CRITICAL, night)
    assert (critical["alert"], critical["alert_reason"]) == (True, None)
    assert _threat(hass, "garden") == "on"
    # Saturday night is not quiet: no window starts on Saturday.
    saturday_night = await events.send("garden", RiskLevel.HIGH, _local_ms(2026, 1, 3, 23))
    assert saturday_night["alert"] is True

    # The minimum levels step shows the saved levels.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "alerts"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_ESCALATE: False}
    )
    defaults = {
        str(key): key.default() for key in result["data_schema"].schema if "score" not in str(key)
    }
    assert defaults == {"garden": "low", "porch": "high"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_more_quiet_windows_and_a_minimum_score_in_the_options(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Weeknights plus a Sunday nap, and the garden's minimum score; the windows kept are
    offered again one by one, and a window left empty is dropped."""
    entry = mock_config_entry
    await _setup(hass, entry)
    for camera_id in ("porch", "garden"):
        entry.runtime_data.cameras.async_register(camera_id, camera_id.title())
    await hass.async_block_till_done()

    async def alerts_form() -> dict[str, Any]:
        result = await hass.config_entries.options.async_init(entry.entry_id)
        return dict(
            await hass.config_entries.options.async_configure(
                result["flow_id"], {"next_step_id": "alerts"}
            )
        )

    result = await alerts_form()
    result = dict(await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_ESCALATE: False, CONF_QUIET_DAYS: ["mon", "tue"], CONF_QUIET_START: "22:00:00",
            CONF_QUIET_END: "06:00:00", "more_quiet_windows": True,
        },
    ))
    assert result["step_id"] == "quiet_window"
    assert result["description_placeholders"] == {"number": "2"}
    result = dict(await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_QUIET_DAYS: ["sun"], CONF_QUIET_START: "13:00:00"}
    ))
    assert result["errors"] == {"base": "quiet_hours_incomplete"}
    result = dict(await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_QUIET_DAYS: ["sun"], CONF_QUIET_START: "13:00:00", CONF_QUIET_END: "15:00:00"},
    ))
    assert result["step_id"] == "alert_levels"
    result = dict(await hass.config_entries.options.async_configure(
        result["flow_id"], {"porch": "low", "garden": "low", "garden (score)": 50}
    ))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_QUIET_WINDOWS] == [
        {"days": ["sun"], "start": "13:00:00", "end": "15:00:00"}
    ]
    assert entry.options[CONF_MIN_SCORES] == {"garden": 50}

    events = _Events(hass, entry)
    sunday_nap = await events.send("porch", RiskLevel.HIGH, _local_ms(2026, 1, 4, 14))
    assert sunday_nap["alert_reason"] == "quiet_hours"
    medium = await events.send("garden", RiskLevel.MEDIUM)  # no score: 0, below 50
    assert medium["alert_reason"] == "below_minimum_level"

    # Offered again, prefilled; emptied, the Sunday window is dropped.
    result = await alerts_form()
    result = dict(await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_ESCALATE: False, "more_quiet_windows": True}
    ))
    assert result["step_id"] == "quiet_window"
    result = dict(await hass.config_entries.options.async_configure(result["flow_id"], {}))
    result = dict(await hass.config_entries.options.async_configure(
        result["flow_id"], {"porch": "low", "garden": "low"}
    ))
    assert entry.options[CONF_QUIET_WINDOWS] == []
    assert entry.options[CONF_MIN_SCORES] == {}


async def test_armed_mode(hass: HomeAssistant, mock_config_entry: MockConfigEntry) -> None:
    """Away escalates; disarmed records events without escalating, without alerting and
    without a threat."""
    entry = mock_config_entry
    await _setup(hass, entry)
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    armed = _entity_id(hass, "select", f"{entry.unique_id}_server_armed")
    state = hass.states.get(armed)
    assert state is not None
    assert state.state == "home"
    assert state.attributes["options"] == ["home", "away", "night", "disarmed"]
    events = _Events(hass, entry)

    await hass.services.async_call(
        "select", "select_option", {"entity_id": armed, "option": "away"}, blocking=True
    )
    assert hass.states.get(armed).state == "away"  # type: ignore[union-attr]
    away = await events.send("porch", RiskLevel.LOW)
    assert (away["risk_level"], away["escalation_reason"]) == ("medium", "armed_away")
    assert away["armed_mode"] == "away"

    await hass.services.async_call(
        "select", "select_option", {"entity_id": armed, "option": "disarmed"}, blocking=True
    )
    disarmed = await events.send("porch", RiskLevel.HIGH)
    assert (disarmed["risk_level"], disarmed["escalated"]) == ("high", False)
    assert disarmed["armed_mode"] == "disarmed"
    assert (disarmed["alert"], disarmed["alert_reason"]) == (False, "disarmed")
    assert _threat(hass, "porch") == "off"
    state = hass.states.get("event.porch_security_event")
    assert state is not None
    assert state.attributes["armed_mode"] == "disarmed"
    assert state.attributes["alert"] is False
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_analysis_switch_pauses_a_camera(
    hass: HomeAssistant, shared_sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """Off: the camera is not even asked for a snapshot, and nothing is spooled or sent; on
    again: it is. No reload."""
    entry = make_entry(shared_sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    await _setup(hass, entry)
    data = entry.runtime_data
    switch = _entity_id(hass, "switch", f"{entry.unique_id}_porch_analysis_enabled")
    assert hass.states.get(switch).state == "on"  # type: ignore[union-attr]

    await hass.services.async_call("switch", "turn_off", {"entity_id": switch}, blocking=True)
    assert hass.states.get(switch).state == "off"  # type: ignore[union-attr]
    requests = porch_camera.requests
    await data.camera_source.async_snapshot(TEST_CAMERA)
    assert porch_camera.requests == requests
    assert data.spool.frame_count == 0
    assert data.frames.counters.submitted == 0

    await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
    await data.camera_source.async_snapshot(TEST_CAMERA)
    assert data.frames.counters.submitted == 1
    assert entry.runtime_data is data, "no reload"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_switch_and_armed_mode_are_restored(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """After a restart the switch and the select take up their last states."""
    entry = mock_config_entry
    entry.add_to_hass(hass)
    registry = er.async_get(hass)
    registry.async_get_or_create(
        "select",
        DOMAIN,
        f"{entry.unique_id}_server_armed",
        suggested_object_id="armed",
        config_entry=entry,
    )
    registry.async_get_or_create(
        "switch",
        DOMAIN,
        f"{entry.unique_id}_porch_analysis_enabled",
        suggested_object_id="porch_analysis",
        config_entry=entry,
    )
    mock_restore_cache(
        hass, [State("select.armed", "night"), State("switch.porch_analysis", "off")]
    )
    await _setup(hass, entry)
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    arming = entry.runtime_data.arming
    assert arming.mode is ArmedMode.NIGHT
    assert hass.states.get("select.armed").state == "night"  # type: ignore[union-attr]
    assert arming.analysis_enabled("porch") is False
    assert hass.states.get("switch.porch_analysis").state == "off"  # type: ignore[union-attr]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_pausing_a_camera_for_a_while(
    hass: HomeAssistant, shared_sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """`pause_analysis` turns the camera's switch off until a time it shows, then on again by
    itself; turning the switch on before that ends the pause at once. A switch of something
    else is refused."""
    entry = make_entry(shared_sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    await _setup(hass, entry)
    arming = entry.runtime_data.arming
    switch = _entity_id(hass, "switch", f"{entry.unique_id}_porch_analysis_enabled")
    assert hass.states.get(switch).attributes["resume_at"] is None  # type: ignore[union-attr]

    await hass.services.async_call(
        DOMAIN,
        "pause_analysis",
        {"camera_id": "porch", "duration": {"minutes": 30}},
        blocking=True,
    )
    state = hass.states.get(switch)
    assert state is not None
    assert state.state == "off"
    resume_at = dt_util.parse_datetime(state.attributes["resume_at"])
    assert resume_at is not None
    assert timedelta(minutes=29) < resume_at - dt_util.utcnow() <= timedelta(minutes=30)
    assert not arming.analysis_enabled("porch")

    async_fire_time_changed(hass, resume_at + timedelta(seconds=1))
    await hass.async_block_till_done()
    assert hass.states.get(switch).state == "on"  # type: ignore[union-attr]
    assert hass.states.get(switch).attributes["resume_at"] is None  # type: ignore[union-attr]
    assert arming.analysis_enabled("porch")

    # By the switch, as a notification's snooze button names it; then on again by hand.
    await hass.services.async_call(
        DOMAIN, "pause_analysis", {"entity_id": switch, "duration": {"hours": 1}}, blocking=True
    )
    assert hass.states.get(switch).state == "off"  # type: ignore[union-attr]
    await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=2))
    await hass.async_block_till_done()
    assert hass.states.get(switch).state == "on"  # type: ignore[union-attr]
    assert hass.states.get(switch).attributes["resume_at"] is None  # type: ignore[union-attr]

    hass.states.async_set("switch.boiler", "on")
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN,
            "pause_analysis",
            {"entity_id": "switch.boiler", "duration": {"hours": 1}},
            blocking=True,
        )
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(
            DOMAIN,
            "pause_analysis",
            {"camera_id": "porch", "duration": {"days": 30}},
            blocking=True,
        )
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(("minutes_left", "paused"), [(20, True), (-5, False)])
async def test_a_pause_for_a_while_survives_a_restart(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, minutes_left: int, paused: bool
) -> None:
    """A pause whose time has not come goes on after a restart and ends at its time; one
    whose time passed while Home Assistant was down is over."""
    entry = mock_config_entry
    entry.add_to_hass(hass)
    er.async_get(hass).async_get_or_create(
        "switch",
        DOMAIN,
        f"{entry.unique_id}_porch_analysis_enabled",
        suggested_object_id="porch_analysis",
        config_entry=entry,
    )
    resume_at = dt_util.utcnow() + timedelta(minutes=minutes_left)
    mock_restore_cache(
        hass, [State("switch.porch_analysis", "off", {"resume_at": resume_at.isoformat()})]
    )
    await _setup(hass, entry)
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    arming = entry.runtime_data.arming
    assert arming.analysis_enabled("porch") is not paused
    state = hass.states.get("switch.porch_analysis")
    assert state is not None
    assert state.state == ("off" if paused else "on")
    if paused:
        assert dt_util.parse_datetime(state.attributes["resume_at"]) == resume_at
        async_fire_time_changed(hass, resume_at + timedelta(seconds=1))
        await hass.async_block_till_done()
        assert arming.analysis_enabled("porch")
        assert hass.states.get("switch.porch_analysis").state == "on"  # type: ignore[union-attr]
    assert await hass.config_entries.async_unload(entry.entry_id)
