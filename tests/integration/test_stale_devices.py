"""A camera taken out of the options loses its device; cameras still fed keep theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.const import (
    CONF_CAMERAS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_UPLOAD_FOLDERS,
    DOMAIN,
)

from .conftest import TEST_CAMERA, PorchCamera, device_by_identifier, make_entry, wait_for
from .sidecar_process import Sidecar


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def _camera_devices(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, dr.DeviceEntry]:
    prefix = f"{entry.unique_id}_"
    return {
        identifier.removeprefix(prefix): device
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        for domain, identifier in device.identifiers
        if domain == DOMAIN and identifier.startswith(prefix)
    }


async def _update_options(
    hass: HomeAssistant, entry: MockConfigEntry, **changes: Any
) -> None:
    hass.config_entries.async_update_entry(entry, options={**entry.options, **changes})
    await hass.async_block_till_done()


async def test_removed_camera_and_folder_lose_their_devices(
    hass: HomeAssistant, shared_sidecar: Sidecar, porch_camera: PorchCamera, tmp_path: Path
) -> None:
    """The camera entity and the folder of a root taken out go, with their entities; a folder
    that another root still holds, and the server, stay."""
    old_root, kept_root = tmp_path / "old", tmp_path / "kept"
    for folder in (old_root / "Garden", old_root / "Shed", kept_root / "Shed"):
        folder.mkdir(parents=True)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(
        shared_sidecar,
        {
            CONF_CAMERAS: [TEST_CAMERA],
            CONF_SNAPSHOT_INTERVAL: 0,
            CONF_UPLOAD_FOLDERS: [str(old_root), str(kept_root)],
        },
    )
    await _setup(hass, entry)
    watcher = entry.runtime_data.upload_watcher
    await wait_for(hass, lambda: {"garden", "shed"} <= watcher.cameras, "the folder scan")
    await hass.async_block_till_done()
    before = _camera_devices(hass, entry)
    assert set(before) == {"porch", "garden", "shed"}
    porch_entities = er.async_entries_for_device(er.async_get(hass), before["porch"].id)
    assert porch_entities

    await _update_options(hass, entry, **{CONF_CAMERAS: [], CONF_UPLOAD_FOLDERS: [str(kept_root)]})

    after = _camera_devices(hass, entry)
    assert set(after) == {"shed"}
    assert after["shed"].id == before["shed"].id
    registry = dr.async_get(hass)
    assert registry.async_get(before["porch"].id) is None
    assert registry.async_get(before["garden"].id) is None
    assert device_by_identifier(hass, entry.entry_id, (DOMAIN, shared_sidecar.server_id))
    entities = er.async_get(hass)
    assert not [e for e in porch_entities if entities.async_get(e.entity_id) is not None]
    # The reloaded entry does not bring them back (once its folder scan has run).
    await wait_for(hass, lambda: "shed" in entry.runtime_data.cameras, "the reloaded scan")
    await hass.async_block_till_done()
    assert set(entry.runtime_data.cameras) == {"shed"}
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_unreadable_root_keeps_folder_cameras(
    hass: HomeAssistant, shared_sidecar: Sidecar, tmp_path: Path
) -> None:
    """A remaining root that cannot be read now is no proof that a folder is gone."""
    old_root, missing_root = tmp_path / "old", tmp_path / "share"
    (old_root / "Garden").mkdir(parents=True)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(shared_sidecar, {CONF_UPLOAD_FOLDERS: [str(old_root)]})
    await _setup(hass, entry)
    watcher = entry.runtime_data.upload_watcher
    await wait_for(hass, lambda: "garden" in watcher.cameras, "the folder scan")
    await hass.async_block_till_done()
    garden = _camera_devices(hass, entry)["garden"]

    await _update_options(hass, entry, **{CONF_UPLOAD_FOLDERS: [str(missing_root)]})

    assert dr.async_get(hass).async_get(garden.id) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_camera_with_spooled_frames_keeps_its_device(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """Frames still waiting for analysis need their camera's device for their events."""
    entry = make_entry(sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    await _setup(hass, entry)
    porch = _camera_devices(hass, entry)["porch"]
    await hass.async_add_executor_job(sidecar.stop)
    await entry.runtime_data.camera_source.async_snapshot(TEST_CAMERA)
    assert entry.runtime_data.spool.frame_count == 1

    await _update_options(hass, entry, **{CONF_CAMERAS: []})

    assert dr.async_get(hass).async_get(porch.id) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
