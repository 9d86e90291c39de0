"""Device conditions: a camera's threat and analysis, the home's armed mode, in automations."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    async_get_device_automations,
    async_mock_service,
)

from custom_components.home_security_ai.client import (
    Box,
    Detection,
    Dwell,
    EventKind,
    PersonSighting,
    RiskLevel,
    SecurityEvent,
)
from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.device_condition import (
    CAMERA_CONDITIONS,
    IN_ZONE,
    SERVER_CONDITIONS,
)

from .conftest import device_by_identifier, make_entry, wait_for
from .sidecar_process import Sidecar


async def _ack_suppressed(*_args: Any) -> int:
    return 0


async def test_conditions_are_listed_and_follow_the_entities(
    hass: HomeAssistant, shared_sidecar: Sidecar
) -> None:
    """The camera device offers threat and analysis conditions, the server device the armed
    modes; each is true exactly when its entity says so."""
    entry = make_entry(shared_sidecar)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    camera = device_by_identifier(hass, entry.entry_id, (DOMAIN, f"{entry.unique_id}_porch"))
    assert camera is not None
    server = entry.runtime_data.server_device_id

    def listed(conditions: list[dict[str, Any]]) -> list[str]:
        return sorted(item["type"] for item in conditions if item["domain"] == DOMAIN)

    condition = DeviceAutomationType.CONDITION
    assert listed(await async_get_device_automations(hass, condition, camera.id)) == sorted(
        CAMERA_CONDITIONS
    )
    assert listed(await async_get_device_automations(hass, condition, server)) == sorted(
        SERVER_CONDITIONS
    )

    calls = async_mock_service(hass, "test", "automation")
    checks = [(camera.id, kind) for kind in CAMERA_CONDITIONS]
    checks += [(server, kind) for kind in SERVER_CONDITIONS]
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "triggers": [{"trigger": "event", "event_type": "check_conditions"}],
                    "conditions": [
                        {
                            "condition": "device", "domain": DOMAIN, "device_id": device,
                            "type": kind, **({"zone": "Porch"} if kind == IN_ZONE else {}),
                        }
                    ],
                    "actions": [{"action": "test.automation", "data": {"type": kind}}],
                }
                for device, kind in checks
            ]
        },
    )

    async def true_now() -> list[str]:
        calls.clear()
        hass.bus.async_fire("check_conditions")
        await hass.async_block_till_done()
        return sorted(call.data["type"] for call in calls)

    assert await true_now() == ["analysis_enabled", "armed_home"]

    registry = er.async_get(hass)
    armed = registry.async_get_entity_id("select", DOMAIN, f"{entry.unique_id}_server_armed")
    analysis = registry.async_get_entity_id(
        "switch", DOMAIN, f"{entry.unique_id}_porch_analysis_enabled"
    )
    await hass.services.async_call("switch", "turn_off", {"entity_id": analysis}, blocking=True)
    events = entry.runtime_data.events

    async def send(event_id: str, level: RiskLevel) -> None:
        with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
            await events.async_handle(
                SecurityEvent(
                    sequence=events.last_sequence + 1,
                    event_id=event_id,
                    camera_id="porch",
                    kind=EventKind.SECURITY,
                    risk_level=level,
                    risk_score=90,
                    summary="Someone forces the door",
                )
            )
        await hass.async_block_till_done()

    # Disarmed, a high event does not alert: no threat.
    await hass.services.async_call(
        "select", "select_option", {"entity_id": armed, "option": "disarmed"}, blocking=True
    )
    await send("held back", RiskLevel.HIGH)
    assert await true_now() == ["armed_disarmed"]

    await hass.services.async_call(
        "select", "select_option", {"entity_id": armed, "option": "away"}, blocking=True
    )
    await send("threat", RiskLevel.CRITICAL)
    assert await true_now() == ["armed_away", "threat_active"]

    # What the last frame holds (the Objects sensor): a car and a dog in view.
    def detected(label: str) -> Detection:
        return Detection(label=label, class_id=0, confidence=0.9, box=Box(x1=0, y1=0, x2=9, y2=9))

    entry.runtime_data.cameras.async_frame_analyzed(
        "porch", b"jpeg", "ref", detections=(detected("car"), detected("dog")), width=64, height=48
    )
    await hass.async_block_till_done()
    assert await true_now() == ["animal_in_view", "armed_away", "threat_active", "vehicle_in_view"]

    # What the last event showed: an unknown face, someone loitering on the porch.
    with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
        await events.async_handle(
            SecurityEvent(
                sequence=events.last_sequence + 1, event_id="loiterer", camera_id="porch",
                kind=EventKind.SECURITY, risk_level=RiskLevel.HIGH, risk_score=70,
                zones=("Porch",), dwell=(Dwell(zone="Porch", seconds=180.0),),
                people=(PersonSighting(face_id="f", unknown=True),),
            )
        )
    await hass.async_block_till_done()
    assert {"in_zone", "loitering", "unknown_person"} <= set(await true_now())
    assert await hass.config_entries.async_unload(entry.entry_id)
