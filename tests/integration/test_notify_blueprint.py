"""The notification blueprint, run as a user runs it: an automation made from the blueprint
file, real events, and a notify action that records what the phone would get."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import Event, HomeAssistant, ServiceCall
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_security_ai.client import (
    EventKind,
    Incident,
    RiskLevel,
    SecurityEvent,
)
from custom_components.home_security_ai.const import (
    CONF_CAMERAS,
    CONF_QUIET_DAYS,
    CONF_QUIET_END,
    CONF_QUIET_START,
    CONF_SNAPSHOT_INTERVAL,
    DOMAIN,
    EVENT_SECURITY,
)

from .conftest import TEST_CAMERA, PorchCamera, make_entry, wait_for
from .notify_blueprint import NOTIFY, blueprint_automation, install_blueprint
from .sidecar_process import Sidecar


async def _use_blueprint(
    hass: HomeAssistant, tmp_path: Path, minimum_level: str
) -> list[ServiceCall]:
    """Install the blueprint in a configuration folder, as importing it does, and use it."""
    hass.config.config_dir = str(tmp_path / "config")
    install_blueprint(hass)
    calls = async_mock_service(hass, "notify", NOTIFY)
    assert await async_setup_component(
        hass, "automation", {"automation": blueprint_automation(minimum_level)}
    )
    await hass.async_block_till_done()
    assert hass.states.get("automation.security_push") is not None
    return calls


def _bus(hass: HomeAssistant) -> list[dict[str, Any]]:
    fired: list[dict[str, Any]] = []

    def _record(event: Event) -> None:
        fired.append(dict(event.data))

    hass.bus.async_listen(EVENT_SECURITY, _record)
    return fired


async def _until(predicate: Callable[[], bool]) -> None:
    """Let the event loop run until `predicate()` holds, without waiting for every task."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    pytest.fail("the condition never held")


def _entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, unique_id
    return entity_id


async def test_push_with_the_snapshot_and_its_actions(
    hass: HomeAssistant,
    sidecar: Sidecar,
    porch_camera: PorchCamera,
    tmp_path: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """A real event sends one push with the summary and the event's annotated snapshot, which
    Home Assistant serves; "False alarm" reaches the sidecar that made the event and "Snooze"
    pauses the camera for an hour."""
    calls = await _use_blueprint(hass, tmp_path, "low")
    fired = _bus(hass)
    entry = make_entry(sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    await entry.runtime_data.camera_source.async_snapshot(TEST_CAMERA)
    await wait_for(hass, lambda: bool(calls), "the push")
    await hass.async_block_till_done()

    (event,) = fired
    assert event["alert"] is True
    (call,) = calls
    image = _entity_id(hass, "image", f"{entry.unique_id}_porch_snapshot")
    switch = _entity_id(hass, "switch", f"{entry.unique_id}_porch_analysis_enabled")
    urgent = event["risk_level"] in ("high", "critical")
    page = f"/config/devices/device/{event['device_id']}"
    assert call.data["title"] == f"{event['camera_name']}: {event['risk_level']} risk"
    assert call.data["message"] == event["summary"]
    data = call.data["data"]
    assert data["tag"] == (event["incident_id"] or event["event_id"])
    assert data["image"] == f"/api/image_proxy/{image}"
    assert data["actions"] == [
        {"action": f"HOME_SECURITY_AI_FALSE_ALARM_{event['event_id']}", "title": "False alarm"},
        {"action": f"HOME_SECURITY_AI_SNOOZE_{switch}", "title": "Snooze this camera 1 h"},
        {"action": "URI", "title": "Open camera", "uri": page},
    ]
    assert data["channel"] == ("alarm_stream" if urgent else "home_security_ai")
    assert data["push"]["interruption-level"] == ("critical" if urgent else "active")

    # The picture the phone fetches is the snapshot saved for the event.
    client = await hass_client()
    response = await client.get(data["image"])
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    saved = await hass.async_add_executor_job(Path(event["snapshot_path"]).read_bytes)
    assert await response.read() == saved
    # The camera's event entity and its image entity show the same event.
    event_entity = _entity_id(hass, "event", f"{entry.unique_id}_porch_security_event")
    assert hass.states.get(event_entity).attributes["snapshot_url"] == data["image"]
    assert hass.states.get(image).state not in ("unknown", "unavailable")

    hass.bus.async_fire("mobile_app_notification_action", {"action": data["actions"][0]["action"]})
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    await coordinator.async_refresh()
    assert coordinator.data.feedback["porch"].false_alarms == 1

    # The snooze pauses the camera for an hour; the integration itself resumes it.
    hass.bus.async_fire("mobile_app_notification_action", {"action": data["actions"][1]["action"]})
    await _until(lambda: hass.states.get(switch).state == "off")
    assert not entry.runtime_data.arming.analysis_enabled("porch")
    assert hass.states.get(switch).attributes["resume_at"]
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=1))
    await _until(lambda: hass.states.get(switch).state == "on")

    # A button for a switch of something else is ignored.
    hass.states.async_set("switch.boiler", "on")
    hass.bus.async_fire(
        "mobile_app_notification_action", {"action": "HOME_SECURITY_AI_SNOOZE_switch.boiler"}
    )
    await hass.async_block_till_done()
    assert hass.states.get("switch.boiler").state == "on"
    assert len(calls) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


_sequence = count(1)


async def _send(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    level: RiskLevel,
    incident: Incident,
) -> None:
    """Hand a security event of the garden camera to the event stream, as the sidecar would."""
    event = SecurityEvent(
        sequence=entry.runtime_data.events.last_sequence + 1,
        event_id=f"event-{next(_sequence)}",
        camera_id="garden",
        kind=EventKind.SECURITY,
        risk_level=level,
        summary=f"Someone in the garden ({level.name.lower()})",
        created_at_ms=int(dt_util.utcnow().timestamp() * 1000),
        incident=incident,
    )

    async def _no_ack(*_args: Any) -> int:
        return 0

    with patch.object(entry.runtime_data.client, "ack_events", _no_ack):
        await entry.runtime_data.events.async_handle(event)
    await hass.async_block_till_done()


def _incident(incident_id: str, *, update: bool, alert: bool) -> Incident:
    return Incident(
        incident_id=incident_id,
        update=update,
        camera_ids=("garden",),
        started_at_ms=int(dt_util.utcnow().timestamp() * 1000),
        alert=alert,
    )


async def test_levels_incident_updates_and_held_back_events(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Medium uses the usual channel, high the alarm channel; an incident's updates replace
    its notification (quietly when they do not alert), nothing is sent for events below the
    minimum level, in quiet hours (unless critical), or for updates of an incident that never
    paged."""
    calls = await _use_blueprint(hass, tmp_path, "medium")
    entry = mock_config_entry
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    entry.runtime_data.cameras.async_register("garden", "Garden")
    await hass.async_block_till_done()

    await _send(hass, entry, RiskLevel.MEDIUM, _incident("inc-1", update=False, alert=True))
    (first,) = calls
    assert first.data["title"] == "Garden: medium risk"
    assert first.data["message"] == "Someone in the garden (medium)"
    assert first.data["data"]["tag"] == "inc-1"
    assert first.data["data"]["channel"] == "home_security_ai"
    assert first.data["data"]["push"] == {"interruption-level": "active"}
    assert "ttl" not in first.data["data"]
    # No event of this camera has a snapshot: nothing to attach.
    assert "image" not in first.data["data"]

    # The analysis raises the level: the same notification, now on the alarm channel.
    await _send(hass, entry, RiskLevel.HIGH, _incident("inc-1", update=True, alert=True))
    assert len(calls) == 2
    raised = calls[1].data["data"]
    assert raised["tag"] == "inc-1"
    assert (raised["channel"], raised["ttl"], raised["priority"]) == ("alarm_stream", 0, "high")
    assert raised["push"]["interruption-level"] == "critical"
    assert raised["push"]["sound"]["critical"] == 1

    # An update that does not alert: the same notification, brought up to date quietly.
    await _send(hass, entry, RiskLevel.HIGH, _incident("inc-1", update=True, alert=False))
    assert len(calls) == 3
    quiet = calls[2].data["data"]
    assert quiet["tag"] == "inc-1"
    assert quiet["channel"] == "home_security_ai"
    assert quiet["alert_once"] is True
    assert quiet["push"] == {"interruption-level": "passive"}
    # A new incident below the minimum level: nothing.
    await _send(hass, entry, RiskLevel.LOW, _incident("inc-2", update=False, alert=True))
    assert len(calls) == 3
    del calls[2]

    # Quiet hours all day: held back (alert false), except critical events.
    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_QUIET_DAYS: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            CONF_QUIET_START: "00:00:00",
            CONF_QUIET_END: "23:59:59",
        },
    )
    await hass.async_block_till_done()
    await _send(hass, entry, RiskLevel.HIGH, _incident("inc-3", update=False, alert=True))
    assert len(calls) == 2
    # Its update is no page either: the incident never paged, so there is nothing to refresh.
    await _send(hass, entry, RiskLevel.HIGH, _incident("inc-3", update=True, alert=False))
    assert len(calls) == 2
    await _send(hass, entry, RiskLevel.CRITICAL, _incident("inc-4", update=False, alert=True))
    assert len(calls) == 3
    assert calls[2].data["data"]["tag"] == "inc-4"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
