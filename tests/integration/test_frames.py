"""Tests for the frame pipeline's bookkeeping with the spool."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import MagicMock

from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import FrameIn
from custom_components.home_security_ai.const import DOMAIN, signal_new_camera
from custom_components.home_security_ai.frames import FramePipeline
from custom_components.home_security_ai.spool import FrameSpool


def _frame(ref: str, size: int = 100) -> FrameIn:
    return FrameIn(
        camera_id="garden",
        image=ref.encode() * size,
        client_ref=ref,
        captured_at_ms=0,
        content_sha256=ref * 64,
    )


async def test_spooled_frames_are_bounded(hass: HomeAssistant, tmp_path: Path) -> None:
    """When the spool is full, the oldest frame is evicted, counted and kept from sending."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="server")
    entry.add_to_hass(hass)
    spool = FrameSpool(hass, entry.entry_id, tmp_path / "spool", max_bytes=250, max_age_s=3600)
    pipeline = FramePipeline(hass, entry, MagicMock(), MagicMock(), spool)
    spool.on_evict = pipeline.async_frame_evicted
    new_cameras: list[str] = []
    async_dispatcher_connect(hass, signal_new_camera(entry.entry_id), new_cameras.append)

    for ref in ("a", "b", "c"):
        assert await pipeline.async_submit(_frame(ref))

    assert new_cameras == ["garden"]
    assert pipeline.pending_count == 2
    assert spool.frame_count == 2
    assert pipeline.counters.dropped == 1
    assert pipeline.cameras["garden"].frames_sent == 3
    assert pipeline.cameras["garden"].frames_dropped == 1
    assert {frame.sha256 for frame in spool.frames()} == {"b" * 64, "c" * 64}
