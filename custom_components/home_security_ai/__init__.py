"""The Home Security AI integration."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.helpers.typing import ConfigType

from .alerts.arming import Arming
from .cameras import Cameras
from .client import HomeSecurityAIClient, HomeSecurityAIError
from .const import (
    ALERT_OPTIONS,
    CONF_CAMERAS,
    CONF_MOTION_SENSORS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_THREAT_MINUTES,
    CONF_TLS_CERTIFICATE,
    CONF_UPLOAD_FOLDERS,
    CONF_ZONES,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_THREAT_MINUTES,
    DOMAIN,
    MEDIA_OPTIONS,
    RECONNECT_BACKOFF_MAX,
    SPOOL_EXPIRE_INTERVAL,
    SPOOL_MAX_AGE,
    SPOOL_MAX_BYTES,
    STORAGE_VERSION,
)
from .coordinator import HomeSecurityAIStatusCoordinator
from .delivery import spool as spool_module
from .delivery.connection import ConnectionSupervisor
from .delivery.frame_stream import FrameStream
from .delivery.spool import FrameSpool
from .entity import server_device_info
from .events.event_stream import EventStream
from .frontend import async_register_card
from .history.store import EventHistory
from .media.incident_clips import async_make_clips_when_incidents_end
from .media.media_retention import MediaRetention, async_remove_media
from .runtime import HomeSecurityAIConfigEntry, HomeSecurityAIData
from .services import async_setup_services
from .sources.camera_entities import CameraEntitySource
from .sources.camera_ids import CameraIds
from .sources.uploads import UploadFolderWatcher
from .stale_devices import async_remove_devices_of_removed_cameras

# What each entry keeps under .storage besides its spool (see events/event_stream.py and
# sources/uploads.py).
STORED_SUFFIXES = ("events", "uploads", "camera_ids", "history")

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.CALENDAR,
    Platform.CAMERA,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions and its dashboard card."""
    async_setup_services(hass)
    await async_register_card(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> bool:
    """Connect to the sidecar, reload the spool and start sending frames and taking events."""
    client = HomeSecurityAIClient(
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data[CONF_TOKEN],
        max_reconnect_backoff=RECONNECT_BACKOFF_MAX,
        tls_certificate=entry.data.get(CONF_TLS_CERTIFICATE),
    )
    # Unload callbacks also run when setup fails, and they run last-in first-out,
    # so the channel is closed after everything that uses it has stopped.
    entry.async_on_unload(client.close)
    coordinator = HomeSecurityAIStatusCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()

    spool = FrameSpool(
        hass,
        entry.entry_id,
        spool_module.spool_directory(hass, entry.entry_id),
        max_bytes=SPOOL_MAX_BYTES,
        max_age_s=SPOOL_MAX_AGE.total_seconds(),
    )
    options = entry.options
    cameras = Cameras(
        hass,
        entry.entry_id,
        threat_duration=timedelta(
            minutes=float(options.get(CONF_THREAT_MINUTES, DEFAULT_THREAT_MINUTES))
        ),
    )
    entry.async_on_unload(cameras.async_shutdown)
    entry.async_on_unload(cameras.async_track_days())
    camera_ids = CameraIds(hass, entry.entry_id)
    await camera_ids.async_load()
    arming = Arming(hass, entry)
    entry.async_on_unload(arming.async_shutdown)
    history = EventHistory(hass, entry.entry_id)
    events = EventStream(hass, entry, client, spool, cameras, arming=arming)
    frames = FrameStream(
        hass,
        entry,
        client,
        coordinator,
        spool=spool,
        cameras=cameras,
        event_stored=events.event_stored,
        analysis_enabled=arming.analysis_enabled,
    )
    connection = ConnectionSupervisor(hass, entry, client, coordinator)
    entry.runtime_data = HomeSecurityAIData(
        client=client,
        coordinator=coordinator,
        connection=connection,
        cameras=cameras,
        spool=spool,
        frames=frames,
        events=events,
        camera_source=CameraEntitySource(
            hass,
            entry,
            frames,
            cameras,
            camera_ids,
            cameras=list(options.get(CONF_CAMERAS, [])),
            interval=int(options.get(CONF_SNAPSHOT_INTERVAL, DEFAULT_SNAPSHOT_INTERVAL)),
            motion_sensors=dict(options.get(CONF_MOTION_SENSORS, {})),
            analysis_enabled=arming.analysis_enabled,
        ),
        upload_watcher=UploadFolderWatcher(
            hass,
            entry,
            frames,
            cameras,
            camera_ids,
            roots=list(options.get(CONF_UPLOAD_FOLDERS, [])),
        ),
        arming=arming,
        media=MediaRetention(hass, entry),
        history=history,
        applied_options=dict(options),
    )
    entry.runtime_data.server_device_id = (
        dr.async_get(hass)
        .async_get_or_create(config_entry_id=entry.entry_id, **server_device_info(entry))
        .id
    )
    await spool.async_load()
    await events.async_load()
    entry.async_on_unload(await history.async_load())
    for camera_id in sorted({frame.camera_id for frame in spool.frames()}):
        cameras.async_register(camera_id, camera_id)
    entry.runtime_data.camera_source.async_start()

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    # Frames first: theirs is the connection the entities show.
    connection.async_start(frames, events)

    async def _expire(_now: Any) -> None:
        await spool.async_expire()

    entry.async_on_unload(
        async_track_time_interval(
            hass, _expire, SPOOL_EXPIRE_INTERVAL, name=f"{DOMAIN} spool expiry"
        )
    )
    await entry.runtime_data.upload_watcher.async_start()
    entry.runtime_data.media.async_start()
    async_make_clips_when_incidents_end(hass, entry, entry.runtime_data.media.async_media_written)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> bool:
    """Stop sending frames and disconnect; the spool stays on disk."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.upload_watcher.async_stop()
        # The streams end their calls before the channel closes (an unload callback), so that
        # no call of grpc.aio is left waiting for a status from a closed channel.
        await entry.runtime_data.connection.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> None:
    """Delete everything a removed entry kept: its spool, its stored state and (unless an
    option keeps them) its snapshots and clips."""
    await hass.async_add_executor_job(
        spool_module.remove_spool, spool_module.spool_directory(hass, entry.entry_id)
    )
    for suffix in STORED_SUFFIXES:
        store: Store[Any] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.{suffix}")
        await store.async_remove()
    await async_remove_media(hass, entry)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: HomeSecurityAIConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let a camera's device be deleted once nothing feeds that camera any more."""
    server_key = entry.unique_id or entry.entry_id
    camera_ids = {
        identifier.removeprefix(f"{server_key}_")
        for domain, identifier in device.identifiers
        if domain == DOMAIN and identifier != server_key
    }
    if not camera_ids:
        return False  # the server device goes with the entry
    if entry.state is not ConfigEntryState.LOADED:
        return True
    data = entry.runtime_data
    in_use = (
        set(data.camera_source.camera_ids.values())
        | data.upload_watcher.cameras
        | {frame.camera_id for frame in data.spool.frames()}
    )
    if camera_ids & in_use:
        return False
    for camera_id in camera_ids:
        data.cameras.async_remove(camera_id)
    return True


async def _async_options_updated(hass: HomeAssistant, entry: HomeSecurityAIConfigEntry) -> None:
    """Send new zones right away; alert rules apply to the next event, media options to the
    next clean-up; reload for the rest."""
    data = entry.runtime_data
    live = {CONF_ZONES, *ALERT_OPTIONS, *MEDIA_OPTIONS}
    before = {key: value for key, value in data.applied_options.items() if key not in live}
    after = {key: value for key, value in entry.options.items() if key not in live}
    if before != after:
        await async_remove_devices_of_removed_cameras(hass, entry, data.applied_options)
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    changed = [
        camera_id
        for camera_id in set(data.applied_options.get(CONF_ZONES, {}))
        | set(entry.options.get(CONF_ZONES, {}))
        if data.applied_options.get(CONF_ZONES, {}).get(camera_id)
        != entry.options.get(CONF_ZONES, {}).get(camera_id)
    ]
    data.applied_options = dict(entry.options)
    if changed and data.events.subscribed:
        # On failure they are sent again on the next connect.
        with contextlib.suppress(HomeSecurityAIError):
            await data.events.async_configure(sorted(changed))
