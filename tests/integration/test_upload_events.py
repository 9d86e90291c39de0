"""Upload folders are watched by file-system events: a new upload needs no periodic scan."""

from __future__ import annotations

import os
import time
from pathlib import Path

from homeassistant.core import HomeAssistant

from custom_components.home_security_ai.const import (
    CONF_UPLOAD_FOLDERS,
    UPLOAD_RESCAN_INTERVAL,
)

from .conftest import make_entry, wait_for
from .sidecar_process import Sidecar


def test_the_periodic_rescan_is_only_a_safety_net() -> None:
    assert UPLOAD_RESCAN_INTERVAL.total_seconds() >= 60


async def test_new_upload_is_seen_through_an_event(
    hass: HomeAssistant, shared_sidecar: Sidecar, photo: bytes, tmp_path: Path
) -> None:
    """A photo written after setup is sent with no periodic scan in between; so is one in a
    camera folder created later."""
    uploads = tmp_path / "uploads"
    (uploads / "Gate").mkdir(parents=True)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(shared_sidecar, {CONF_UPLOAD_FOLDERS: [str(uploads)]})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    watcher = entry.runtime_data.upload_watcher
    await wait_for(hass, lambda: "gate" in watcher.cameras, "the first scan")
    assert watcher.files_sent == 0

    (uploads / "Gate" / "a.jpg").write_bytes(photo)
    await wait_for(hass, lambda: watcher.files_sent == 1, "the new upload")

    (uploads / "Drive" / "2026").mkdir(parents=True)
    (uploads / "Drive" / "2026" / "b.jpg").write_bytes(photo + b"\x00")
    await wait_for(hass, lambda: watcher.files_sent == 2, "the upload in a new folder")
    assert "drive" in watcher.cameras

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_no_rapid_rescans_for_a_file_dated_in_the_future(
    hass: HomeAssistant, shared_sidecar: Sidecar, photo: bytes, tmp_path: Path
) -> None:
    """A camera with a wrong clock must not make the watcher re-scan every second."""
    uploads = tmp_path / "uploads"
    future = uploads / "Shed" / "a.jpg"
    future.parent.mkdir(parents=True)
    future.write_bytes(photo)
    later = time.time() + 86_400
    os.utime(future, (later, later))
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(shared_sidecar, {CONF_UPLOAD_FOLDERS: [str(uploads)]})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    watcher = entry.runtime_data.upload_watcher
    await wait_for(hass, lambda: "shed" in watcher.cameras, "the first scan")
    await wait_for(hass, lambda: watcher.follow_up_pending, "the follow-up of a new file")
    await wait_for(hass, lambda: not watcher.follow_up_pending, "the follow-up scan")
    await watcher.async_poll()
    assert not watcher.follow_up_pending
    assert watcher.files_sent == 0

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
