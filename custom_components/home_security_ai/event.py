"""Event entities: one per camera, triggered by every stored security event."""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client import SecurityEvent
from .coordinator import HomeSecurityAIConfigEntry
from .entity import HomeSecurityAICameraEntity, async_add_per_camera
from .event_stream import enrichment_payload, incident_payload
from .vocabulary import RISK_LEVELS, risk_level_name

PARALLEL_UPDATES = 0

DESCRIPTION = EventEntityDescription(
    key="security_event",
    translation_key="security_event",
    event_types=list(RISK_LEVELS),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add an event entity per camera, now and whenever one appears."""

    @callback
    def _add(camera_id: str) -> None:
        async_add_entities([HomeSecurityAIEventEntity(entry, DESCRIPTION, camera_id)])

    async_add_per_camera(hass, entry, _add)


class HomeSecurityAIEventEntity(HomeSecurityAICameraEntity, EventEntity):
    """Fires with the risk level of every security event of the camera.

    An incident's later events fire too, with `incident_update` true and the same
    `incident_id`, so a notification can be replaced rather than repeated; `alert` says
    whether the event should page someone.
    """

    # The summary can be long; the recorder keeps only the small attributes.
    _unrecorded_attributes = frozenset({"summary"})

    @callback
    def _handle_event(self, event: object) -> None:
        if not isinstance(event, SecurityEvent):
            return
        self._trigger_event(
            risk_level_name(event),
            {
                "summary": event.summary[:255],
                "risk_score": event.risk_score,
                "event_id": event.event_id,
                "audit_notes": list(event.audit_notes),
                **incident_payload(event),
                **enrichment_payload(event),
            },
        )
        self.async_write_ha_state()
