"""The recent security events of one config entry, kept in memory and under .storage.

It follows the entry's bus events (the same ones automations see), so it records exactly what
a user was told. The calendar builds its incidents from it, the `get_events` action searches
it and the image entities find a camera's last snapshot in it after a restart. It is bounded
by age and by count; the recorder remains the place for long-term history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypedDict

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, EVENT_INCIDENT_ENDED, EVENT_SECURITY, STORAGE_VERSION
from ..vocabulary import RISK_LEVELS

KEEP_FOR: Final = timedelta(days=30)
MAX_EVENTS: Final = 5000
# Saving waits this long, so that a burst of events is written once.
SAVE_DELAY: Final = 10.0
# An incident whose end never arrived (a restart in between) is taken as ended this long
# after its last event, so it does not stay open for ever.
OPEN_INCIDENT_LIMIT: Final = timedelta(minutes=30)

# The fields of a bus event the history keeps.
KEPT_FIELDS: Final = (
    "event_id",
    "camera_id",
    "camera_name",
    "kind",
    "started_at",
    "ended_at",
    "created_at",
    "risk_score",
    "risk_level",
    "summary",
    "alert",
    "alert_reason",
    "incident_id",
    "incident_started_at",
    "snapshot_path",
    "snapshot_url",
    "media_content_id",
    # Who was seen and which plates were read, for the incidents card and get_events.
    "people",
    "unknown_person",
    "plates",
)


def signal_history_updated(entry_id: str) -> str:
    """Dispatcher signal sent when the entry's history changed."""
    return f"{DOMAIN}_{entry_id}_history"


class _Stored(TypedDict):
    events: list[dict[str, Any]]
    # Incident id -> when it ended (ISO).
    incidents_ended: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Incident:
    """One incident as the calendar shows it."""

    incident_id: str
    start: datetime
    end: datetime
    cameras: tuple[str, ...]
    highest_level: str
    highest_score: int
    summary: str
    open: bool


def event_time(record: dict[str, Any]) -> datetime:
    """Return when an event happened (its start, else when it was made)."""
    for key in ("started_at", "created_at", "ended_at"):
        if record.get(key) and (parsed := dt_util.parse_datetime(record[key])) is not None:
            return parsed
    return dt_util.utc_from_timestamp(0)


def level_index(level: str | None) -> int:
    """Return a level's rank, lowest first (an unknown level ranks lowest)."""
    return RISK_LEVELS.index(level) if level in RISK_LEVELS else 0


class EventHistory:
    """The entry's recent security events and which incidents have ended."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Start empty; `async_load` reads what was stored."""
        self.hass = hass
        self._entry_id = entry_id
        self._store: Store[_Stored] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.history")
        self._events: list[dict[str, Any]] = []
        self._ended: dict[str, str] = {}
        # Whether something changed since the history was read.
        self._changed_since_load = False

    async def async_load(self) -> Callable[[], None]:
        """Read the stored history and follow the bus; return what stops following it."""
        if (stored := await self._store.async_load()) is not None:
            self._events = list(stored.get("events", []))
            self._ended = dict(stored.get("incidents_ended", {}))
            self._prune()
        remove_security = self.hass.bus.async_listen(EVENT_SECURITY, self._async_security_event)
        remove_ended = self.hass.bus.async_listen(EVENT_INCIDENT_ENDED, self._async_incident_ended)

        @callback
        def _stop() -> None:
            remove_security()
            remove_ended()
            if self._changed_since_load:
                # Written now: a delayed save would be lost with the entry.
                self.hass.async_create_task(self._store.async_save(self._data()))

        return _stop

    # ---- Reading ---------------------------------------------------------------------------

    def events(
        self,
        *,
        camera_ids: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        min_level: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the matching events, newest first."""
        cameras = set(camera_ids) if camera_ids is not None else None
        lowest = level_index(min_level)
        found = []
        for record in reversed(self._events):
            when = event_time(record)
            if cameras is not None and record.get("camera_id") not in cameras:
                continue
            if (start is not None and when < start) or (end is not None and when > end):
                continue
            if level_index(record.get("risk_level")) < lowest:
                continue
            found.append(dict(record))
        return found

    def last_snapshot(self, camera_id: str) -> tuple[str, datetime] | None:
        """Return the path and time of the camera's newest event snapshot, if any."""
        for record in reversed(self._events):
            if record.get("camera_id") == camera_id and record.get("snapshot_path"):
                return str(record["snapshot_path"]), event_time(record)
        return None

    def incidents(self, start: datetime, end: datetime) -> list[Incident]:
        """Return the incidents that overlap `start`..`end`, oldest first."""
        now = dt_util.utcnow()
        grouped: dict[str, list[dict[str, Any]]] = {}
        for record in self._events:
            key = record.get("incident_id") or f"event-{record.get('event_id')}"
            grouped.setdefault(key, []).append(record)
        found = [self._incident(key, records, now) for key, records in grouped.items()]
        return sorted(
            (incident for incident in found if incident.start < end and incident.end > start),
            key=lambda incident: incident.start,
        )

    def _incident(self, key: str, records: list[dict[str, Any]], now: datetime) -> Incident:
        # The sidecar's start of the incident: its earliest event's first frame.
        first = min(
            dt_util.parse_datetime(record.get("incident_started_at") or "") or event_time(record)
            for record in records
        )
        last = max(
            dt_util.parse_datetime(record.get("ended_at") or "") or event_time(record)
            for record in records
        )
        highest = max(
            records, key=lambda r: (level_index(r.get("risk_level")), r.get("risk_score") or 0)
        )
        ended = self._ended.get(key)
        is_open = bool(records[0].get("incident_id")) and ended is None
        if ended is not None:
            end = dt_util.parse_datetime(ended) or last
        elif is_open and now - last < OPEN_INCIDENT_LIMIT:
            end = now  # still going on
        else:
            is_open = False
            end = last
        cameras = dict.fromkeys(r.get("camera_name") or r.get("camera_id") or "" for r in records)
        return Incident(
            incident_id=key,
            start=first,
            # A calendar entry must not end before it starts.
            end=max(end, first + timedelta(seconds=1)),
            cameras=tuple(cameras),
            highest_level=str(highest.get("risk_level") or "low"),
            highest_score=int(highest.get("risk_score") or 0),
            summary=str(highest.get("summary") or ""),
            open=is_open,
        )

    # ---- Recording -------------------------------------------------------------------------

    @callback
    def _async_security_event(self, event: Event) -> None:
        if event.data.get("entry_id") != self._entry_id:
            return
        self._events.append({key: event.data.get(key) for key in KEPT_FIELDS})
        self._changed()

    @callback
    def _async_incident_ended(self, event: Event) -> None:
        if event.data.get("entry_id") != self._entry_id or not event.data.get("incident_id"):
            return
        ended = event.data.get("ended_at") or dt_util.utcnow().isoformat()
        self._ended[str(event.data["incident_id"])] = str(ended)
        self._changed()

    @callback
    def _changed(self) -> None:
        self._changed_since_load = True
        self._prune()
        self._store.async_delay_save(self._data, SAVE_DELAY)
        async_dispatcher_send(self.hass, signal_history_updated(self._entry_id))

    def _prune(self) -> None:
        oldest = dt_util.utcnow() - KEEP_FOR
        self._events = [r for r in self._events if event_time(r) >= oldest][-MAX_EVENTS:]
        incidents = {r.get("incident_id") for r in self._events}
        self._ended = {key: at for key, at in self._ended.items() if key in incidents}

    def _data(self) -> _Stored:
        return {"events": self._events, "incidents_ended": self._ended}
