"""Binary sensors: the sidecar's connectivity and GPU; whether a camera has an active threat.

The threat follows the household's alert decision (alerts/arming.py), not the sidecar's level alone:
an event that alerts at high or critical turns it on; see `vocabulary.is_threat`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from .client import ServerStatus
from .entity import (
    HomeSecurityAICameraEntity,
    HomeSecurityAIConnectionEntity,
    HomeSecurityAIServerEntity,
    async_add_per_camera,
)
from .runtime import HomeSecurityAIConfigEntry

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


THREAT_ACTIVE = BinarySensorEntityDescription(
    key="threat_active",
    translation_key="threat_active",
    device_class=BinarySensorDeviceClass.SAFETY,
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

    @callback
    def _add_camera(camera_id: str) -> None:
        async_add_entities([HomeSecurityAIThreatSensor(entry, THREAT_ACTIVE, camera_id)])

    async_add_per_camera(hass, entry, _add_camera)


class HomeSecurityAIConnectivitySensor(HomeSecurityAIConnectionEntity, BinarySensorEntity):
    """On while the frame stream to the sidecar is up."""

    @property
    def is_on(self) -> bool:
        """Return whether the sidecar is connected."""
        return self.connection.connected


class HomeSecurityAIServerBinarySensor(HomeSecurityAIServerEntity, BinarySensorEntity):
    """A binary sensor fed by the sidecar's status."""

    entity_description: ServerBinarySensorEntityDescription

    @property
    def is_on(self) -> bool:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.coordinator.data)


class HomeSecurityAIThreatSensor(HomeSecurityAICameraEntity, BinarySensorEntity):
    """On while an alert of the camera at high or critical is recent; a timer turns it off.

    Updates of its incident (and cooldown events) at high or above keep it on; events held
    back while disarmed, in quiet hours or below the camera's minimum level do not turn it on.
    """

    _cancel_timer: CALLBACK_TYPE | None = None

    async def async_added_to_hass(self) -> None:
        """Cancel the timer on removal."""
        await super().async_added_to_hass()
        self.async_on_remove(self._async_cancel_timer)

    @property
    def is_on(self) -> bool:
        """Return whether a threat is active."""
        return self.camera_state.threat_active(dt_util.now())

    @callback
    def _handle_event(self, _event: object) -> None:
        self._async_cancel_timer()
        until = self.camera_state.threat_until
        if until is not None and (remaining := (until - dt_util.now()).total_seconds()) > 0:
            self._cancel_timer = async_call_later(self.hass, remaining, self._async_expired)
        self.async_write_ha_state()

    @callback
    def _async_expired(self, _now: Any) -> None:
        self._cancel_timer = None
        self.async_write_ha_state()

    @callback
    def _async_cancel_timer(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer()
            self._cancel_timer = None
