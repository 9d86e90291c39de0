"""What a user looks back at: the incidents calendar, the get_events action and the logbook,
from events handed to the event stream as the sidecar sends them, across a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_security_ai import logbook
from custom_components.home_security_ai.client import (
    EventKind,
    Incident,
    PersonSighting,
    PlateReading,
    RiskLevel,
    SecurityEvent,
)
from custom_components.home_security_ai.const import DOMAIN, EVENT_INCIDENT_ENDED, EVENT_SECURITY

from .conftest import device_by_identifier, wait_for

_ids = count(1)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _to_ms(when: datetime) -> datetime:
    """The time as events carry it: in milliseconds."""
    return dt_util.utc_from_timestamp(_ms(when) / 1000)


async def _handle(hass: HomeAssistant, entry: MockConfigEntry, event: SecurityEvent) -> None:
    async def _no_ack(*_args: Any) -> int:
        return 0

    with patch.object(entry.runtime_data.client, "ack_events", _no_ack):
        await entry.runtime_data.events.async_handle(event)
    await hass.async_block_till_done()


async def _security(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_id: str,
    level: RiskLevel,
    *,
    at: datetime,
    incident_id: str,
    score: int,
) -> None:
    await _handle(
        hass,
        entry,
        SecurityEvent(
            sequence=entry.runtime_data.events.last_sequence + 1,
            event_id=f"event-{next(_ids)}",
            camera_id=camera_id,
            kind=EventKind.SECURITY,
            risk_level=level,
            risk_score=score,
            summary=f"{level.name.lower()} at the {camera_id}",
            started_at_ms=_ms(at),
            ended_at_ms=_ms(at + timedelta(seconds=20)),
            created_at_ms=_ms(at + timedelta(seconds=21)),
            incident=Incident(
                incident_id=incident_id,
                update=False,
                camera_ids=(camera_id,),
                started_at_ms=_ms(at),
                alert=True,
            ),
        ),
    )


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if entry.entry_id not in {e.entry_id for e in hass.config_entries.async_entries(DOMAIN)}:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    for camera_id in ("garden", "porch"):
        entry.runtime_data.cameras.async_register(camera_id, camera_id.capitalize())
    await hass.async_block_till_done()


async def _calendar(hass: HomeAssistant, start: datetime, end: datetime) -> list[dict[str, Any]]:
    calendar = er.async_get(hass).async_get_entity_id("calendar", DOMAIN, _unique("incidents"))
    assert calendar is not None
    response = await hass.services.async_call(
        "calendar",
        "get_events",
        {"entity_id": calendar, "start_date_time": start, "end_date_time": end},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    events: list[dict[str, Any]] = response[calendar]["events"]  # type: ignore[call-overload]
    return events


_server_id = ""


def _unique(key: str) -> str:
    return f"{_server_id}_server_{key}"


async def _get_events(hass: HomeAssistant, **data: Any) -> list[dict[str, Any]]:
    response = await hass.services.async_call(
        DOMAIN, "get_events", data, blocking=True, return_response=True
    )
    assert response is not None
    events: list[dict[str, Any]] = response["events"]  # type: ignore[assignment]
    return events


async def test_calendar_get_events_and_restart(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Each incident is one calendar entry with its cameras and highest risk, an open one
    ends now; get_events filters by camera, device, time and level; both survive a restart."""
    global _server_id  # noqa: PLW0603 - the entity ids hang on the sidecar's id
    entry = mock_config_entry
    _server_id = str(entry.unique_id)
    with pytest.raises(ServiceValidationError):
        await _get_events(hass)
    await _setup(hass, entry)
    now = dt_util.utcnow()
    earlier = now - timedelta(minutes=20)
    await _security(
        hass, entry, "garden", RiskLevel.MEDIUM, at=earlier, incident_id="inc-1", score=40
    )
    await _security(
        hass,
        entry,
        "garden",
        RiskLevel.HIGH,
        at=earlier + timedelta(minutes=1),
        incident_id="inc-1",
        score=70,
    )
    await _handle(
        hass,
        entry,
        SecurityEvent(
            sequence=entry.runtime_data.events.last_sequence + 1,
            event_id=f"event-{next(_ids)}",
            camera_id="garden",
            kind=EventKind.INCIDENT_ENDED,
            started_at_ms=_ms(earlier),
            ended_at_ms=_ms(earlier + timedelta(minutes=4)),
            incident=Incident(
                incident_id="inc-1",
                update=True,
                camera_ids=("garden",),
                started_at_ms=_ms(earlier),
                alert=False,
            ),
        ),
    )
    await _security(
        hass,
        entry,
        "porch",
        RiskLevel.LOW,
        at=now - timedelta(minutes=1),
        incident_id="inc-2",
        score=10,
    )

    async def _check() -> None:
        incidents = await _calendar(hass, now - timedelta(hours=1), now + timedelta(hours=1))
        assert [incident["summary"] for incident in incidents] == [
            "High risk: Garden",
            "Low risk: Porch",
        ]
        ended, still_open = incidents
        assert dt_util.parse_datetime(ended["start"]) == _to_ms(earlier)
        assert dt_util.parse_datetime(ended["end"]) == _to_ms(earlier + timedelta(minutes=4))
        assert "Highest risk: High (70)" in ended["description"]
        assert "high at the garden" in ended["description"]
        # Still going on: it ends now (later than its last event).
        open_end = dt_util.parse_datetime(still_open["end"])
        assert open_end is not None
        assert open_end >= _to_ms(now)
        # Nothing outside the range.
        assert await _calendar(hass, now - timedelta(days=2), now - timedelta(days=1)) == []

        everything = await _get_events(hass)
        assert [e["summary"] for e in everything] == [
            "low at the porch",
            "high at the garden",
            "medium at the garden",
        ]
        assert everything[0]["camera_name"] == "Porch"
        assert everything[0]["incident_id"] == "inc-2"
        garden = await _get_events(hass, camera_id="garden", min_level="high")
        assert [e["risk_level"] for e in garden] == ["high"]
        device = device_by_identifier(hass, entry.entry_id, (DOMAIN, f"{_server_id}_porch"))
        assert device is not None
        assert [e["camera_id"] for e in await _get_events(hass, device_id=device.id)] == ["porch"]
        recent = await _get_events(hass, start=(now - timedelta(minutes=5)).isoformat())
        assert [e["camera_id"] for e in recent] == ["porch"]
        older = await _get_events(hass, end=(now - timedelta(minutes=5)).isoformat(), limit=1)
        assert [e["summary"] for e in older] == ["high at the garden"]

    await _check()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await _setup(hass, entry)
    await _check()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_get_events_says_who_was_seen_and_which_plates(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """The incidents card shows who and which plates: get_events keeps them, across a restart."""
    entry = mock_config_entry
    await _setup(hass, entry)
    at = dt_util.utcnow() - timedelta(minutes=2)
    await _handle(
        hass,
        entry,
        SecurityEvent(
            sequence=entry.runtime_data.events.last_sequence + 1,
            event_id=f"event-{next(_ids)}",
            camera_id="porch",
            kind=EventKind.SECURITY,
            risk_level=RiskLevel.MEDIUM,
            risk_score=45,
            summary="a person and a car at the porch",
            started_at_ms=_ms(at),
            ended_at_ms=_ms(at + timedelta(seconds=20)),
            people=(
                PersonSighting(face_id="f1", name="Anna", unknown=False),
                PersonSighting(face_id="f2"),
            ),
            plates=(PlateReading(text="AB 123"),),
            incident=Incident(
                incident_id="inc-who",
                update=False,
                camera_ids=("porch",),
                started_at_ms=_ms(at),
                alert=True,
            ),
        ),
    )
    for _ in range(2):
        (event,) = await _get_events(hass)
        assert event["people"] == ["Anna", "unknown person"]
        assert event["unknown_person"] is True
        assert event["plates"] == ["AB 123"]
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await _setup(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_logbook_lines(hass: HomeAssistant, mock_config_entry: MockConfigEntry) -> None:
    """A security event reads as the camera reporting a risk, linked to its event entity;
    one that was held back says why."""
    entry = mock_config_entry
    await _setup(hass, entry)
    described: dict[str, Callable[[Event], dict[str, Any]]] = {}

    def _describe(
        domain: str, event_type: str, describe: Callable[[Event], dict[str, Any]]
    ) -> None:
        assert domain == DOMAIN
        described[event_type] = describe

    logbook.async_describe_events(hass, _describe)
    line = described[EVENT_SECURITY](
        Event(
            EVENT_SECURITY,
            {
                "entry_id": entry.entry_id,
                "camera_id": "garden",
                "camera_name": "Garden",
                "risk_level": "high",
                "summary": "A person at the shed",
                "alert": False,
                "alert_reason": "quiet_hours",
            },
        )
    )
    event_entity = er.async_get(hass).async_get_entity_id(
        "event", DOMAIN, f"{entry.unique_id}_garden_security_event"
    )
    assert line == {
        "name": "Garden",
        "message": "reported a high risk event: A person at the shed (no alert: quiet hours)",
        "entity_id": event_entity,
    }
    ended = described[EVENT_INCIDENT_ENDED](
        Event(EVENT_INCIDENT_ENDED, {"entry_id": entry.entry_id, "camera_ids": ["garden"]})
    )
    assert ended == {"name": "garden", "message": "incident ended"}
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_snapshot_image_serves_only_snapshots(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
) -> None:
    """After a restart the image shows the camera's newest snapshot from the history, but
    never a file outside the snapshot folder that a forged bus event named."""
    entry = mock_config_entry
    await _setup(hass, entry)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a snapshot")
    hass.bus.async_fire(
        EVENT_SECURITY,
        {
            "entry_id": entry.entry_id,
            "event_id": "forged",
            "camera_id": "porch",
            "risk_level": "low",
            "started_at": dt_util.utcnow().isoformat(),
            "snapshot_path": str(secret),
        },
    )
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await _setup(hass, entry)
    image = er.async_get(hass).async_get_entity_id(
        "image", DOMAIN, f"{entry.unique_id}_porch_snapshot"
    )
    assert image is not None
    client = await hass_client()
    response = await client.get(f"/api/image_proxy/{image}")
    assert response.status != 200
    assert b"not a snapshot" not in await response.read()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
