"""Removing the entry, or a camera's device, leaves nothing behind that the user did not keep."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.entity_component import async_update_entity
from homeassistant.helpers.storage import Store

from custom_components.home_security_ai import async_remove_config_entry_device
from custom_components.home_security_ai.const import (
    CONF_UPLOAD_FOLDERS,
    DOMAIN,
    signal_camera_updated,
)

from .conftest import device_by_identifier, make_entry, wait_for
from .sidecar_process import Sidecar


def _settled(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - 5
    os.utime(path, (past, past))


async def test_removing_the_entry_deletes_its_files(
    hass: HomeAssistant,
    shared_sidecar: Sidecar,
    photo: bytes,
    hass_storage: dict[str, Any],
    spool_and_media_dirs: Path,
) -> None:
    """The spool and every file the entry stored under .storage go with the entry."""
    tmp_path = spool_and_media_dirs
    uploads = tmp_path / "uploads"
    _settled(uploads / "Garden" / "a.jpg", photo)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(shared_sidecar, {CONF_UPLOAD_FOLDERS: [str(uploads)]})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    watcher = entry.runtime_data.upload_watcher
    await wait_for(hass, lambda: watcher.files_sent == 1, "the upload")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    # The event cursor is stored once an event arrived; store one as if it had.
    events: Store[dict[str, Any]] = Store(hass, 1, f"{DOMAIN}.{entry.entry_id}.events")
    await events.async_save({"sequence": 1})
    stored = {key for key in hass_storage if key.startswith(f"{DOMAIN}.{entry.entry_id}.")}
    assert stored == {
        f"{DOMAIN}.{entry.entry_id}.{name}" for name in ("events", "uploads", "camera_ids")
    }
    spool = spool_and_media_dirs / "spool" / entry.entry_id
    assert spool.exists()

    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not [key for key in hass_storage if key.startswith(f"{DOMAIN}.{entry.entry_id}.")]
    assert not spool.exists()


async def test_removing_a_camera_device(
    hass: HomeAssistant, shared_sidecar: Sidecar, photo: bytes, tmp_path: Path
) -> None:
    """The server device and cameras still fed by a source stay; a gone camera's device goes."""
    uploads = tmp_path / "uploads"
    _settled(uploads / "Garden" / "a.jpg", photo)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(shared_sidecar, {CONF_UPLOAD_FOLDERS: [str(uploads)]})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(hass, lambda: "garden" in data.upload_watcher.cameras, "the scan")
    data.cameras.async_register("old_porch", "Old porch")  # fed by nothing any more
    await hass.async_block_till_done()

    server_id = shared_sidecar.server_id
    devices = {
        key: device_by_identifier(hass, entry.entry_id, (DOMAIN, identifier))
        for key, identifier in (
            ("server", server_id),
            ("garden", f"{server_id}_garden"),
            ("old_porch", f"{server_id}_old_porch"),
        )
    }
    assert all(devices.values()), devices
    removable = {
        key: await async_remove_config_entry_device(hass, entry, device)
        for key, device in devices.items()
        if device is not None
    }
    assert removable == {"server": False, "garden": False, "old_porch": True}
    assert "old_porch" not in data.cameras
    # Until Home Assistant removes the device, its entities are there, unavailable.
    async_dispatcher_send(hass, signal_camera_updated(entry.entry_id, "old_porch"))
    for entity in er.async_entries_for_device(er.async_get(hass), devices["old_porch"].id):
        await async_update_entity(hass, entity.entity_id)
    await hass.async_block_till_done()
    porch_entities = er.async_entries_for_device(er.async_get(hass), devices["old_porch"].id)
    assert porch_entities
    assert all(hass.states.get(e.entity_id).state == "unavailable" for e in porch_entities)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
