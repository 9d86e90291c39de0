"""Actions of Home Security AI: analyze a camera's batch now, accept a camera's current view,
set a camera's zones, pause a camera's analysis for a while, give the household's verdict on
an event, enrol or forget a known person, and say who lives here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID, ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util import dt as dt_util

from .client import (
    FeedbackVerdict,
    HomeSecurityAIError,
    NotFound,
    NotSupported,
    RiskLevel,
)
from .const import CONF_HOUSEHOLD, CONF_ZONES, DOMAIN, signal_camera_updated
from .entity import camera_of_device
from .event_search import GET_EVENTS_SCHEMA, SERVICE_GET_EVENTS, async_get_events
from .runtime import HomeSecurityAIConfigEntry
from .zones import InvalidZones, validate_zones

SERVICE_ANALYZE_NOW: Final = "analyze_now"
SERVICE_SET_ZONES: Final = "set_zones"
SERVICE_RESET_SCENE: Final = "reset_scene"
SERVICE_FEEDBACK: Final = "feedback"
SERVICE_ENROLL_PERSON: Final = "enroll_person"
SERVICE_REMOVE_PERSON: Final = "remove_person"
SERVICE_PAUSE_ANALYSIS: Final = "pause_analysis"
SERVICE_SET_HOUSEHOLD_MEMBER: Final = "set_household_member"
ATTR_MEMBER: Final = "member"
ATTR_CAMERAS: Final = "cameras"
ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_DURATION: Final = "duration"
ATTR_NAME: Final = "name"
ATTR_FACE_ID: Final = "face_id"
ATTR_CAMERA_ID: Final = "camera_id"
ATTR_ZONES: Final = "zones"
ATTR_EVENT_ID: Final = "event_id"
ATTR_VERDICT: Final = "verdict"
ATTR_ACTUAL_LEVEL: Final = "actual_level"
ATTR_WHAT: Final = "what"
WHAT_MAX_LENGTH: Final = 200
VERDICTS: Final = {
    "false_alarm": FeedbackVerdict.FALSE_ALARM,
    "correct": FeedbackVerdict.CORRECT,
}
LEVELS: Final = {
    "low": RiskLevel.LOW,
    "medium": RiskLevel.MEDIUM,
    "high": RiskLevel.HIGH,
    "critical": RiskLevel.CRITICAL,
}

_TARGET: dict[vol.Marker, Any] = {
    vol.Optional(ATTR_DEVICE_ID): vol.Any(cv.string, [cv.string]),
    vol.Optional(ATTR_CAMERA_ID): cv.string,
}
ANALYZE_NOW_SCHEMA = vol.Schema(_TARGET)
# The camera by its analysis switch too: what a notification's snooze button carries.
PAUSE_ANALYSIS_SCHEMA = vol.Schema(
    {
        **_TARGET,
        vol.Optional(ATTR_ENTITY_ID): cv.entity_id,
        vol.Required(ATTR_DURATION): vol.All(
            cv.positive_time_period, vol.Range(min=timedelta(seconds=1), max=timedelta(days=7))
        ),
    }
)
SET_ZONES_SCHEMA = vol.Schema({**_TARGET, vol.Required(ATTR_ZONES): list})
FEEDBACK_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_EVENT_ID): vol.All(cv.string, vol.Length(min=1, max=64)),
        vol.Required(ATTR_VERDICT): vol.In(list(VERDICTS)),
        vol.Optional(ATTR_ACTUAL_LEVEL): vol.In(list(LEVELS)),
        vol.Optional(ATTR_WHAT, default=""): vol.All(cv.string, vol.Length(max=WHAT_MAX_LENGTH)),
    }
)
# A face id comes from an event's `face_ids` attribute.
ENROLL_PERSON_SCHEMA = vol.Schema(
    {vol.Required(ATTR_NAME): cv.string, vol.Required(ATTR_FACE_ID): cv.string}
)
REMOVE_PERSON_SCHEMA = vol.Schema({vol.Required(ATTR_NAME): cv.string})
# Cameras and hours are optional: without them a member is expected everywhere, at any time.
SET_HOUSEHOLD_MEMBER_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_NAME): vol.All(cv.string, vol.Length(min=1, max=60)),
        vol.Optional(ATTR_MEMBER, default=True): cv.boolean,
        vol.Optional(ATTR_CAMERAS, default=[]): vol.All(cv.ensure_list, [cv.string]),
        vol.Inclusive(ATTR_START, "hours"): cv.time,
        vol.Inclusive(ATTR_END, "hours"): cv.time,
    }
)


def _loaded_entries(hass: HomeAssistant) -> list[HomeSecurityAIConfigEntry]:
    return [
        entry
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]


def _resolve(hass: HomeAssistant, call: ServiceCall) -> tuple[HomeSecurityAIConfigEntry, str]:
    """Return the entry and camera id a call is about."""
    entries = _loaded_entries(hass)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    device_ids = call.data.get(ATTR_DEVICE_ID)
    if device_ids:
        if isinstance(device_ids, str):
            device_ids = [device_ids]
        if len(device_ids) != 1:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="one_camera_only"
            )
        if (found := camera_of_device(hass, device_ids[0])) is not None:
            entry_id, device_camera = found
            for entry in entries:
                if entry.entry_id == entry_id and device_camera in entry.runtime_data.cameras:
                    return entry, device_camera
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_a_camera",
            translation_placeholders={"device_id": device_ids[0]},
        )
    camera_id: str | None = call.data.get(ATTR_CAMERA_ID)
    if not camera_id:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_camera")
    for entry in entries:
        if camera_id in entry.runtime_data.cameras:
            return entry, camera_id
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_camera",
        translation_placeholders={"camera_id": camera_id},
    )


def _resolve_switch(
    hass: HomeAssistant, entity_id: str
) -> tuple[HomeSecurityAIConfigEntry, str]:
    """Return the entry and camera of an analysis switch."""
    registered = er.async_get(hass).async_get(entity_id)
    for entry in _loaded_entries(hass):
        if registered is None or registered.config_entry_id != entry.entry_id:
            continue
        prefix, suffix = f"{entry.unique_id or entry.entry_id}_", "_analysis_enabled"
        unique_id = registered.unique_id
        if unique_id.startswith(prefix) and unique_id.endswith(suffix):
            camera_id = unique_id[len(prefix) : -len(suffix)]
            if camera_id in entry.runtime_data.cameras:
                return entry, camera_id
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_an_analysis_switch",
        translation_placeholders={"entity_id": entity_id},
    )


def _sidecar_error(err: HomeSecurityAIError) -> HomeAssistantError:
    key = "not_supported" if isinstance(err, NotSupported) else "service_failed"
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={"error": str(err)},
    )


async def _async_analyze_now(call: ServiceCall) -> ServiceResponse:
    entry, camera_id = _resolve(call.hass, call)
    try:
        result = await entry.runtime_data.client.analyze_now(camera_id)
    except HomeSecurityAIError as err:
        raise _sidecar_error(err) from err
    return {"camera_id": camera_id, "closed": result.closed, "batch_id": result.batch_id}


async def async_reset_scene(entry: HomeSecurityAIConfigEntry, camera_id: str) -> bool:
    """Make the camera's current view its usual one (after it was re-aimed on purpose)."""
    try:
        return await entry.runtime_data.client.reset_scene(camera_id)
    except HomeSecurityAIError as err:
        raise _sidecar_error(err) from err


async def _async_reset_scene(call: ServiceCall) -> ServiceResponse:
    entry, camera_id = _resolve(call.hass, call)
    return {"camera_id": camera_id, "adopted": await async_reset_scene(entry, camera_id)}


async def _async_set_zones(call: ServiceCall) -> None:
    entry, camera_id = _resolve(call.hass, call)
    try:
        zones = validate_zones(call.data[ATTR_ZONES])
    except InvalidZones as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=err.key,
            translation_placeholders={"detail": err.detail},
        ) from err
    all_zones: dict[str, Any] = dict(entry.options.get(CONF_ZONES, {}))
    all_zones[camera_id] = zones
    data = entry.runtime_data
    # Sent here so that a sidecar error reaches the caller; the options listener sees the
    # zones as applied already.
    data.applied_options = {**data.applied_options, CONF_ZONES: all_zones}
    call.hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_ZONES: all_zones}
    )
    try:
        await data.events.async_configure([camera_id])
    except HomeSecurityAIError as err:
        raise _sidecar_error(err) from err


async def _async_feedback(call: ServiceCall) -> ServiceResponse:
    """Tell the server that knows the event the household's verdict on it."""
    entries = _loaded_entries(call.hass)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    event_id: str = call.data[ATTR_EVENT_ID]
    level = call.data.get(ATTR_ACTUAL_LEVEL)
    for entry in entries:
        try:
            result = await entry.runtime_data.client.feedback(
                event_id,
                VERDICTS[call.data[ATTR_VERDICT]],
                actual_level=LEVELS[level] if level else RiskLevel.UNSPECIFIED,
                what=call.data[ATTR_WHAT],
            )
        except NotFound:
            continue  # another server's event, or one too old
        except HomeSecurityAIError as err:
            raise _sidecar_error(err) from err
        # The counts on the server device come with the next status.
        await entry.runtime_data.coordinator.async_request_refresh()
        return {
            "event_id": event_id,
            "camera_id": result.camera_id,
            "false_alarms": result.false_alarms,
            "calibrated": result.calibrated,
        }
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_event",
        translation_placeholders={"event_id": event_id},
    )


async def _async_enroll_person(call: ServiceCall) -> ServiceResponse:
    """"This is Anna": the face of an event becomes one of the person's enrolled faces."""
    entries = _loaded_entries(call.hass)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    failure: HomeSecurityAIError | None = None
    # The sidecar that saw the face remembers it; with several sidecars, ask each in turn.
    for entry in entries:
        try:
            person = await entry.runtime_data.client.enroll_person(
                call.data[ATTR_NAME], face_id=call.data[ATTR_FACE_ID]
            )
        except HomeSecurityAIError as err:
            failure = err
            continue
        return {"name": person.name, "faces": person.embeddings}
    assert failure is not None
    raise _sidecar_error(failure)


async def _async_remove_person(call: ServiceCall) -> ServiceResponse:
    """Forget a person: every face enrolled for them is deleted."""
    entries = _loaded_entries(call.hass)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    removed = 0
    for entry in entries:
        try:
            removed += await entry.runtime_data.client.remove_person(call.data[ATTR_NAME])
        except HomeSecurityAIError as err:
            raise _sidecar_error(err) from err
    return {"name": call.data[ATTR_NAME], "faces_removed": removed}


async def _async_set_household_member(call: ServiceCall) -> ServiceResponse:
    """Mark an enrolled person as living here (on some cameras, in some hours), or not: events
    whose only people are household members do not alert."""
    entries = _loaded_entries(call.hass)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    name: str = call.data[ATTR_NAME].strip()
    member: dict[str, Any] = {"cameras": sorted(set(call.data[ATTR_CAMERAS]))}
    if (start := call.data.get(ATTR_START)) is not None:
        member["start"] = start.strftime("%H:%M")
        member["end"] = call.data[ATTR_END].strftime("%H:%M")
    for entry in entries:
        household = dict(entry.options.get(CONF_HOUSEHOLD, {}))
        if call.data[ATTR_MEMBER]:
            household[name] = member
        else:
            household.pop(name, None)
        # An alert rule: the next event uses it, without a reload.
        call.hass.config_entries.async_update_entry(
            entry, options={**entry.options, CONF_HOUSEHOLD: household}
        )
    return {"name": name, "member": call.data[ATTR_MEMBER], **member}


async def _async_pause_analysis(call: ServiceCall) -> None:
    if (entity_id := call.data.get(ATTR_ENTITY_ID)) is not None:
        entry, camera_id = _resolve_switch(call.hass, entity_id)
    else:
        entry, camera_id = _resolve(call.hass, call)
    until = dt_util.utcnow() + call.data[ATTR_DURATION]
    entry.runtime_data.arming.async_set_analysis(camera_id, False, until=until)
    async_dispatcher_send(call.hass, signal_camera_updated(entry.entry_id, camera_id))


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, not per entry)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_ANALYZE_NOW,
        _async_analyze_now,
        schema=ANALYZE_NOW_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_RESET_SCENE,
        _async_reset_scene,
        schema=ANALYZE_NOW_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_SET_ZONES, _async_set_zones, schema=SET_ZONES_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_PAUSE_ANALYSIS, _async_pause_analysis, schema=PAUSE_ANALYSIS_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SET_HOUSEHOLD_MEMBER,
        _async_set_household_member,
        schema=SET_HOUSEHOLD_MEMBER_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_FEEDBACK,
        _async_feedback,
        schema=FEEDBACK_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_ENROLL_PERSON,
        _async_enroll_person,
        schema=ENROLL_PERSON_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_REMOVE_PERSON,
        _async_remove_person,
        schema=REMOVE_PERSON_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_EVENTS,
        async_get_events,
        schema=GET_EVENTS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
