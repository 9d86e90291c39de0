"""The event stream: the sidecar's security events in on one long-lived SubscribeEvents stream.

Events are handled strictly in order: a security event gets an annotated snapshot
(media/snapshots.py), is assessed once by the household's rules (arming.py), is fired on the bus
with that decision and goes to its camera with it (cameras.py); then, for every event, the
frames it covers leave the spool, the sequence is stored and the event is acknowledged. That
is the second half of the delivery protocol (docs/delivery.md), which also explains the cursor
(sequence and outbox id), when it is void, and why the bus event is delivered at least once.
The connection supervisor (delivery/connection.py) opens the stream and reconnects it; on every
connect the cameras' settings are sent first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Final, Protocol, TypedDict

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from ..alerts.arming import Arming
from ..cameras import Cameras
from ..client import (
    EventKind,
    FailedPrecondition,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    NotSupported,
    SecurityEvent,
    ServerStatus,
)
from ..const import (
    DOMAIN,
    EVENT_INCIDENT_ENDED,
    EVENT_SECURITY,
    STORAGE_VERSION,
    signal_new_camera,
)
from ..delivery.connection import Retry
from ..delivery.spool import FrameSpool
from ..media.media_retention import MediaRetention
from ..media.snapshots import async_save_event_snapshot, media_root
from ..vocabulary import MAX_CAMERAS
from ..zones import camera_settings
from .camera_links import camera_links
from .payload import event_payload, iso_time

_LOGGER = logging.getLogger(__name__)

# Event ids of the most recently handled events, so that an event taken again after the cursor
# was reset (another outbox, or one that started over) is not fired twice.
RECENT_EVENT_IDS: Final = 256


class _StoredEvents(TypedDict, total=False):
    last_sequence: int
    # The sidecar outbox `last_sequence` counts in ("" while unknown).
    outbox_id: str
    recent_event_ids: list[str]


class _EntryParts(Protocol):
    """What the stream uses of the entry's runtime data, present once set-up has built it."""

    media: MediaRetention
    coordinator: DataUpdateCoordinator[ServerStatus]


class EventStream:
    """Receives, stores and acknowledges the sidecar's events."""

    name = "event stream"

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: HomeSecurityAIClient,
        spool: FrameSpool,
        cameras: Cameras,
        *,
        arming: Arming | None = None,
    ) -> None:
        """Set up an idle stream; `async_load` reads the stored cursor.

        With `arming`, every security event is assessed by the household's rules (escalation,
        quiet hours, minimum levels) and the bus event carries the outcome.
        """
        self.hass = hass
        self._entry = entry
        self._client = client
        self._spool = spool
        self._cameras = cameras
        self._arming = arming
        self._store: Store[_StoredEvents] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.events"
        )
        self.last_sequence = 0
        self.outbox_id = ""
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self.events_received = 0
        self.events_skipped = 0
        self.security_events = 0
        # Whether the current session has subscribed (settings go out on their own then).
        self.subscribed = False
        self._progressed = False
        self._unsupported_logged = False

    @property
    def progressed(self) -> bool:
        """Return whether the last session subscribed."""
        return self._progressed

    async def async_load(self) -> None:
        """Read the cursor: the last stored sequence, its outbox and the recent event ids."""
        stored = await self._store.async_load()
        if stored is not None:
            self.last_sequence = int(stored.get("last_sequence", 0))
            self.outbox_id = str(stored.get("outbox_id", ""))
            for event_id in stored.get("recent_event_ids", [])[-RECENT_EVENT_IDS:]:
                self._recent_ids[str(event_id)] = None
        self._entry.async_on_unload(
            async_dispatcher_connect(
                self.hass, signal_new_camera(self._entry.entry_id), self._async_new_camera
            )
        )

    def _data_to_store(self) -> _StoredEvents:
        return {
            "last_sequence": self.last_sequence,
            "outbox_id": self.outbox_id,
            "recent_event_ids": list(self._recent_ids),
        }

    def event_stored(self, outbox_id: str, sequence: int) -> bool:
        """Return whether the event `sequence` of outbox `outbox_id` is stored here."""
        same_outbox = bool(outbox_id) and outbox_id == self.outbox_id
        return same_outbox and 0 < sequence <= self.last_sequence

    def _remember(self, event_id: str) -> None:
        if not event_id:
            return
        self._recent_ids[event_id] = None
        self._recent_ids.move_to_end(event_id)
        while len(self._recent_ids) > RECENT_EVENT_IDS:
            self._recent_ids.popitem(last=False)

    async def _async_reset_cursor(self, outbox_id: str) -> None:
        """Void the stored cursor: take every unacknowledged event of `outbox_id` again."""
        self.last_sequence = 0
        self.outbox_id = outbox_id
        await self._store.async_save(self._data_to_store())

    # ---- Sessions (run by the connection supervisor) ----------------------------------------

    async def async_session(self, status: ServerStatus, connected: Callable[[], None]) -> None:
        """Check the cursor against the sidecar's outbox, send the settings, then take events."""
        self._progressed = False
        outbox_id = status.events.outbox_id
        if outbox_id and self.outbox_id and outbox_id != self.outbox_id:
            # Another outbox (its database was lost or replaced): the cursor means nothing there.
            _LOGGER.warning(
                "The sidecar's event outbox is another one (%s, stored %s at sequence %s); "
                "taking its events from the start",
                outbox_id,
                self.outbox_id,
                self.last_sequence,
            )
            await self._async_reset_cursor(outbox_id)
        elif status.events.last_sequence < self.last_sequence:
            # The sidecar lost its outbox (new data folder): its sequences start over.
            _LOGGER.warning(
                "The sidecar's event outbox starts over (sequence %s, stored %s); "
                "taking its events from the start",
                status.events.last_sequence,
                self.last_sequence,
            )
            await self._async_reset_cursor(outbox_id)
        elif outbox_id != self.outbox_id and outbox_id:
            # First contact with an outbox that names itself: the cursor is of this one.
            self.outbox_id = outbox_id
            await self._store.async_save(self._data_to_store())
        await self.async_configure()
        if self.last_sequence:
            # In case the last acknowledgement did not arrive.
            await self._client.ack_events(self.last_sequence, self.outbox_id)
        # Closed here, not whenever it is collected: cancelled while an event is handled,
        # the session must still end its call at once.
        async with aclosing(self._client.subscribe_events(self.last_sequence)) as events:
            self.subscribed = self._progressed = True
            connected()
            _LOGGER.debug("Receiving events after sequence %s", self.last_sequence)
            async for event in events:
                await self.async_handle(event)

    async def async_retry_after(self, err: HomeSecurityAIError) -> Retry:
        """Void a refused cursor and resubscribe at once; wait long for a sidecar without
        events; otherwise reconnect with the usual backoff."""
        self.subscribed = False
        if isinstance(err, FailedPrecondition):
            # The sidecar refused an acknowledgement: the cursor is not of its outbox (or
            # beyond its end). Take its events again from the start.
            _LOGGER.warning(
                "The sidecar refused the event cursor (sequence %s of outbox %s): %s; "
                "taking its events from the start",
                self.last_sequence,
                self.outbox_id or "unknown",
                err,
            )
            await self._async_reset_cursor("")
            return Retry.AT_ONCE
        if isinstance(err, NotSupported):
            if not self._unsupported_logged:
                self._unsupported_logged = True
                _LOGGER.warning("The sidecar sends no security events: %s", err)
            return Retry.SLOWLY
        return Retry.BACKOFF

    @callback
    def async_stopped(self) -> None:
        """Nothing runs between sessions."""
        self.subscribed = False

    async def async_configure(self, camera_ids: list[str] | None = None) -> None:
        """Send the settings (zones, windows) of the given cameras, or of all known ones."""
        cameras = self._cameras
        wanted = list(cameras) if camera_ids is None else camera_ids
        named = [
            (camera_id, state.name if (state := cameras.get(camera_id)) else camera_id)
            for camera_id in wanted
        ]
        if not named:
            return
        if len(named) > MAX_CAMERAS:
            _LOGGER.warning(
                "The sidecar keeps settings (zones, windows) for %s cameras; %s cameras beyond "
                "that are analyzed with its defaults",
                MAX_CAMERAS,
                len(named) - MAX_CAMERAS,
            )
            named = named[:MAX_CAMERAS]
        await self._client.configure(
            camera_settings(self._entry.options, named, self.hass.config.time_zone)
        )

    @callback
    def _async_new_camera(self, camera_id: str) -> None:
        if not self.subscribed:
            return  # sent with every camera on connect

        async def _configure() -> None:
            try:
                await self.async_configure([camera_id])
            except HomeSecurityAIError as err:
                _LOGGER.debug("Cannot send the settings of camera %s: %s", camera_id, err)

        self._entry.async_create_background_task(
            self.hass, _configure(), f"{DOMAIN} configure {camera_id}"
        )

    # ---- One event ---------------------------------------------------------------------------

    async def async_handle(self, event: SecurityEvent) -> None:
        """Store one event, release its frames and acknowledge it."""
        if event.sequence <= self.last_sequence:
            self.events_skipped += 1
            _LOGGER.debug("Skipping event %s: handled before", event.sequence)
            return
        self.events_received += 1
        snapshot: Path | None = None
        announced = event.kind == EventKind.SECURITY or (
            event.kind == EventKind.INCIDENT_ENDED and event.incident is not None
        )
        fire = announced and event.event_id not in self._recent_ids
        if announced and not fire:
            # Taken again after the cursor was reset; it was fired before.
            self.events_skipped += 1
            _LOGGER.debug("Not firing event %s again: handled before", event.event_id)
        if fire and event.kind == EventKind.SECURITY:
            snapshot = await async_save_event_snapshot(
                self.hass, event, self._spool, self._cameras.get(event.camera_id)
            )
            if snapshot is not None:
                self._parts().media.async_media_written()
        # From the bus event to the stored sequence, nothing may stop halfway: an entry task
        # is waited for on unload, and the shield keeps a cancellation of this one out of it.
        commit = self._entry.async_create_task(
            self.hass, self._async_commit(event, snapshot, fire=fire), f"{DOMAIN} store event"
        )
        await asyncio.shield(commit)
        await self._client.ack_events(event.sequence, self.outbox_id)

    async def _async_commit(
        self, event: SecurityEvent, snapshot: Path | None, *, fire: bool
    ) -> None:
        # Fire, then release, then store (docs/delivery.md says why in this order).
        if fire and event.kind == EventKind.SECURITY:
            self._async_security_event(event, snapshot)
        elif fire:
            self._async_incident_ended(event)
        await self._spool.async_release(event.frame_sha256s)
        self.last_sequence = event.sequence
        self._remember(event.event_id)
        await self._store.async_save(self._data_to_store())

    @callback
    def _async_incident_ended(self, event: SecurityEvent) -> None:
        assert event.incident is not None
        self.hass.bus.async_fire(
            EVENT_INCIDENT_ENDED,
            {
                "entry_id": self._entry.entry_id,
                "incident_id": event.incident.incident_id,
                "camera_ids": list(event.incident.camera_ids),
                "started_at": iso_time(event.started_at_ms),
                "ended_at": iso_time(event.ended_at_ms),
            },
        )

    @callback
    def _async_security_event(self, event: SecurityEvent, snapshot: Path | None) -> None:
        self.security_events += 1
        root = media_root(self.hass)
        payload = event_payload(self._entry.entry_id, event, snapshot, root)
        # Where the user finds the camera: for notifications and their actions.
        payload.update(
            camera_links(
                self.hass,
                self._entry,
                event.camera_id,
                self._cameras.get(event.camera_id),
                with_snapshot=snapshot is not None,
            )
        )
        # The household's decision, made once: the bus event (so the device triggers, the
        # blueprint and the logbook), the event entity and the threat sensor all follow it.
        assessment = self._arming.async_assess(event) if self._arming is not None else None
        if assessment is not None:
            # The level automations see, and whether to alert; the sidecar's level stays too.
            payload.update(assessment.as_data())
        self.hass.bus.async_fire(EVENT_SECURITY, payload)
        self._cameras.async_event_stored(event, snapshot, assessment=assessment)
        # The server device's counters (events made, the language model's analyses) follow
        # the events; the coordinator spaces the refreshes out.
        self._entry.async_create_background_task(
            self.hass,
            self._parts().coordinator.async_request_refresh(),
            f"{DOMAIN} status refresh",
        )

    def _parts(self) -> _EntryParts:
        parts: _EntryParts = self._entry.runtime_data
        return parts
