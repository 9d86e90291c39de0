"""Binary sensors of the sidecar: connectivity and GPU availability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client import ServerStatus
from .coordinator import HomeSecurityAIConfigEntry
from .entity import HomeSecurityAIConnectionEntity, HomeSecurityAIServerEntity

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ServerBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes a binary sensor fed by the sidecar's status."""

    value_fn: Callable[[ServerStatus], bool]


CONNECTIVITY = BinarySensorEntityDescription(
    key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)

SERVER_BINARY_SENSORS: tuple[ServerBinarySensorEntityDescription, ...] = (
    ServerBinarySensorEntityDescription(
        key="gpu_available",
        translation_key="gpu_available",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.gpu.available,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sidecar's binary sensors."""
    async_add_entities(
        [
            HomeSecurityAIConnectivitySensor(entry, CONNECTIVITY),
            *(
                HomeSecurityAIServerBinarySensor(entry, description)
                for description in SERVER_BINARY_SENSORS
            ),
        ]
    )


class HomeSecurityAIConnectivitySensor(HomeSecurityAIConnectionEntity, BinarySensorEntity):
    """On while the frame stream to the sidecar is up."""

    @property
    def is_on(self) -> bool:
        """Return whether the sidecar is connected."""
        return self.pipeline.connected


class HomeSecurityAIServerBinarySensor(HomeSecurityAIServerEntity, BinarySensorEntity):
    """A binary sensor fed by the sidecar's status."""

    entity_description: ServerBinarySensorEntityDescription

    @property
    def is_on(self) -> bool:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.coordinator.data)
