"""Camera entities that depend on the clock: threat active, events today (restored, reset)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from custom_components.home_security_ai.client import EventKind, RiskLevel, SecurityEvent
from custom_components.home_security_ai.const import DEFAULT_THREAT_MINUTES

from .conftest import make_entry
from .sidecar_process import Sidecar

THREAT = "binary_sensor.porch_threat_active"
EVENTS_TODAY = "sensor.porch_security_events_today"


async def _wait_frozen(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, predicate: Any, what: str
) -> None:
    """Wait for the real sidecar while the clock is frozen: sleep in a worker thread (real
    time) and move the frozen clock along by as much, so the loop's timers run too."""
    for _ in range(1200):
        if predicate():
            return
        await hass.async_add_executor_job(time.sleep, 0.05)
        freezer.tick(timedelta(seconds=0.05))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    pytest.fail(f"Timed out waiting for {what}")


async def _setup(
    hass: HomeAssistant, sidecar: Sidecar, freezer: FrozenDateTimeFactory
) -> MockConfigEntry:
    entry = make_entry(sidecar)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _wait_frozen(hass, freezer, lambda: entry.runtime_data.events.subscribed, "events")
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    return entry


async def _handle(entry: MockConfigEntry, level: RiskLevel, score: int) -> None:
    events = entry.runtime_data.events
    sequence = events.last_sequence + 1
    # The sidecar never wrote this event, so it would refuse its acknowledgement.
    with patch.object(entry.runtime_data.client, "ack_events", AsyncMock(return_value=0)):
        await events.async_handle(
            SecurityEvent(
                sequence=sequence,
                event_id=f"event-{sequence}",
                camera_id="porch",
                kind=EventKind.SECURITY,
                risk_score=score,
                risk_level=level,
                summary="Someone at the door",
            )
        )


def _restore_events_today(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, count: int, age: timedelta
) -> None:
    """Make it noon, with `count` events today last written `age` ago before a restart.

    Noon of tomorrow, so the frozen clock never runs behind the real one: gRPC turns a
    call's timeout into a deadline on the frozen clock, and one in the real past has
    already expired."""
    noon = dt_util.start_of_local_day(dt_util.now() + timedelta(days=1)) + timedelta(hours=12)
    freezer.move_to(noon)
    state = State(EVENTS_TODAY, str(count), last_updated=noon - age)
    extra = {"native_value": count, "native_unit_of_measurement": None}
    mock_restore_cache_with_extra_data(hass, [(state, extra)])


async def test_threat_active_turns_off_after_its_time(
    hass: HomeAssistant, sidecar: Sidecar, freezer: FrozenDateTimeFactory
) -> None:
    """A high-risk event turns "threat active" on; it goes off by itself; low risk never."""
    entry = await _setup(hass, sidecar, freezer)
    assert hass.states.get(THREAT).state == STATE_OFF

    await _handle(entry, RiskLevel.LOW, 10)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == STATE_OFF

    await _handle(entry, RiskLevel.CRITICAL, 92)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == STATE_ON

    freezer.tick(timedelta(minutes=DEFAULT_THREAT_MINUTES) - timedelta(seconds=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == STATE_ON

    freezer.tick(timedelta(seconds=10))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(THREAT).state == STATE_OFF

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_events_today_restored_and_reset_at_midnight(
    hass: HomeAssistant, sidecar: Sidecar, freezer: FrozenDateTimeFactory
) -> None:
    """Today's count survives a restart, counts on, and starts over at local midnight."""
    _restore_events_today(hass, freezer, 3, timedelta(hours=1))
    entry = await _setup(hass, sidecar, freezer)
    assert hass.states.get(EVENTS_TODAY).state == "3"

    await _handle(entry, RiskLevel.MEDIUM, 40)
    await hass.async_block_till_done()
    assert hass.states.get(EVENTS_TODAY).state == "4"

    freezer.move_to(dt_util.start_of_local_day() + timedelta(days=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(EVENTS_TODAY).state == "0"

    await _handle(entry, RiskLevel.LOW, 5)
    await hass.async_block_till_done()
    assert hass.states.get(EVENTS_TODAY).state == "1"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_events_today_from_an_earlier_day_is_not_restored(
    hass: HomeAssistant, sidecar: Sidecar, freezer: FrozenDateTimeFactory
) -> None:
    """Yesterday's count is not carried into today."""
    _restore_events_today(hass, freezer, 7, timedelta(days=1))
    entry = await _setup(hass, sidecar, freezer)
    assert hass.states.get(EVENTS_TODAY).state == "0"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
