"""Security events: one long-lived SubscribeEvents stream from the sidecar's outbox.

Events are handled strictly in order. A security event gets an annotated snapshot in the
media folder, is fired on the bus and updates its camera's entities; then (for every event)
the frames it covers leave the spool, the sequence is stored and the event acknowledged, so
that the sidecar drops it from its outbox. An event at or below the stored sequence was
handled before and is skipped. On every connect the cameras' settings are sent first.

The stored sequence belongs to one outbox (its id is stored with it). When the sidecar's
outbox is another one, or its sequences start over, or it refuses an acknowledgement as
beyond its outbox (FAILED_PRECONDITION), the cursor is void: it goes back to 0 and every
unacknowledged event is taken again. Events already fired are then recognised by their
event_id (a small, bounded memory stored with the sequence) and not fired again.

Firing the bus event, releasing the frames and storing the sequence run as one step that a
cancellation (the entry unloading) does not interrupt, so a fired event is always stored.
The order is fire, release, store. The bus event is delivered at least once, not exactly
once: firing and storing cannot be one atomic step, so a crash (power loss, kill) after the
bus event fired and before the sequence reached the disk fires it again after the restart.
Storing first would instead lose the event in that crash.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect, async_dispatcher_send
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .annotate import annotate_jpeg
from .client import (
    AuthFailed,
    EventKind,
    FailedPrecondition,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    NotSupported,
    RiskLevel,
    SecurityEvent,
)
from .const import (
    DOMAIN,
    EVENT_SECURITY,
    RECONNECT_BACKOFF_INITIAL,
    RECONNECT_BACKOFF_MAX,
    RISK_LEVELS,
    SNAPSHOT_FOLDER,
    STORAGE_VERSION,
    signal_event,
    signal_new_camera,
)
from .limits import MAX_CAMERAS
from .zones import camera_settings

if TYPE_CHECKING:
    from .coordinator import HomeSecurityAIConfigEntry
    from .frames import CameraState, FramePipeline

_LOGGER = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# Event ids of the most recently handled events, so that an event taken again after the cursor
# was reset (another outbox, or one that started over) is not fired twice.
RECENT_EVENT_IDS: Final = 256


class _StoredEvents(TypedDict, total=False):
    last_sequence: int
    # The sidecar outbox `last_sequence` counts in ("" while unknown).
    outbox_id: str
    recent_event_ids: list[str]


def risk_level_name(event: SecurityEvent) -> str:
    """Return the event's risk level as an event type, from its score when unspecified."""
    if event.risk_level != RiskLevel.UNSPECIFIED:
        return event.risk_level.name.lower()
    score = event.risk_score
    if score >= 85:
        return "critical"
    if score >= 60:
        return "high"
    return "medium" if score >= 30 else "low"


def _iso(ms: int) -> str | None:
    return dt_util.utc_from_timestamp(ms / 1000).isoformat() if ms else None


def event_payload(
    entry_id: str, event: SecurityEvent, snapshot: Path | None, media_root: Path
) -> dict[str, Any]:
    """Return the bus event's data: the whole event in plain JSON types."""
    media_id: str | None = None
    if snapshot is not None:
        relative = snapshot.relative_to(media_root).as_posix()
        media_id = f"media-source://media_source/local/{relative}"
    return {
        "entry_id": entry_id,
        "sequence": event.sequence,
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "kind": event.kind.name.lower(),
        "started_at": _iso(event.started_at_ms),
        "ended_at": _iso(event.ended_at_ms),
        "created_at": _iso(event.created_at_ms),
        "risk_score": event.risk_score,
        "risk_level": risk_level_name(event),
        "summary": event.summary,
        "reasoning": event.reasoning,
        "recommended_action": event.recommended_action,
        "detections": [
            {
                "label": det.detection.label,
                "confidence": round(det.detection.confidence, 4),
                "box": [
                    det.detection.box.x1,
                    det.detection.box.y1,
                    det.detection.box.x2,
                    det.detection.box.y2,
                ],
                "frame_sha256": det.frame_sha256,
                "zones": list(det.zones),
            }
            for det in event.detections
        ],
        "zones": list(event.zones),
        "frame_sha256s": list(event.frame_sha256s),
        "fast_path": event.fast_path,
        "fallback": event.fallback,
        "fallback_reason": event.fallback_reason,
        "model": event.model,
        "prompt_version": event.prompt_version,
        "scene_change": event.scene_change.name.lower(),
        "anomaly_score": round(event.anomaly_score, 4),
        "snapshot_path": str(snapshot) if snapshot is not None else None,
        "media_content_id": media_id,
    }


def media_root(hass: HomeAssistant) -> Path:
    """Return Home Assistant's local media folder."""
    return Path(hass.config.media_dirs.get("local") or hass.config.path("media"))


def _save_snapshot(path: Path, image: bytes, detections: list[Any]) -> None:
    """Draw the boxes and write the snapshot atomically (runs in the executor)."""
    data = annotate_jpeg(image, detections)  # a JPEG in every case, as the name says
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class EventStream:
    """Receives, stores and acknowledges the sidecar's events."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HomeSecurityAIConfigEntry,
        client: HomeSecurityAIClient,
        pipeline: FramePipeline,
        *,
        threat_minutes: float,
    ) -> None:
        """Set up an idle stream; `async_load` reads the stored sequence."""
        self.hass = hass
        self._entry = entry
        self._client = client
        self._pipeline = pipeline
        self.threat_duration = timedelta(minutes=threat_minutes)
        self._store: Store[_StoredEvents] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.events"
        )
        self.last_sequence = 0
        self.outbox_id = ""
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self.events_received = 0
        self.events_skipped = 0
        self.security_events = 0
        self.connected = False
        self.last_error: str | None = None
        self._unsupported_logged = False
        pipeline.event_stored = self.event_stored

    async def async_load(self) -> None:
        """Read the sequence of the last stored event, its outbox and the recent event ids."""
        stored = await self._store.async_load()
        if stored is not None:
            self.last_sequence = int(stored.get("last_sequence", 0))
            self.outbox_id = str(stored.get("outbox_id", ""))
            for event_id in stored.get("recent_event_ids", [])[-RECENT_EVENT_IDS:]:
                self._recent_ids[str(event_id)] = None

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

    async def async_run(self) -> None:
        """Keep one event stream open until cancelled."""
        unsub = async_dispatcher_connect(
            self.hass, signal_new_camera(self._entry.entry_id), self._async_new_camera
        )
        backoff = RECONNECT_BACKOFF_INITIAL
        try:
            while True:
                try:
                    await self._async_subscribe()
                except AuthFailed:
                    # The frame stream starts reauthentication.
                    self.connected = False
                    return
                except FailedPrecondition as err:
                    # The sidecar refused an acknowledgement: the cursor is not of its outbox
                    # (or beyond its end). Take its events again from the start.
                    self.connected = False
                    self.last_error = str(err)
                    _LOGGER.warning(
                        "The sidecar refused the event cursor (sequence %s of outbox %s): %s; "
                        "taking its events from the start",
                        self.last_sequence,
                        self.outbox_id or "unknown",
                        err,
                    )
                    await self._async_reset_cursor("")
                    backoff = RECONNECT_BACKOFF_INITIAL
                    continue
                except NotSupported as err:
                    self.connected = False
                    self.last_error = str(err)
                    if not self._unsupported_logged:
                        self._unsupported_logged = True
                        _LOGGER.warning("The sidecar sends no security events: %s", err)
                    backoff = RECONNECT_BACKOFF_MAX
                except HomeSecurityAIError as err:
                    if self.connected:
                        _LOGGER.warning("Lost the event stream from the sidecar: %s", err)
                    else:
                        _LOGGER.debug("Event stream still down: %s", err)
                    self.connected = False
                    self.last_error = str(err)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff, RECONNECT_BACKOFF_INITIAL) * 2, RECONNECT_BACKOFF_MAX)
        finally:
            unsub()

    async def _async_subscribe(self) -> None:
        status = await self._client.get_status()
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
        events = self._client.subscribe_events(self.last_sequence)
        self.connected = True
        self.last_error = None
        _LOGGER.debug("Receiving events after sequence %s", self.last_sequence)
        async for event in events:
            await self.async_handle(event)
        raise HomeSecurityAIError("The sidecar closed the event stream")

    async def async_configure(self, camera_ids: list[str] | None = None) -> None:
        """Send the settings (zones, windows) of the given cameras, or of all known ones."""
        cameras = self._pipeline.cameras
        wanted = list(cameras) if camera_ids is None else camera_ids
        named = [
            (camera_id, cameras[camera_id].name if camera_id in cameras else camera_id)
            for camera_id in wanted
        ]
        if not named:
            return
        if len(named) > MAX_CAMERAS:
            _LOGGER.warning(
                "The sidecar keeps settings (zones, windows) for %s cameras; %s cameras beyond "
                "that are analysed with its defaults",
                MAX_CAMERAS,
                len(named) - MAX_CAMERAS,
            )
            named = named[:MAX_CAMERAS]
        await self._client.configure(
            camera_settings(self._entry.options, named, self.hass.config.time_zone)
        )

    @callback
    def _async_new_camera(self, camera_id: str) -> None:
        if not self.connected:
            return  # sent with every camera on connect

        async def _configure() -> None:
            try:
                await self.async_configure([camera_id])
            except HomeSecurityAIError as err:
                _LOGGER.debug("Cannot send the settings of camera %s: %s", camera_id, err)

        self._entry.async_create_background_task(
            self.hass, _configure(), f"{DOMAIN} configure {camera_id}"
        )

    async def async_handle(self, event: SecurityEvent) -> None:
        """Store one event, release its frames and acknowledge it."""
        if event.sequence <= self.last_sequence:
            self.events_skipped += 1
            _LOGGER.debug("Skipping event %s: handled before", event.sequence)
            return
        self.events_received += 1
        snapshot: Path | None = None
        fire = event.kind == EventKind.SECURITY and event.event_id not in self._recent_ids
        if event.kind == EventKind.SECURITY and not fire:
            # Taken again after the cursor was reset; it was fired before.
            self.events_skipped += 1
            _LOGGER.debug("Not firing event %s again: handled before", event.event_id)
        if fire:
            snapshot = await self._async_snapshot(event)
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
        # Fire, then release, then store: a crash between firing and storing fires the event
        # again after the restart (at least once); the opposite order could lose it.
        if fire:
            self._async_security_event(event, snapshot)
        await self._pipeline.spool.async_release(event.frame_sha256s)
        self.last_sequence = event.sequence
        self._remember(event.event_id)
        await self._store.async_save(self._data_to_store())

    @callback
    def _async_security_event(self, event: SecurityEvent, snapshot: Path | None) -> None:
        self.security_events += 1
        root = media_root(self.hass)
        self.hass.bus.async_fire(
            EVENT_SECURITY, event_payload(self._entry.entry_id, event, snapshot, root)
        )
        camera = self._pipeline.cameras.get(event.camera_id)
        if camera is None:
            camera = self._pipeline.async_register_camera(event.camera_id, event.camera_id)
        self._update_camera(camera, event, snapshot)
        async_dispatcher_send(self.hass, signal_event(self._entry.entry_id, event.camera_id), event)

    @callback
    def _update_camera(
        self, camera: CameraState, event: SecurityEvent, snapshot: Path | None
    ) -> None:
        now = dt_util.now()
        today = now.date().isoformat()
        if camera.events_day != today:
            camera.events_day = today
            camera.events_today = 0
        camera.events_today += 1
        camera.last_event = event
        camera.last_event_at = now
        camera.last_snapshot = str(snapshot) if snapshot is not None else None
        if RISK_LEVELS.index(risk_level_name(event)) >= RISK_LEVELS.index("high"):
            camera.threat_until = now + self.threat_duration

    async def _async_snapshot(self, event: SecurityEvent) -> Path | None:
        """Save the frame with the most telling detections, boxes drawn; None if none is left."""
        spool = self._pipeline.spool
        by_frame: dict[str, list[Any]] = {}
        for det in event.detections:
            by_frame.setdefault(det.frame_sha256, []).append(det.detection)
        candidates = sorted(
            by_frame,
            key=lambda sha: max(det.confidence for det in by_frame[sha]),
            reverse=True,
        ) + [sha for sha in reversed(event.frame_sha256s) if sha not in by_frame]
        camera = self._pipeline.cameras.get(event.camera_id)
        image: bytes | None = None
        chosen = ""
        for sha in candidates:
            image = await spool.async_read_hash(sha)
            if image is None and camera is not None and camera.last_image is not None:
                frame = spool.get(camera.last_image_ref or "")
                if frame is not None and frame.sha256 == sha:
                    image = camera.last_image
            if image is not None:
                chosen = sha
                break
        if image is None:
            _LOGGER.debug("No frame of event %s is left for a snapshot", event.event_id)
            return None
        path = (
            media_root(self.hass)
            / SNAPSHOT_FOLDER
            / (_SAFE_NAME.sub("_", event.camera_id) or "camera")
            / f"{_SAFE_NAME.sub('_', event.event_id) or event.sequence}.jpg"
        )
        try:
            await self.hass.async_add_executor_job(
                _save_snapshot, path, image, by_frame.get(chosen, [])
            )
        except OSError as err:
            _LOGGER.warning("Cannot save the snapshot of event %s: %s", event.event_id, err)
            return None
        return path


def threat_active(camera: CameraState, now: datetime) -> bool:
    """Return whether a high or critical event happened recently."""
    return camera.threat_until is not None and now < camera.threat_until
