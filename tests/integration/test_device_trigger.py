"""Device triggers of a camera: listed for its device (alerts first), the zone a zone trigger
asks for, and run automations on real events."""

from __future__ import annotations

from itertools import count
from typing import Any
from unittest.mock import patch

import pytest
import voluptuous as vol
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.trigger import async_validate_trigger_config
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automation_capabilities,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.home_security_ai.client import (
    Box,
    Detection,
    Dwell,
    EventDetection,
    EventKind,
    Incident,
    PersonSighting,
    RiskLevel,
    SceneChangeKind,
    SecurityEvent,
)
from custom_components.home_security_ai.const import CONF_ZONES, DOMAIN, EVENT_SECURITY
from custom_components.home_security_ai.device_trigger import TRIGGER_TYPES, ZONE_ENTERED

from .conftest import device_by_identifier, make_entry, wait_for
from .sidecar_process import Sidecar

_ids = count(1)


async def _ack_suppressed(*_args: Any) -> int:
    return 0


async def _setup_with_cameras(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    for camera_id, name in (("porch", "Porch"), ("garden", "Garden")):
        entry.runtime_data.cameras.async_register(camera_id, name)
    await hass.async_block_till_done()


def _camera_device(hass: HomeAssistant, entry: MockConfigEntry, camera_id: str) -> str:
    device = device_by_identifier(hass, entry.entry_id, (DOMAIN, f"{entry.unique_id}_{camera_id}"))
    assert device is not None
    return device.id


def _event(
    camera_id: str,
    level: RiskLevel = RiskLevel.LOW,
    *,
    sequence: int,
    label: str = "cup",
    scene_change: SceneChangeKind = SceneChangeKind.NONE,
    incident: Incident | None = None,
    zones: tuple[str, ...] = (),
    people: tuple[PersonSighting, ...] = (),
    dwell: tuple[Dwell, ...] = (),
) -> SecurityEvent:
    """A security event of one detection (a cup, unless `label` says otherwise)."""
    detection = Detection(label=label, class_id=0, confidence=0.9, box=Box(x1=0, y1=0, x2=1, y2=1))
    return SecurityEvent(
        sequence=sequence,
        event_id=f"event-{next(_ids)}",
        camera_id=camera_id,
        kind=EventKind.SECURITY,
        risk_level=level,
        risk_score=10,
        summary="something happened",
        detections=(EventDetection(detection=detection, frame_sha256="0" * 64, zones=zones),),
        zones=zones,
        scene_change=scene_change,
        incident=incident,
        people=people,
        dwell=dwell,
    )


async def test_camera_device_lists_every_trigger(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    await _setup_with_cameras(hass, mock_config_entry)
    device_id = _camera_device(hass, mock_config_entry, "porch")
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
    ours = [t["type"] for t in triggers if t["domain"] == DOMAIN]
    assert ours == list(TRIGGER_TYPES)
    # The alert triggers are the ones offered first; the events' raw levels follow.
    assert ours[:8] == [
        "alert_low",
        "alert_medium",
        "alert_high",
        "alert_critical",
        "security_event_low",
        "security_event_medium",
        "security_event_high",
        "security_event_critical",
    ]
    assert all(t["device_id"] == device_id for t in triggers if t["domain"] == DOMAIN)
    # The server device has none.
    server = mock_config_entry.runtime_data.server_device_id
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, server)
    assert [t for t in triggers if t["domain"] == DOMAIN] == []
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_the_zone_trigger_asks_for_one_of_the_cameras_zones(
    hass: HomeAssistant, shared_sidecar: Sidecar
) -> None:
    steps = {"name": "Steps", "kind": "entry", "points": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
    lawn = {"name": "Lawn", "kind": "yard", "points": [[0, 0], [1, 0], [1, 0.5], [0, 0.5]]}
    entry = make_entry(shared_sidecar, {CONF_ZONES: {"porch": [steps, lawn]}})
    await _setup_with_cameras(hass, entry)

    async def _extra_fields(camera_id: str, trigger_type: str) -> list[dict[str, Any]]:
        trigger = {
            "platform": "device",
            "domain": DOMAIN,
            "device_id": _camera_device(hass, entry, camera_id),
            "type": trigger_type,
        }
        capabilities = await async_get_device_automation_capabilities(
            hass, DeviceAutomationType.TRIGGER, trigger
        )
        return list(capabilities["extra_fields"])

    (field,) = await _extra_fields("porch", ZONE_ENTERED)
    assert field["name"] == "zone"
    assert field["required"]
    assert [option[0] for option in field["options"]] == ["Steps", "Lawn"]
    # A camera without zones (yet) takes any name; the other triggers ask for nothing.
    (field,) = await _extra_fields("garden", ZONE_ENTERED)
    assert (field["name"], field["type"]) == ("zone", "string")
    assert await _extra_fields("porch", "loitering") == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_zone_trigger_needs_its_zone(hass: HomeAssistant, shared_sidecar: Sidecar) -> None:
    entry = make_entry(shared_sidecar)
    await _setup_with_cameras(hass, entry)
    trigger = {
        "trigger": "device",
        "domain": DOMAIN,
        "device_id": _camera_device(hass, entry, "porch"),
        "type": ZONE_ENTERED,
    }
    with pytest.raises(vol.Invalid, match="zone"):
        await async_validate_trigger_config(hass, cv.TRIGGER_SCHEMA([trigger]))
    (valid,) = await async_validate_trigger_config(
        hass, cv.TRIGGER_SCHEMA([{**trigger, "zone": " Steps "}])
    )
    assert valid["zone"] == "Steps"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_bus_event_says_who_loitered_where(
    hass: HomeAssistant, shared_sidecar: Sidecar
) -> None:
    entry = make_entry(shared_sidecar)
    await _setup_with_cameras(hass, entry)
    fired: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_SECURITY, lambda event: fired.append(dict(event.data)))
    events = entry.runtime_data.events
    sequence = count(events.last_sequence + 1)
    stood = (Dwell(zone="Steps", seconds=185.5), Dwell(zone="Shed", seconds=61.0))
    with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
        await events.async_handle(_event("porch", sequence=next(sequence), label="person"))
        await events.async_handle(
            _event("porch", sequence=next(sequence), label="person", dwell=stood)
        )
    await hass.async_block_till_done()
    passing, loitering = fired
    assert (passing["dwell"], passing["loitering"]) == ([], False)
    assert loitering["dwell"] == [
        {"zone": "Steps", "seconds": 185.5},
        {"zone": "Shed", "seconds": 61.0},
    ]
    assert loitering["loitering"] is True
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
def calls(hass: HomeAssistant) -> list[ServiceCall]:
    return async_mock_service(hass, "test", "automation")


async def test_each_trigger_runs_its_automation(
    hass: HomeAssistant, shared_sidecar: Sidecar, calls: list[ServiceCall]
) -> None:
    """Every trigger type in an automation; real events through the event stream run them,
    levels from the chosen one up, and only the camera's own. The alert triggers fire only for
    events that alert."""
    entry = make_entry(shared_sidecar)
    await _setup_with_cameras(hass, entry)
    device_id = _camera_device(hass, entry, "porch")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "triggers": [
                        {
                            "trigger": "device",
                            "domain": DOMAIN,
                            "device_id": device_id,
                            "type": trigger_type,
                            **({"zone": "Steps"} if trigger_type == ZONE_ENTERED else {}),
                        }
                    ],
                    "actions": [
                        {
                            "action": "test.automation",
                            "data": {
                                "type": trigger_type,
                                "event_id": "{{ trigger.event.data.event_id"
                                " | default(trigger.event.data.incident_id) }}",
                            },
                        }
                    ],
                }
                for trigger_type in TRIGGER_TYPES
            ]
        },
    )
    events = entry.runtime_data.events
    sequence = count(events.last_sequence + 1)

    async def _fire(event: SecurityEvent) -> list[str]:
        calls.clear()
        with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
            await events.async_handle(event)
        await hass.async_block_till_done()
        return sorted(call.data["type"] for call in calls)

    assert await _fire(_event("porch", RiskLevel.LOW, sequence=next(sequence))) == [
        "alert_low",
        "security_event_low",
    ]
    assert await _fire(_event("porch", RiskLevel.HIGH, sequence=next(sequence))) == [
        "alert_high",
        "alert_low",
        "alert_medium",
        "security_event_high",
        "security_event_low",
        "security_event_medium",
    ]
    assert await _fire(_event("porch", RiskLevel.CRITICAL, sequence=next(sequence))) == [
        "alert_critical",
        "alert_high",
        "alert_low",
        "alert_medium",
        "security_event_critical",
        "security_event_high",
        "security_event_low",
        "security_event_medium",
    ]
    assert await _fire(
        _event("porch", RiskLevel.MEDIUM, sequence=next(sequence), label="person")
    ) == [
        "alert_low",
        "alert_medium",
        "person_detected",
        "security_event_low",
        "security_event_medium",
    ]
    assert await _fire(_event("porch", sequence=next(sequence), label="car")) == [
        "alert_low",
        "security_event_low",
        "vehicle_detected",
    ]
    assert await _fire(_event("porch", sequence=next(sequence), label="Dog")) == [
        "alert_low",
        "animal_detected",
        "security_event_low",
    ]
    anna = (PersonSighting(face_id="f2", name="Anna", unknown=False),)
    stranger = (PersonSighting(face_id="f1", unknown=True), *anna)
    assert await _fire(
        _event("porch", sequence=next(sequence), label="person", people=stranger)
    ) == ["alert_low", "person_detected", "security_event_low", "unknown_person"]
    assert await _fire(
        _event("porch", sequence=next(sequence), label="person", people=anna)
    ) == ["alert_low", "person_detected", "security_event_low"]
    # The zone trigger watches its own zone only.
    assert await _fire(_event("porch", sequence=next(sequence), zones=("Lawn", "Steps"))) == [
        "alert_low",
        "security_event_low",
        "zone_entered",
    ]
    assert await _fire(_event("porch", sequence=next(sequence), zones=("Lawn",))) == [
        "alert_low",
        "security_event_low",
    ]
    stood = (Dwell(zone="Steps", seconds=185.0),)
    assert await _fire(
        _event("porch", sequence=next(sequence), label="person", zones=("Steps",), dwell=stood)
    ) == ["alert_low", "loitering", "person_detected", "security_event_low", "zone_entered"]
    assert await _fire(
        _event("porch", sequence=next(sequence), scene_change=SceneChangeKind.COVERED)
    ) == ["alert_low", "camera_tampered", "security_event_low"]
    # An incident's update that does not alert: only the raw levels fire.
    update = Incident(
        incident_id="walk", update=True, camera_ids=("porch",), started_at_ms=1, alert=False
    )
    assert await _fire(
        _event("porch", RiskLevel.HIGH, sequence=next(sequence), incident=update)
    ) == ["security_event_high", "security_event_low", "security_event_medium"]
    # What was seen fires whatever the alert decision.
    assert await _fire(
        _event(
            "porch", sequence=next(sequence), label="person", incident=update,
            zones=("Steps",), people=stranger, dwell=stood,
        )
    ) == ["loitering", "person_detected", "security_event_low", "unknown_person", "zone_entered"]
    # Another camera's events run none of the porch's automations.
    assert (
        await _fire(_event("garden", RiskLevel.CRITICAL, sequence=next(sequence), label="person"))
        == []
    )
    # The automation sees the whole event.
    await _fire(_event("porch", RiskLevel.MEDIUM, sequence=next(sequence)))
    assert calls[0].data["event_id"].startswith("event-")

    ended = SecurityEvent(
        sequence=next(sequence),
        event_id="end",
        camera_id="porch",
        kind=EventKind.INCIDENT_ENDED,
        incident=Incident(
            incident_id="walk",
            update=True,
            camera_ids=("garden", "porch"),
            started_at_ms=1,
            alert=False,
        ),
    )
    assert await _fire(ended) == ["incident_ended"]
    assert calls[0].data["event_id"] == "walk"
    assert await hass.config_entries.async_unload(entry.entry_id)
