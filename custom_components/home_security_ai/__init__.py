"""The Home Security AI integration."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .client import HomeSecurityAIClient
from .const import (
    CONF_CAMERAS,
    CONF_MOTION_SENSORS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_UPLOAD_FOLDERS,
    DEFAULT_SNAPSHOT_INTERVAL,
    DOMAIN,
    RECONNECT_BACKOFF_MAX,
)
from .coordinator import (
    HomeSecurityAIConfigEntry,
    HomeSecurityAIData,
    HomeSecurityAIStatusCoordinator,
)
from .entity import server_device_info
from .frames import FramePipeline
from .sources import CameraEntitySource, UploadFolderWatcher

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.CAMERA, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> bool:
    """Connect to the sidecar and start sending frames."""
    client = HomeSecurityAIClient(
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data[CONF_TOKEN],
        max_reconnect_backoff=RECONNECT_BACKOFF_MAX,
    )
    # Unload callbacks also run when setup fails, and they run last-in first-out,
    # so the channel is closed after everything that uses it has stopped.
    entry.async_on_unload(client.close)
    coordinator = HomeSecurityAIStatusCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()

    pipeline = FramePipeline(hass, entry, client, coordinator)
    options = entry.options
    entry.runtime_data = HomeSecurityAIData(
        client=client,
        coordinator=coordinator,
        pipeline=pipeline,
        camera_source=CameraEntitySource(
            hass,
            entry,
            pipeline,
            cameras=list(options.get(CONF_CAMERAS, [])),
            interval=int(options.get(CONF_SNAPSHOT_INTERVAL, DEFAULT_SNAPSHOT_INTERVAL)),
            motion_sensors=dict(options.get(CONF_MOTION_SENSORS, {})),
        ),
        upload_watcher=UploadFolderWatcher(
            hass, entry, pipeline, list(options.get(CONF_UPLOAD_FOLDERS, []))
        ),
    )
    entry.runtime_data.server_device_id = (
        dr.async_get(hass)
        .async_get_or_create(config_entry_id=entry.entry_id, **server_device_info(entry))
        .id
    )
    entry.runtime_data.camera_source.async_start()

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    entry.async_create_background_task(hass, pipeline.async_run(), f"{DOMAIN} frame stream")
    await entry.runtime_data.upload_watcher.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> bool:
    """Stop sending frames and disconnect."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.upload_watcher.async_stop()
    return unloaded


async def _async_options_updated(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> None:
    """Reload so that new options take effect."""
    hass.config_entries.async_schedule_reload(entry.entry_id)
