"""The incidents calendar: one entry per incident, on the server device.

The calendar and timeline cards show a day at a glance: when something happened, on which
cameras, and how serious it got. Incidents come from the event history (history.py); one still
going on ends "now".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from homeassistant.components.calendar import (
    CalendarEntity,
    CalendarEntityDescription,
    CalendarEvent,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .coordinator import HomeSecurityAIConfigEntry
from .entity import HomeSecurityAIEntity, server_device_info
from .history import Incident, signal_history_updated

PARALLEL_UPDATES = 0

# The state's open incident ends this far ahead: the calendar schedules its next update at
# the end, and an end of exactly "now" would make it update without pause.
OPEN_STATE_AHEAD: Final = timedelta(minutes=1)

DESCRIPTION = CalendarEntityDescription(key="incidents", translation_key="incidents")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the incidents calendar of the entry."""
    async_add_entities([IncidentCalendar(entry)])


def calendar_event(incident: Incident) -> CalendarEvent:
    """Return an incident as a calendar entry."""
    cameras = ", ".join(incident.cameras)
    lines = [
        f"Highest risk: {incident.highest_level} ({incident.highest_score})",
        f"Cameras: {cameras}",
    ]
    if incident.summary:
        lines.append(incident.summary)
    return CalendarEvent(
        start=dt_util.as_local(incident.start),
        end=dt_util.as_local(incident.end),
        summary=f"{incident.highest_level.capitalize()} risk: {cameras}",
        description="\n".join(lines),
        location=cameras,
        uid=incident.incident_id,
    )


class IncidentCalendar(HomeSecurityAIEntity, CalendarEntity):
    """Every incident of the last 30 days."""

    def __init__(self, entry: HomeSecurityAIConfigEntry) -> None:
        """Attach the calendar to the server device."""
        super().__init__(entry, DESCRIPTION, "server")
        self._attr_device_info = server_device_info(entry)
        self._history = entry.runtime_data.history

    @property
    def event(self) -> CalendarEvent | None:
        """Return the incident going on now, else the latest one."""
        now = dt_util.utcnow()
        incidents = self._history.incidents(dt_util.utc_from_timestamp(0), now)
        if not incidents:
            return None
        latest = incidents[-1]
        if latest.open:
            latest = replace(latest, end=now + OPEN_STATE_AHEAD)
        return calendar_event(latest)

    async def async_get_events(
        self, hass: HomeAssistant, start_date: datetime, end_date: datetime
    ) -> list[CalendarEvent]:
        """Return the incidents between the two dates."""
        return [
            calendar_event(incident) for incident in self._history.incidents(start_date, end_date)
        ]

    async def async_added_to_hass(self) -> None:
        """Follow the history."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_history_updated(self._entry.entry_id), self._handle_update
            )
        )

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()
