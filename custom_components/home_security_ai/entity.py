"""Base entities of Home Security AI."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .cameras import CameraState
from .compat import via_device_info
from .const import (
    DOMAIN,
    signal_camera_updated,
    signal_connection,
    signal_event,
    signal_new_camera,
)
from .coordinator import HomeSecurityAIStatusCoordinator
from .delivery.connection import ConnectionSupervisor
from .runtime import HomeSecurityAIConfigEntry

MANUFACTURER = "Home Security AI"


def async_add_per_camera(
    hass: HomeAssistant, entry: HomeSecurityAIConfigEntry, add: Callable[[str], None]
) -> None:
    """Call `add` for every camera now and for each camera that appears later."""
    for camera_id in list(entry.runtime_data.cameras):
        add(camera_id)
    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_camera(entry.entry_id), add))


def camera_of_device(hass: HomeAssistant, device_id: str) -> tuple[str, str] | None:
    """Return the config entry id and camera id of a camera device, None for other devices."""
    registry = dr.async_get(hass)
    device = registry.async_get(device_id)
    if device is None:
        return None
    for entry in hass.config_entries.async_entries(DOMAIN):
        # By the entry's devices: how a device names its entries differs by release.
        if device not in dr.async_entries_for_config_entry(registry, entry.entry_id):
            continue
        prefix = f"{entry.unique_id or entry.entry_id}_"
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith(prefix):
                return entry.entry_id, identifier.removeprefix(prefix)
    return None


def server_device_info(entry: HomeSecurityAIConfigEntry) -> DeviceInfo:
    """Return the device of the sidecar itself."""
    status = entry.runtime_data.coordinator.data
    return DeviceInfo(
        identifiers={(DOMAIN, _server_key(entry))},
        name=entry.title,
        manufacturer=MANUFACTURER,
        model="Inference server",
        sw_version=(status.version or None) if status is not None else None,
    )


def _server_key(entry: HomeSecurityAIConfigEntry) -> str:
    return entry.unique_id or entry.entry_id


class HomeSecurityAIEntity(Entity):
    """Common base: entity naming and unique ids."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        entry: HomeSecurityAIConfigEntry,
        description: EntityDescription,
        scope: str,
    ) -> None:
        """Set the description and a unique id `<server id>_<scope>_<key>`."""
        self.entity_description = description
        self._entry = entry
        self._attr_unique_id = f"{_server_key(entry)}_{scope}_{description.key}"


class HomeSecurityAIServerEntity(
    HomeSecurityAIEntity, CoordinatorEntity[HomeSecurityAIStatusCoordinator]
):
    """An entity of the sidecar device fed by the status coordinator."""

    def __init__(self, entry: HomeSecurityAIConfigEntry, description: EntityDescription) -> None:
        """Attach the entity to the server device."""
        CoordinatorEntity.__init__(self, entry.runtime_data.coordinator)
        HomeSecurityAIEntity.__init__(self, entry, description, "server")
        self._attr_device_info = server_device_info(entry)


class HomeSecurityAIConnectionEntity(HomeSecurityAIEntity):
    """An entity of the sidecar device fed by the connection's state."""

    def __init__(self, entry: HomeSecurityAIConfigEntry, description: EntityDescription) -> None:
        """Attach the entity to the server device."""
        super().__init__(entry, description, "server")
        self.connection: ConnectionSupervisor = entry.runtime_data.connection
        self._attr_device_info = server_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the connection state."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_connection(self._entry.entry_id), self._handle_update
            )
        )

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()


class HomeSecurityAICameraEntity(HomeSecurityAIEntity):
    """An entity of one monitored camera, pushed by the camera's state."""

    def __init__(
        self,
        entry: HomeSecurityAIConfigEntry,
        description: EntityDescription,
        camera_id: str,
    ) -> None:
        """Attach the entity to the camera's device."""
        super().__init__(entry, description, camera_id)
        self.connection: ConnectionSupervisor = entry.runtime_data.connection
        self.cameras = entry.runtime_data.cameras
        self.camera_id = camera_id
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"{_server_key(entry)}_{camera_id}")},
            name=self.camera_state.name,
            manufacturer=MANUFACTURER,
            model="Monitored camera",
            **via_device_info(entry.runtime_data.server_device_id, (DOMAIN, _server_key(entry))),
        )

    @property
    def camera_state(self) -> CameraState:
        """Return the camera's latest state; an empty one once the camera is forgotten (its
        entities may still be asked, e.g. for the state they leave to be restored)."""
        state = self.cameras.get(self.camera_id)
        return state if state is not None else CameraState(camera_id=self.camera_id, name="")

    @property
    def available(self) -> bool:
        """Return whether the sidecar is reachable and the camera still known (its device may
        be on its way out: the camera is forgotten before its entities are removed)."""
        return self.connection.connected and self.camera_id in self.cameras

    async def async_added_to_hass(self) -> None:
        """Follow new frames of this camera and the connection state."""
        await super().async_added_to_hass()
        entry_id = self._entry.entry_id
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_camera_updated(entry_id, self.camera_id), self._handle_update
            )
        )
        self.async_on_remove(
            async_dispatcher_connect(self.hass, signal_connection(entry_id), self._handle_update)
        )
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_event(entry_id, self.camera_id), self._handle_event
            )
        )

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()

    @callback
    def _handle_event(self, _event: object) -> None:
        self.async_write_ha_state()
