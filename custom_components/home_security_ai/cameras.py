"""The monitored cameras and what the integration knows about each.

`Cameras` is the one owner of camera state: the frame stream, the event stream, the sources
and the sensors report what happened through its methods, and it alone writes the state,
announces new cameras and tells the camera's entities. A `CameraState` is immutable; every
change replaces it, so nothing else can change it by accident.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_call_later, async_track_time_change
from homeassistant.util import dt as dt_util

from .alerts.alerting import AlertDecision, HoldBackReason
from .client import Detection, SecurityEvent
from .const import (
    CAMERA_UPDATE_INTERVAL,
    signal_camera_updated,
    signal_event,
    signal_new_camera,
)
from .vocabulary import is_threat


@dataclass(frozen=True, kw_only=True)
class CameraState:
    """What the integration knows about one monitored camera."""

    camera_id: str
    name: str
    # The last frame the sidecar analyzed, and what it found in it.
    last_image: bytes | None = None
    last_image_ref: str | None = None
    detections: tuple[Detection, ...] = ()
    image_width: int = 0
    image_height: int = 0
    detector: str | None = None
    last_captured: datetime | None = None
    last_analyzed: datetime | None = None
    frames_sent: int = 0
    frames_accepted: int = 0
    frames_duplicate: int = 0
    frames_rejected: int = 0
    frames_dropped: int = 0
    last_reject_reason: str | None = None
    # Security events.
    last_event: SecurityEvent | None = None
    last_event_at: datetime | None = None
    last_snapshot: str | None = None
    events_today: int = 0
    events_day: str | None = None
    # Until when the camera's threat sensor is on: set by events that alert from high up.
    threat_until: datetime | None = None
    # Until when each kind of finding ("person", "tamper", ...) does not alert again.
    cooldowns_until: dict[str, datetime] = field(default_factory=dict)

    @property
    def label_counts(self) -> dict[str, int]:
        """Return how many objects of each label the last frame holds."""
        return dict(Counter(det.label for det in self.detections))

    def threat_active(self, now: datetime) -> bool:
        """Return whether an event alerted at high or critical recently (or its incident's
        updates since)."""
        return self.threat_until is not None and now < self.threat_until

    def events_on(self, day: str) -> int:
        """Return how many security events the camera had on `day` (an ISO date)."""
        return self.events_today if self.events_day == day else 0


class Cameras:
    """Every monitored camera of one config entry; the only writer of their state."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        *,
        threat_duration: timedelta,
        update_interval: float = CAMERA_UPDATE_INTERVAL,
    ) -> None:
        """Start with no cameras; entities hear of new frames at most once per interval."""
        self.hass = hass
        self._entry_id = entry_id
        self.threat_duration = threat_duration
        self._cameras: dict[str, CameraState] = {}
        self._update_interval = update_interval
        # Per camera: when its entities last heard of a frame, and the update still due.
        self._told_at: dict[str, float] = {}
        self._due: dict[str, CALLBACK_TYPE] = {}

    # ---- Reading ---------------------------------------------------------------------------

    def __getitem__(self, camera_id: str) -> CameraState:
        """Return a camera's state."""
        return self._cameras[camera_id]

    def __contains__(self, camera_id: object) -> bool:
        """Return whether the camera is known."""
        return camera_id in self._cameras

    def __iter__(self) -> Iterator[str]:
        """Iterate over the camera ids, in the order the cameras appeared."""
        return iter(list(self._cameras))

    def __len__(self) -> int:
        """Return how many cameras are known."""
        return len(self._cameras)

    def get(self, camera_id: str) -> CameraState | None:
        """Return a camera's state, or None for an unknown camera."""
        return self._cameras.get(camera_id)

    def states(self) -> list[CameraState]:
        """Return the state of every camera."""
        return list(self._cameras.values())

    # ---- Cameras coming and going ----------------------------------------------------------

    @callback
    def async_register(self, camera_id: str, name: str) -> CameraState:
        """Return the camera's state, announcing the camera if it is new."""
        if (state := self._cameras.get(camera_id)) is not None:
            return state
        state = self._cameras[camera_id] = CameraState(camera_id=camera_id, name=name)
        async_dispatcher_send(self.hass, signal_new_camera(self._entry_id), camera_id)
        return state

    @callback
    def async_remove(self, camera_id: str) -> None:
        """Forget a camera whose device was deleted."""
        self._cameras.pop(camera_id, None)
        self._told_at.pop(camera_id, None)
        if (cancel := self._due.pop(camera_id, None)) is not None:
            cancel()

    @callback
    def async_shutdown(self) -> None:
        """Drop the updates still due: the entry is unloading."""
        for cancel in self._due.values():
            cancel()
        self._due.clear()

    # ---- Frames ----------------------------------------------------------------------------

    @callback
    def async_frame_sent(self, camera_id: str) -> None:
        """Count a frame spooled to be sent."""
        state = self.async_register(camera_id, camera_id)
        self._cameras[camera_id] = replace(state, frames_sent=state.frames_sent + 1)

    @callback
    def async_frame_dropped(self, camera_id: str) -> None:
        """Count a frame the spool gave up on."""
        if (state := self._cameras.get(camera_id)) is not None:
            self._cameras[camera_id] = replace(state, frames_dropped=state.frames_dropped + 1)

    @callback
    def async_frame_rejected(self, camera_id: str, reason: str, *, announce: bool = True) -> None:
        """Count a frame that will never be analyzed (the sidecar refused it, or it is too large).

        `announce` tells the camera's entities; a frame refused before sending does not.
        """
        if (state := self._cameras.get(camera_id)) is None:
            if not announce:
                return
            state = self.async_register(camera_id, camera_id)
        self._cameras[camera_id] = replace(
            state, frames_rejected=state.frames_rejected + 1, last_reject_reason=reason
        )
        if announce:
            self._async_updated(camera_id)

    @callback
    def async_frame_analyzed(
        self,
        camera_id: str,
        image: bytes,
        image_ref: str,
        *,
        detections: tuple[Detection, ...] = (),
        width: int = 0,
        height: int = 0,
        detector: str | None = None,
        captured_at: datetime | None = None,
        duplicate: bool = False,
    ) -> None:
        """Show a frame the sidecar analyzed (or recognized as seen before) with its detections."""
        state = self.async_register(camera_id, camera_id)
        self._cameras[camera_id] = replace(
            state,
            frames_accepted=state.frames_accepted + (0 if duplicate else 1),
            frames_duplicate=state.frames_duplicate + (1 if duplicate else 0),
            last_image=image,
            last_image_ref=image_ref,
            detections=detections,
            image_width=width,
            image_height=height,
            detector=detector,
            last_captured=captured_at,
            last_analyzed=dt_util.utcnow(),
        )
        self._async_frame_updated(camera_id)

    # ---- Security events -------------------------------------------------------------------

    @callback
    def async_event_stored(
        self, event: SecurityEvent, snapshot: Path | None, *, assessment: AlertDecision | None
    ) -> None:
        """Count a stored security event of the camera and tell its entities.

        `assessment` is the household's decision on the event (alerts/arming.py), made once for the
        bus event; the threat sensor follows it. Without one (no rules) the threat is left as
        it was.
        """
        state = self.async_register(event.camera_id, event.camera_id)
        now = dt_util.now()
        today = now.date().isoformat()
        threat_until = state.threat_until
        if assessment is not None and is_threat(
            assessment.level,
            alert=assessment.alert,
            held_by_incident=assessment.alert_reason is HoldBackReason.INCIDENT,
            active=state.threat_active(now),
        ):
            threat_until = now + self.threat_duration
        self._cameras[event.camera_id] = replace(
            state,
            events_day=today,
            events_today=state.events_on(today) + 1,
            last_event=event,
            last_event_at=now,
            last_snapshot=str(snapshot) if snapshot is not None else None,
            threat_until=threat_until,
            cooldowns_until=_cooldowns_until(event, now, state.cooldowns_until),
        )
        async_dispatcher_send(self.hass, signal_event(self._entry_id, event.camera_id), event)

    @callback
    def async_restore_events_today(self, camera_id: str, day: str, count: int) -> None:
        """Add the events counted on `day` before a restart."""
        if (state := self._cameras.get(camera_id)) is not None:
            self._cameras[camera_id] = replace(
                state, events_day=day, events_today=state.events_on(day) + count
            )

    @callback
    def async_track_days(self) -> CALLBACK_TYPE:
        """Start every camera's count of events afresh at each local midnight; returns the
        function that stops it."""
        return async_track_time_change(self.hass, self._async_midnight, hour=0, minute=0, second=0)

    @callback
    def _async_midnight(self, now: datetime) -> None:
        day = dt_util.as_local(now).date().isoformat()
        for camera_id in list(self._cameras):
            self.async_new_day(camera_id, day)
            self._async_updated(camera_id)

    @callback
    def async_new_day(self, camera_id: str, day: str) -> None:
        """Start counting the events of `day` from zero."""
        if (state := self._cameras.get(camera_id)) is not None:
            self._cameras[camera_id] = replace(state, events_day=day, events_today=0)

    @callback
    def _async_updated(self, camera_id: str) -> None:
        self._told_at[camera_id] = self.hass.loop.time()
        if (cancel := self._due.pop(camera_id, None)) is not None:
            cancel()
        async_dispatcher_send(self.hass, signal_camera_updated(self._entry_id, camera_id))

    @callback
    def _async_frame_updated(self, camera_id: str) -> None:
        """Tell the entities now, or once the interval since they were last told is over; they
        read the camera's newest state then, so no frame's update is lost, only merged."""
        if camera_id in self._due:
            return
        wait = self._told_at.get(camera_id, -math.inf) + self._update_interval
        wait -= self.hass.loop.time()
        if wait <= 0:
            self._async_updated(camera_id)
            return
        self._due[camera_id] = async_call_later(
            self.hass,
            wait,
            HassJob(
                partial(self._async_update_due, camera_id),
                f"home_security_ai camera {camera_id} update",
                cancel_on_shutdown=True,
            ),
        )

    @callback
    def _async_update_due(self, camera_id: str, _now: Any) -> None:
        self._due.pop(camera_id, None)
        if camera_id in self._cameras:
            self._async_updated(camera_id)


def _cooldowns_until(
    event: SecurityEvent, now: datetime, before: dict[str, datetime]
) -> dict[str, datetime]:
    """The camera's cooldowns after the event: each security event carries them all."""
    if event.incident is None:
        return before
    # From when the sidecar made the event, so a late delivery does not stretch them.
    made = dt_util.utc_from_timestamp(event.created_at_ms / 1000) if event.created_at_ms else now
    return {
        kind: made + timedelta(seconds=remaining)
        for kind, remaining in event.incident.cooldowns
        if remaining > 0
    }

