"""Tests for the frame pipeline's bookkeeping."""

from __future__ import annotations

from unittest.mock import MagicMock

from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import FrameIn
from custom_components.home_security_ai.const import DOMAIN, signal_new_camera
from custom_components.home_security_ai.frames import FramePipeline


def _frame(ref: str) -> FrameIn:
    return FrameIn(camera_id="garden", image=b"x", client_ref=ref, captured_at_ms=0)


async def test_pending_frames_are_bounded(hass: HomeAssistant) -> None:
    """When too many frames wait, the oldest is dropped, counted and reported."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="server")
    entry.add_to_hass(hass)
    pipeline = FramePipeline(hass, entry, MagicMock(), MagicMock(), max_pending=2)
    new_cameras: list[str] = []
    async_dispatcher_connect(hass, signal_new_camera(entry.entry_id), new_cameras.append)
    dropped: list[str] = []

    for ref in ("a", "b", "c"):
        pipeline.async_submit(_frame(ref), on_drop=lambda ref=ref: dropped.append(ref))

    assert new_cameras == ["garden"]
    assert pipeline.pending_count == 2
    assert pipeline.counters.dropped == 1
    assert dropped == ["a"]
    assert pipeline.cameras["garden"].frames_sent == 3
    assert pipeline.cameras["garden"].frames_dropped == 1
