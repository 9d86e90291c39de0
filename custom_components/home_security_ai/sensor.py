"""Sensors: objects per camera and the sidecar's detector, latency, queue and GPU."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .client import ServerStatus
from .const import signal_new_camera
from .coordinator import HomeSecurityAIConfigEntry
from .entity import HomeSecurityAICameraEntity, HomeSecurityAIServerEntity
from .frames import CameraState

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
        key="inference_latency",
        translation_key="inference_latency",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        suggested_display_precision=0,
        value_fn=_latency("inference", "p50_ms"),
    ),
    ServerSensorEntityDescription(
        key="total_latency_p95",
        translation_key="total_latency_p95",
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
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda status: status.queue_depth,
    ),
    ServerSensorEntityDescription(
        key="frames_analysed",
        translation_key="frames_analysed",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.frames.accepted,
    ),
    ServerSensorEntityDescription(
        key="frames_rejected",
        translation_key="frames_rejected",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.frames.rejected,
    ),
    ServerSensorEntityDescription(
        key="gpu_utilization",
        translation_key="gpu_utilization",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        exists_fn=lambda status: bool(status.gpu.devices),
        value_fn=lambda status: (
            status.gpu.devices[0].utilization_percent if status.gpu.devices else None
        ),
    ),
)

CAMERA_SENSORS: tuple[CameraSensorEntityDescription, ...] = (
    CameraSensorEntityDescription(
        key="objects",
        translation_key="objects",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda camera: len(camera.detections) if camera.last_image else None,
        attributes_fn=lambda camera: camera.label_counts,
    ),
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

    @callback
    def _add_camera(camera_id: str) -> None:
        async_add_entities(
            HomeSecurityAICameraSensor(entry, description, camera_id)
            for description in CAMERA_SENSORS
        )

    for camera_id in list(entry.runtime_data.pipeline.cameras):
        _add_camera(camera_id)
    entry.async_on_unload(
        async_dispatcher_connect(hass, signal_new_camera(entry.entry_id), _add_camera)
    )


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

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.camera_state)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the number of objects per label."""
        return self.entity_description.attributes_fn(self.camera_state)
