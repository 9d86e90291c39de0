"""The household's own people: marked with an action, they never page on their own."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import (
    Box,
    Detection,
    EventDetection,
    EventKind,
    PersonSighting,
    RiskLevel,
    SecurityEvent,
)
from custom_components.home_security_ai.const import CONF_HOUSEHOLD, DOMAIN

from .test_alerts import _ack_suppressed, _Events, _local_ms, _setup, _threat

# A Friday, 23:00: late, when a page would wake someone.
FRIDAY_NIGHT = _local_ms(2026, 1, 2, 23)
BOX = Box(x1=10, y1=10, x2=60, y2=200)


def _person_event(sequence: int, *faces: str | None, people: int = 1) -> SecurityEvent:
    """A high-risk event on the porch: `people` person boxes in one frame, and the faces found
    (a name, or None for a face that matched nobody)."""
    return SecurityEvent(
        sequence=sequence,
        event_id=f"household-{sequence}",
        camera_id="porch",
        kind=EventKind.SECURITY,
        risk_level=RiskLevel.HIGH,
        created_at_ms=FRIDAY_NIGHT,
        detections=tuple(
            EventDetection(
                detection=Detection(label="person", class_id=0, confidence=0.9, box=BOX),
                frame_sha256="frame-1",
            )
            for _ in range(people)
        ),
        people=tuple(
            PersonSighting(
                face_id=f"face-{index}", name=name or "", unknown=name is None,
                frame_sha256="frame-1",
            )
            for index, name in enumerate(faces)
        ),
    )


async def _send(events: _Events, event: SecurityEvent) -> dict[str, Any]:
    entry = events.entry
    with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
        await entry.runtime_data.events.async_handle(event)
    await events.hass.async_block_till_done()
    return events.fired[-1]


async def test_household_members_never_page_on_their_own(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    entry = mock_config_entry
    await _setup(hass, entry)
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    events = _Events(hass, entry)
    sequence = entry.runtime_data.events.last_sequence

    response = await hass.services.async_call(
        DOMAIN, "set_household_member", {"name": "Anna"}, blocking=True, return_response=True
    )
    assert response == {"name": "Anna", "member": True, "cameras": []}
    assert entry.options[CONF_HOUSEHOLD] == {"Anna": {"cameras": []}}

    # Anna coming home at 23:00: recorded, no page, no threat.
    anna = await _send(events, _person_event(sequence + 1, "Anna"))
    assert (anna["alert"], anna["alert_reason"]) == (False, "household")
    assert _threat(hass, "porch") == "off"
    # A stranger's face beside her, or a second person whose face was not seen: a page.
    with_stranger = await _send(events, _person_event(sequence + 2, "Anna", None, people=2))
    assert with_stranger["alert"] is True
    unseen = await _send(events, _person_event(sequence + 3, "Anna", people=2))
    assert unseen["alert"] is True

    # Expected only on the garden camera and in the afternoon: the porch at night pages.
    await hass.services.async_call(
        DOMAIN, "set_household_member",
        {"name": "Anna", "cameras": ["garden"], "start": "12:00", "end": "18:00"},
        blocking=True,
    )
    assert entry.options[CONF_HOUSEHOLD]["Anna"] == {
        "cameras": ["garden"], "start": "12:00", "end": "18:00",
    }
    elsewhere = await _send(events, _person_event(sequence + 4, "Anna"))
    assert elsewhere["alert"] is True

    await hass.services.async_call(
        DOMAIN, "set_household_member", {"name": "Anna", "member": False}, blocking=True
    )
    assert entry.options[CONF_HOUSEHOLD] == {}
    assert entry.state.value == "loaded"  # an alert rule: applied without a reload
