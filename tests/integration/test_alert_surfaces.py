"""One alert decision, every surface: a scripted stream of events goes through the event stream,
and per event the camera's alert trigger, the notification blueprint, the logbook line and the
*Threat active* sensor must agree; the raw level trigger fires whatever the rules say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.home_security_ai import logbook
from custom_components.home_security_ai.client import EventKind, Incident, RiskLevel, SecurityEvent
from custom_components.home_security_ai.const import (
    CONF_MIN_LEVELS,
    CONF_QUIET_DAYS,
    CONF_QUIET_END,
    CONF_QUIET_START,
    DOMAIN,
    EVENT_SECURITY,
)

from .conftest import device_by_identifier, wait_for
from .notify_blueprint import NOTIFY, blueprint_automation, install_blueprint

THREAT = "binary_sensor.porch_threat_active"


def _local_ms(year: int, month: int, day: int, hour: int) -> int:
    local = datetime(year, month, day, hour, tzinfo=dt_util.get_default_time_zone())
    return int(local.timestamp() * 1000)


# When an event is made, in Home Assistant's time zone (known only once the test runs):
# 2026-01-02 is a Friday; quiet hours are Friday 22:00 to 06:00, so Saturday 03:00 is quiet.
DAY = (2026, 1, 2, 12)
NIGHT = (2026, 1, 3, 3)
QUIET_HOURS = {CONF_QUIET_DAYS: ["fri"], CONF_QUIET_START: "22:00:00", CONF_QUIET_END: "06:00:00"}


@dataclass(frozen=True, kw_only=True)
class Step:
    """One event of the porch camera, the household's state when it comes, and the outcome."""

    name: str
    level: RiskLevel
    incident: str
    # An update of the incident, and whether the sidecar's incident alerts for it.
    update: bool = False
    sidecar_alert: bool = True
    when: tuple[int, int, int, int] = DAY
    armed: str = "home"
    min_level: str | None = None
    # Expected: the household's decision, its words in the logbook when held back, and whether
    # the threat sensor is turned on or kept on (its time starts again).
    alerts: bool
    held_back: str = ""
    threat: bool


STEPS = (
    Step(name="a low event", level=RiskLevel.LOW, incident="cat", alerts=True, threat=False),
    Step(
        name="a high event while disarmed",
        level=RiskLevel.HIGH,
        incident="disarmed",
        armed="disarmed",
        alerts=False,
        held_back="disarmed",
        threat=False,
    ),
    Step(
        name="a high event in quiet hours",
        level=RiskLevel.HIGH,
        incident="night",
        when=NIGHT,
        alerts=False,
        held_back="quiet hours",
        threat=False,
    ),
    Step(
        name="an update of the incident held back in quiet hours",
        level=RiskLevel.HIGH,
        incident="night",
        update=True,
        sidecar_alert=False,
        when=NIGHT,
        alerts=False,
        held_back="incident update",
        threat=False,
    ),
    Step(
        name="a medium event below the camera's minimum of high",
        level=RiskLevel.MEDIUM,
        incident="fox",
        min_level="high",
        alerts=False,
        held_back="below the camera's minimum level",
        threat=False,
    ),
    Step(
        name="a first high event",
        level=RiskLevel.HIGH,
        incident="walk",
        alerts=True,
        threat=True,
    ),
    Step(
        name="an update of that incident at high",
        level=RiskLevel.HIGH,
        incident="walk",
        update=True,
        sidecar_alert=False,
        alerts=False,
        held_back="incident update",
        threat=True,
    ),
    Step(
        name="a high event in quiet hours while the threat is on",
        level=RiskLevel.HIGH,
        incident="night-2",
        when=NIGHT,
        alerts=False,
        held_back="quiet hours",
        threat=False,
    ),
    Step(
        name="a critical event in quiet hours",
        level=RiskLevel.CRITICAL,
        incident="night-3",
        when=NIGHT,
        alerts=True,
        threat=True,
    ),
    Step(
        name="a critical event",
        level=RiskLevel.CRITICAL,
        incident="break-in",
        alerts=True,
        threat=True,
    ),
)


async def _ack_suppressed(*_args: Any) -> int:
    return 0


def _at_least_high(level: RiskLevel) -> bool:
    return level in (RiskLevel.HIGH, RiskLevel.CRITICAL)


async def _automations(hass: HomeAssistant, tmp_path: Path, device_id: str) -> None:
    """(a) the camera's alert trigger from high up, (b) its raw trigger from high up, and the
    notification blueprint from high up, installed in the configuration folder as importing it
    does."""
    install_blueprint(hass)

    def _device_trigger(trigger_type: str) -> dict[str, Any]:
        return {
            "triggers": [
                {
                    "trigger": "device",
                    "domain": DOMAIN,
                    "device_id": device_id,
                    "type": trigger_type,
                }
            ],
            "actions": [
                {
                    "action": f"test.{trigger_type}",
                    "data": {"event_id": "{{ trigger.event.data.event_id }}"},
                }
            ],
        }

    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                _device_trigger("alert_high"),
                _device_trigger("security_event_high"),
                blueprint_automation("high"),
            ]
        },
    )
    await hass.async_block_till_done()


def _logbook_line(hass: HomeAssistant) -> Callable[[dict[str, Any]], str]:
    """Return what the logbook writes for a bus event's data."""
    described: dict[str, Callable[[Event], dict[str, Any]]] = {}

    def _describe(
        _domain: str, event_type: str, describe: Callable[[Event], dict[str, Any]]
    ) -> None:
        described[event_type] = describe

    logbook.async_describe_events(hass, _describe)
    return lambda data: str(described[EVENT_SECURITY](Event(EVENT_SECURITY, data))["message"])


async def test_one_decision_on_every_surface(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Per event of STEPS: the alert trigger fires, the blueprint notifies, the logbook says
    "alerted" (from high up) and the threat turns on exactly together; an incident's update
    keeps an active threat on; the raw trigger fires on every event from high up."""
    hass.config.config_dir = str(tmp_path / "config")
    entry = mock_config_entry
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    data = entry.runtime_data
    data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    device = device_by_identifier(hass, entry.entry_id, (DOMAIN, f"{entry.unique_id}_porch"))
    assert device is not None
    armed = er.async_get(hass).async_get_entity_id(
        "select", DOMAIN, f"{entry.unique_id}_server_armed"
    )
    assert armed is not None

    alert_calls = async_mock_service(hass, "test", "alert_high")
    raw_calls = async_mock_service(hass, "test", "security_event_high")
    pushes = async_mock_service(hass, "notify", NOTIFY)
    await _automations(hass, tmp_path, device.id)
    line_of = _logbook_line(hass)
    fired: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_SECURITY, lambda event: fired.append(dict(event.data)))
    sequence = count(data.events.last_sequence + 1)

    for number, step in enumerate(STEPS, 1):
        name = f"event {number}, {step.name}"
        options: dict[str, Any] = dict(QUIET_HOURS)
        if step.min_level is not None:
            options[CONF_MIN_LEVELS] = {"porch": step.min_level}
        hass.config_entries.async_update_entry(entry, options=options)
        await hass.services.async_call(
            "select", "select_option", {"entity_id": armed, "option": step.armed}, blocking=True
        )
        await hass.async_block_till_done()
        for calls in (alert_calls, raw_calls, pushes):
            calls.clear()
        threat_before = data.cameras["porch"].threat_until
        sensor_before = hass.states.get(THREAT)
        assert sensor_before is not None

        made_at = _local_ms(*step.when)
        event = SecurityEvent(
            sequence=next(sequence),
            event_id=f"event-{number}",
            camera_id="porch",
            kind=EventKind.SECURITY,
            risk_level=step.level,
            summary=step.name,
            created_at_ms=made_at,
            incident=Incident(
                incident_id=step.incident,
                update=step.update,
                camera_ids=("porch",),
                started_at_ms=made_at,
                alert=step.sidecar_alert,
            ),
        )
        with patch.object(data.client, "ack_events", _ack_suppressed):
            await data.events.async_handle(event)
        await hass.async_block_till_done()

        payload = fired[-1]
        assert payload["event_id"] == event.event_id, name
        assert payload["alert"] is step.alerts, f"{name}: the decision"
        pages = step.alerts and _at_least_high(step.level)

        # (a) The alert trigger from high up, the blueprint from high up: the same decision.
        assert [call.data["event_id"] for call in alert_calls] == (
            [event.event_id] if pages else []
        ), f"{name}: the alert trigger from high up"
        # An update of the incident that paged refreshes that notification quietly: no page.
        refreshes = bool(payload["updates_page"]) and _at_least_high(step.level)
        assert [call.data["data"]["tag"] for call in pushes] == (
            [step.incident] if pages or refreshes else []
        ), f"{name}: the blueprint from high up"
        if refreshes:
            assert pushes[-1].data["data"]["push"] == {"interruption-level": "passive"}, name
        # (b) The raw trigger: every event from high up, whatever the rules say.
        assert [call.data["event_id"] for call in raw_calls] == (
            [event.event_id] if _at_least_high(step.level) else []
        ), f"{name}: the raw trigger from high up"

        # The logbook says the decision in words.
        level = step.level.name.lower()
        expected_line = (
            f"reported a {level} risk event and alerted: {step.name}"
            if step.alerts
            else f"reported a {level} risk event: {step.name} (no alert: {step.held_back})"
        )
        line = line_of(payload)
        assert line == expected_line, f"{name}: the logbook line"
        assert ("and alerted" in line and _at_least_high(step.level)) is pages, (
            f"{name}: the logbook against the alert trigger"
        )

        # Threat active: on for an alert from high up, kept on by its incident's updates,
        # never turned on or kept on by an event held back for another reason.
        threat_after = data.cameras["porch"].threat_until
        restarted = threat_after != threat_before
        assert restarted is step.threat, f"{name}: threat turned on or kept on"
        sensor = hass.states.get(THREAT)
        assert sensor is not None
        if step.threat:
            assert sensor.state == "on", f"{name}: threat active"
        else:
            assert sensor.state == sensor_before.state, f"{name}: threat left as it was"
        held_by_incident = payload["alert_reason"] == "incident"
        assert restarted is (pages or (held_by_incident and sensor_before.state == "on")), (
            f"{name}: the threat against the alert trigger"
        )

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
