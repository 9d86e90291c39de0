"""Sensors: objects and security events per camera; the sidecar's detector, latency, queue,
GPU; the frame spool; the snapshots and clips kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory, UnitOfInformation, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .cameras import CameraState
from .client import LanguageModelState, ServerStatus
from .const import signal_media_updated, signal_spool_updated
from .delivery.spool import FrameSpool
from .entity import (
    HomeSecurityAICameraEntity,
    HomeSecurityAIEntity,
    HomeSecurityAIServerEntity,
    async_add_per_camera,
    server_device_info,
)
from .runtime import HomeSecurityAIConfigEntry

MAX_STATE_LENGTH = 255

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ServerSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of the sidecar."""

    value_fn: Callable[[ServerStatus], StateType]
    exists_fn: Callable[[ServerStatus], bool] = lambda _: True
    attributes_fn: Callable[[ServerStatus], dict[str, Any] | None] = lambda _: None


@dataclass(frozen=True, kw_only=True)
class CameraSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of a monitored camera."""

    value_fn: Callable[[CameraState], StateType]
    attributes_fn: Callable[[CameraState], dict[str, Any] | None] = lambda _: None


def _language_model_state(state: LanguageModelState) -> str:
    """Return the sensor's state; "unknown" is Home Assistant's own state, not an option."""
    if state is LanguageModelState.UNKNOWN:
        return "not_reported"
    return state.value


def _detector_name(status: ServerStatus) -> str | None:
    name = status.detector.name or None
    if name is not None and status.detector.fallback:
        return f"{name} (fallback)"
    return name


def _latency(stage: str, field: str) -> Callable[[ServerStatus], StateType]:
    def _value(status: ServerStatus) -> StateType:
        stats = status.stage_latency.get(stage)
        if stats is None or stats.count == 0:
            return None
        return float(getattr(stats, field))

    return _value


SERVER_SENSORS: tuple[ServerSensorEntityDescription, ...] = (
    ServerSensorEntityDescription(
        key="detector",
        translation_key="detector",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=_detector_name,
        attributes_fn=lambda status: {
            "backend": status.detector.backend,
            "device": status.detector.device,
            "fallback_reason": status.detector.fallback_reason or None,
        },
    ),
    ServerSensorEntityDescription(
        key="language_model",
        translation_key="language_model",
        device_class=SensorDeviceClass.ENUM,
        options=[_language_model_state(state) for state in LanguageModelState],
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: _language_model_state(status.language_model.state),
        attributes_fn=lambda status: {
            "backend": status.language_model.backend or None,
            "model": status.language_model.model or None,
            "endpoint": status.language_model.endpoint or None,
            "reason": status.language_model.reason or None,
            "restarts": status.language_model.restarts,
            "analyses": status.language_model.analyses,
            "fallbacks": status.language_model.fallbacks,
            "queue_depth": status.language_model.queue_depth,
            "authority": status.language_model.authority or None,
            "authority_reason": status.language_model.authority_reason or None,
            "text_not_used": status.language_model.replaced,
        },
    ),
    ServerSensorEntityDescription(
        key="model_memory",
        translation_key="model_memory",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        device_class=SensorDeviceClass.DATA_SIZE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfInformation.MEBIBYTES,
        suggested_display_precision=0,
        value_fn=lambda status: status.model_zoo.used_bytes / 2**20,
        attributes_fn=lambda status: {
            "budget_mib": round(status.model_zoo.budget_bytes / 2**20),
            "loaded": [model.key for model in status.model_zoo.loaded],
            "registered": status.model_zoo.registered,
        },
    ),
    ServerSensorEntityDescription(
        key="inference_latency",
        translation_key="inference_latency",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        suggested_display_precision=0,
        value_fn=_latency("inference", "p50_ms"),
    ),
    ServerSensorEntityDescription(
        key="total_latency_p95",
        translation_key="total_latency_p95",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
        value_fn=_latency("total", "p95_ms"),
    ),
    ServerSensorEntityDescription(
        key="queue_depth",
        translation_key="queue_depth",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda status: status.queue_depth,
    ),
    ServerSensorEntityDescription(
        # The key is part of the entity's unique id: it keeps its spelling.
        key="frames_analysed",
        translation_key="frames_analysed",
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.frames.accepted,
    ),
    ServerSensorEntityDescription(
        key="frames_rejected",
        translation_key="frames_rejected",
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.frames.rejected,
    ),
    ServerSensorEntityDescription(
        key="gpu_utilization",
        translation_key="gpu_utilization",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        exists_fn=lambda status: bool(status.gpu.devices),
        value_fn=lambda status: (
            status.gpu.devices[0].utilization_percent if status.gpu.devices else None
        ),
    ),
)


@dataclass(frozen=True, kw_only=True)
class SpoolSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of the frame spool."""

    value_fn: Callable[[FrameSpool], StateType]


def _summary(camera: CameraState) -> str | None:
    if camera.last_event is None:
        return None
    return camera.last_event.summary[:MAX_STATE_LENGTH]


def _summary_attributes(camera: CameraState) -> dict[str, Any] | None:
    event = camera.last_event
    if event is None:
        return None
    return {
        "event_id": event.event_id,
        "reasoning": event.reasoning,
        "recommended_action": event.recommended_action,
        "scene_description": event.scene_description or None,
        "snapshot_path": camera.last_snapshot,
    }


CAMERA_SENSORS: tuple[CameraSensorEntityDescription, ...] = (
    CameraSensorEntityDescription(
        key="objects",
        translation_key="objects",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda camera: len(camera.detections) if camera.last_image else None,
        attributes_fn=lambda camera: camera.label_counts,
    ),
    CameraSensorEntityDescription(
        key="last_risk_score",
        translation_key="last_risk_score",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda camera: (
            camera.last_event.risk_score if camera.last_event is not None else None
        ),
    ),
    CameraSensorEntityDescription(
        key="last_summary",
        translation_key="last_summary",
        value_fn=_summary,
        attributes_fn=_summary_attributes,
    ),
)

EVENTS_TODAY = SensorEntityDescription(
    key="events_today",
    translation_key="events_today",
    state_class=SensorStateClass.TOTAL_INCREASING,
)

SPOOL_SENSORS: tuple[SpoolSensorEntityDescription, ...] = (
    SpoolSensorEntityDescription(
        key="spool_usage",
        translation_key="spool_usage",
        entity_registry_enabled_default=False,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=1,
        value_fn=lambda spool: spool.usage_percent,
    ),
    SpoolSensorEntityDescription(
        key="spool_frames",
        translation_key="spool_frames",
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda spool: spool.frame_count,
    ),
)

MEDIA_FILES = SensorEntityDescription(
    key="media_files",
    translation_key="media_files",
    state_class=SensorStateClass.MEASUREMENT,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sidecar's sensors and the sensors of every camera."""
    status = entry.runtime_data.coordinator.data
    async_add_entities(
        HomeSecurityAIServerSensor(entry, description)
        for description in SERVER_SENSORS
        if description.exists_fn(status)
    )
    async_add_entities(
        HomeSecurityAISpoolSensor(entry, description) for description in SPOOL_SENSORS
    )
    async_add_entities([HomeSecurityAIMediaFilesSensor(entry, MEDIA_FILES)])

    @callback
    def _add_camera(camera_id: str) -> None:
        async_add_entities(
            [
                *(
                    HomeSecurityAICameraSensor(entry, description, camera_id)
                    for description in CAMERA_SENSORS
                ),
                HomeSecurityAIEventsTodaySensor(entry, EVENTS_TODAY, camera_id),
            ]
        )

    async_add_per_camera(hass, entry, _add_camera)


class HomeSecurityAIServerSensor(HomeSecurityAIServerEntity, SensorEntity):
    """A sensor of the sidecar."""

    entity_description: ServerSensorEntityDescription

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return a few extra details."""
        return self.entity_description.attributes_fn(self.coordinator.data)


class HomeSecurityAICameraSensor(HomeSecurityAICameraEntity, SensorEntity):
    """A sensor of a monitored camera."""

    entity_description: CameraSensorEntityDescription
    # The texts of the last event can be long; the recorder keeps the state only.
    _unrecorded_attributes = frozenset(
        {"reasoning", "recommended_action", "scene_description", "snapshot_path"}
    )

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.camera_state)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the sensor's extra details."""
        return self.entity_description.attributes_fn(self.camera_state)


class HomeSecurityAIEventsTodaySensor(HomeSecurityAICameraEntity, RestoreSensor):
    """Security events of the camera since local midnight; survives restarts."""

    async def async_added_to_hass(self) -> None:
        """Restore today's count (the cameras start it afresh at every local midnight)."""
        await super().async_added_to_hass()
        today = dt_util.now().date().isoformat()
        last_state = await self.async_get_last_state()
        last_data = await self.async_get_last_sensor_data()
        if (
            last_state is not None
            and last_data is not None
            and isinstance(last_data.native_value, int | float)
            and dt_util.as_local(last_state.last_updated).date().isoformat() == today
        ):
            self.cameras.async_restore_events_today(
                self.camera_id, today, int(last_data.native_value)
            )

    @property
    def native_value(self) -> int:
        """Return how many security events the camera had today."""
        return self.camera_state.events_on(dt_util.now().date().isoformat())


class HomeSecurityAISpoolSensor(HomeSecurityAIEntity, SensorEntity):
    """How full the frame spool on disk is."""

    entity_description: SpoolSensorEntityDescription

    def __init__(
        self, entry: HomeSecurityAIConfigEntry, description: SpoolSensorEntityDescription
    ) -> None:
        """Attach the sensor to the server device."""
        super().__init__(entry, description, "server")
        self.spool = entry.runtime_data.spool
        self._attr_device_info = server_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the spool."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_spool_updated(self._entry.entry_id), self.async_write_ha_state
            )
        )

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.spool)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the spool's size and what it gave up on."""
        spool = self.spool
        return {
            "frames": spool.frame_count,
            "bytes": spool.used_bytes,
            "max_bytes": spool.max_bytes,
            "evicted": spool.stats.evicted,
            "expired": spool.stats.expired,
            "refused": spool.stats.refused,
        }


class HomeSecurityAIMediaFilesSensor(HomeSecurityAIEntity, SensorEntity):
    """The snapshots and clips kept in the media folder, as counted by the daily clean-up."""

    def __init__(
        self, entry: HomeSecurityAIConfigEntry, description: SensorEntityDescription
    ) -> None:
        """Attach the sensor to the server device."""
        super().__init__(entry, description, "server")
        self.media = entry.runtime_data.media
        self._attr_device_info = server_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the clean-ups."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_media_updated(self._entry.entry_id), self.async_write_ha_state
            )
        )

    @property
    def native_value(self) -> StateType:
        """Return how many snapshots and clips the last clean-up kept."""
        return None if self.media.last is None else self.media.last.files

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return their size, what the last clean-up deleted, and the retention."""
        last = self.media.last
        return {
            "size_mib": None if last is None else round(last.bytes / 2**20, 1),
            "deleted": None if last is None else last.deleted,
            "retention_days": self.media.retention_days,
            "last_cleanup": self.media.last_run.isoformat() if self.media.last_run else None,
        }
