"""Arming: the household's armed mode, which cameras are analyzed, and who is home.

The select on the server device sets the mode and the per-camera switches pause analysis; both
restore their state after a restart and take effect at once, without a reload. A pause for a
while (the `pause_analysis` action, a notification's snooze) ends by itself at its time, which
the switch keeps across a restart. Each stored
security event is assessed here once (alerting.py has the rules), and the bus event, the event
entity and the camera's Threat active sensor all use that one assessment.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_HOME, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from ..client import SceneChangeKind, SecurityEvent
from ..const import CONF_PRESENCE_PERSONS, signal_camera_updated
from ..vocabulary import OTHER_FINDING_LABELS, PERSON_LABELS, risk_level_name
from .alerting import (
    AlertDecision,
    ArmedMode,
    HoldBackReason,
    PeopleSeen,
    assess,
    settings_from_options,
)

# Paged incidents remembered for their updates; an incident lasts minutes, this is plenty.
PAGED_INCIDENTS_KEPT: Final = 256


class Arming:
    """The armed mode and the paused cameras of one config entry."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Start at home with every camera analyzed; the entities restore the last state.

        The rules are read from the entry's options at every event: changes need no reload.
        """
        self.hass = hass
        self._entry = entry
        self.mode = ArmedMode.HOME
        self._paused: set[str] = set()
        # Pauses that end by themselves: when, and the timer that ends them.
        self._resume_at: dict[str, datetime] = {}
        self._resume_timers: dict[str, CALLBACK_TYPE] = {}
        # The assessment of each camera's latest event, for its event entity.
        self._latest: dict[str, tuple[str, AlertDecision]] = {}
        # The incidents that paged lately: their updates refresh that page's notification.
        self._paged_incidents: OrderedDict[str, None] = OrderedDict()

    @property
    def paused_cameras(self) -> list[str]:
        """Return the cameras whose analysis is off."""
        return sorted(self._paused)

    def analysis_enabled(self, camera_id: str) -> bool:
        """Return whether the camera's frames are collected and sent."""
        return camera_id not in self._paused

    def resume_at(self, camera_id: str) -> datetime | None:
        """Return when the camera's pause ends by itself; None for no pause or an open one."""
        return self._resume_at.get(camera_id)

    @callback
    def async_set_analysis(
        self, camera_id: str, enabled: bool, *, until: datetime | None = None
    ) -> None:
        """Resume or pause the analysis of one camera; a pause `until` a time ends then.

        Whatever was set before, a timed pause included, gives way to this.
        """
        if (cancel := self._resume_timers.pop(camera_id, None)) is not None:
            cancel()
        self._resume_at.pop(camera_id, None)
        if enabled:
            self._paused.discard(camera_id)
            return
        self._paused.add(camera_id)
        if until is not None:
            self._resume_at[camera_id] = until
            self._resume_timers[camera_id] = async_track_point_in_utc_time(
                self.hass, partial(self._async_pause_over, camera_id), until
            )

    @callback
    def _async_pause_over(self, camera_id: str, _now: datetime) -> None:
        self._resume_timers.pop(camera_id, None)
        self.async_set_analysis(camera_id, True)
        # The camera's switch shows it.
        async_dispatcher_send(self.hass, signal_camera_updated(self._entry.entry_id, camera_id))

    @callback
    def async_shutdown(self) -> None:
        """Drop the timers of timed pauses: the entry is unloading (the switches keep them)."""
        for cancel in self._resume_timers.values():
            cancel()
        self._resume_timers.clear()

    def nobody_home(self) -> bool:
        """Return whether people are chosen, each one's whereabouts known, and none at home."""
        persons: list[str] = self._entry.options.get(CONF_PRESENCE_PERSONS, [])
        states = [self.hass.states.get(entity_id) for entity_id in persons]
        known = [
            state.state
            for state in states
            if state is not None and state.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)
        ]
        return bool(known) and len(known) == len(states) and STATE_HOME not in known

    @callback
    def async_assess(self, event: SecurityEvent) -> AlertDecision:
        """Apply the household's rules to a security event and remember the outcome."""
        assessment = assess(
            raw_level=risk_level_name(event),
            camera_id=event.camera_id,
            when=_local_time(event),
            incident_alert=event.incident.alert if event.incident is not None else True,
            mode=self.mode,
            nobody_home=self.nobody_home(),
            settings=settings_from_options(self._entry.options),
            failsafe=event.failsafe,
            people=people_seen(event),
            score=event.risk_score,
        )
        incident = event.incident
        if incident is not None and incident.incident_id:
            if assessment.alert:
                self._paged_incidents[incident.incident_id] = None
                while len(self._paged_incidents) > PAGED_INCIDENTS_KEPT:
                    self._paged_incidents.popitem(last=False)
            elif (
                assessment.alert_reason is HoldBackReason.INCIDENT
                and incident.update
                and incident.incident_id in self._paged_incidents
            ):
                # No new page; the notification of the incident's page is brought up to date.
                assessment = replace(assessment, updates_page=True)
        self._latest[event.camera_id] = (event.event_id, assessment)
        return assessment

    def assessment_of(self, event: SecurityEvent) -> AlertDecision | None:
        """Return the assessment of the camera's latest event, if that is `event`."""
        latest = self._latest.get(event.camera_id)
        return latest[1] if latest is not None and latest[0] == event.event_id else None


def people_seen(event: SecurityEvent) -> PeopleSeen:
    """Who an event saw, as the household rule needs it."""
    per_frame = Counter(
        item.frame_sha256 for item in event.detections if item.detection.label in PERSON_LABELS
    )
    return PeopleSeen(
        names=frozenset(person.name for person in event.people if not person.unknown),
        unknown_faces=sum(person.unknown for person in event.people),
        most_people=max(per_frame.values(), default=0),
        other_findings=event.scene_change is not SceneChangeKind.NONE
        or any(item.detection.label in OTHER_FINDING_LABELS for item in event.detections),
    )


def _local_time(event: SecurityEvent) -> datetime:
    """Return when the event happened, in Home Assistant's time zone: when its last frame was
    taken (as the sidecar judges night and day), else when it was made, else now. A late upload
    or a frame held in the spool through an outage is judged by when it was taken."""
    taken = event.ended_at_ms or event.created_at_ms
    if not taken:
        return dt_util.now()
    return dt_util.as_local(dt_util.utc_from_timestamp(taken / 1000))
