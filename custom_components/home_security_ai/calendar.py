"""The incidents calendar: one entry per incident, on the server device.

The calendar and timeline cards show a day at a glance: when something happened, on which
cameras, and how serious it got. Incidents come from the event history (history/store.py); one still
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
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .entity import HomeSecurityAIEntity, server_device_info
from .history.store import Incident, signal_history_updated
from .runtime import HomeSecurityAIConfigEntry

PARALLEL_UPDATES = 0

# The state's open incident ends this far ahead: the calendar schedules its next update at
# the end, and an end of exactly "now" would make it update without pause.
OPEN_STATE_AHEAD: Final = timedelta(minutes=1)

DESCRIPTION = CalendarEntityDescription(key="incidents", translation_key="incidents")

# Where the calendar's texts lie in the translations (strings.json).
_COMMON: Final = f"component.{DOMAIN}.common"
_LEVELS: Final = f"component.{DOMAIN}.selector.actual_level.options"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSecurityAIConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the incidents calendar of the entry."""
    async_add_entities([IncidentCalendar(entry)])


def calendar_event(incident: Incident, texts: dict[str, str]) -> CalendarEvent:
    """Return an incident as a calendar entry, in the words of `texts` (see _async_texts)."""

    def text(key: str, **placeholders: str) -> str:
        return texts.get(f"{_COMMON}.{key}", key).format(**placeholders)

    cameras = ", ".join(incident.cameras)
    level = texts.get(f"{_LEVELS}.{incident.highest_level}", incident.highest_level)
    lines = [
        text("incident_highest_risk", level=level, score=str(incident.highest_score)),
        text("incident_cameras", cameras=cameras),
    ]
    if incident.summary:
        lines.append(incident.summary)
    return CalendarEvent(
        start=dt_util.as_local(incident.start),
        end=dt_util.as_local(incident.end),
        summary=text("incident_summary", level=level, cameras=cameras),
        description="\n".join(lines),
        location=cameras,
        uid=incident.incident_id,
    )


async def _async_texts(hass: HomeAssistant) -> dict[str, str]:
    """The calendar's words and the risk levels' names, in the language of the server."""
    texts: dict[str, str] = {}
    for category in ("common", "selector"):
        texts.update(
            await async_get_translations(hass, hass.config.language, category, {DOMAIN})
        )
    return texts


class IncidentCalendar(HomeSecurityAIEntity, CalendarEntity):
    """Every incident of the last 30 days."""

    def __init__(self, entry: HomeSecurityAIConfigEntry) -> None:
        """Attach the calendar to the server device."""
        super().__init__(entry, DESCRIPTION, "server")
        self._attr_device_info = server_device_info(entry)
        self._history = entry.runtime_data.history
        self._texts: dict[str, str] = {}

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
        return calendar_event(latest, self._texts)

    async def async_get_events(
        self, hass: HomeAssistant, start_date: datetime, end_date: datetime
    ) -> list[CalendarEvent]:
        """Return the incidents between the two dates."""
        texts = await _async_texts(hass)
        return [
            calendar_event(incident, texts)
            for incident in self._history.incidents(start_date, end_date)
        ]

    async def async_added_to_hass(self) -> None:
        """Follow the history."""
        self._texts = await _async_texts(self.hass)
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, signal_history_updated(self._entry.entry_id), self._handle_update
            )
        )

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()
