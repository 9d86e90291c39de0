"""Event entities: one per camera, triggered by every stored security event."""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client import SecurityEvent
from .entity import HomeSecurityAICameraEntity, async_add_per_camera
from .events.camera_links import snapshot_url
from .events.payload import audit_payload, dwell_payload, enrichment_payload, incident_payload
from .runtime import HomeSecurityAIConfigEntry
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
    whether the event should page someone. The event type is the level after the household's
    rules (alerts/arming.py): `raw_risk_level` keeps the sidecar's, and `escalated`, `alert_reason`
    and the other assessment fields say what the rules did.
    """

    # The summary can be long; the recorder keeps only the small attributes.
    _unrecorded_attributes = frozenset({"summary"})

    @callback
    def _handle_event(self, event: object) -> None:
        if not isinstance(event, SecurityEvent):
            return
        attributes = {
            "summary": event.summary[:255],
            "risk_score": event.risk_score,
            "event_id": event.event_id,
            "zones": list(event.zones),
            "snapshot_url": (
                snapshot_url(self.hass, self._entry, self.camera_id)
                if self.camera_state.last_snapshot is not None
                else None
            ),
            **audit_payload(event),
            **incident_payload(event),
            **enrichment_payload(event),
            **dwell_payload(event),
        }
        if (assessment := self._entry.runtime_data.arming.assessment_of(event)) is not None:
            attributes.update(assessment.as_data())
        level = attributes.pop("risk_level", risk_level_name(event))
        self._trigger_event(level, attributes)
        self.async_write_ha_state()
