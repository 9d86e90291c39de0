"""Tests for the analyze_now, reset_scene and set_zones actions against the real sidecar."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import NotSupported
from custom_components.home_security_ai.const import (
    CONF_CAMERAS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_ZONES,
    DOMAIN,
)

from .conftest import TEST_CAMERA, PorchCamera, device_by_identifier, make_entry, wait_for
from .sidecar_process import Sidecar

ZONE = {"name": "porch", "kind": "entry", "points": [[0.1, 0.5], [0.5, 0.5], [0.5, 1]]}


@pytest.fixture
async def entry(
    hass: HomeAssistant, shared_sidecar: Sidecar, porch_camera: PorchCamera
) -> MockConfigEntry:
    """A loaded entry watching camera.porch, with its streams up."""
    entry = make_entry(shared_sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    return entry


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> Any:
    return await hass.services.async_call(
        DOMAIN,
        service,
        data,
        blocking=True,
        return_response=service in {"analyze_now", "feedback"},
    )


async def test_analyze_now(
    hass: HomeAssistant, entry: MockConfigEntry, shared_sidecar: Sidecar
) -> None:
    """A camera is picked by id or by its device; the sidecar's answer comes back."""
    response = await _call(hass, "analyze_now", {"camera_id": "porch"})
    assert response == {"camera_id": "porch", "closed": False, "batch_id": ""}

    device = device_by_identifier(
        hass, entry.entry_id, (DOMAIN, f"{shared_sidecar.server_id}_porch")
    )
    assert device is not None
    response = await _call(hass, "analyze_now", {"device_id": device.id})
    assert response["camera_id"] == "porch"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({}, "no_camera"),
        ({"camera_id": "garage"}, "unknown_camera"),
        ({"device_id": "not-a-device"}, "not_a_camera"),
        ({"device_id": ["a", "b"]}, "one_camera_only"),
    ],
)
async def test_target_errors(
    hass: HomeAssistant, entry: MockConfigEntry, data: dict[str, Any], key: str
) -> None:
    """A missing or unknown camera is a translated validation error."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "analyze_now", data)
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == key


async def test_server_device_is_not_a_camera(
    hass: HomeAssistant, entry: MockConfigEntry, shared_sidecar: Sidecar
) -> None:
    """The sidecar's own device cannot be analysed."""
    server = device_by_identifier(hass, entry.entry_id, (DOMAIN, shared_sidecar.server_id))
    assert server is not None
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "analyze_now", {"device_id": server.id})
    assert err.value.translation_key == "not_a_camera"


async def test_sidecar_errors(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Errors of the sidecar become translated Home Assistant errors."""
    client = entry.runtime_data.client
    with (
        patch.object(client, "analyze_now", side_effect=NotSupported("unimplemented")),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _call(hass, "analyze_now", {"camera_id": "porch"})
    assert err.value.translation_key == "not_supported"


async def test_not_loaded(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Without a loaded entry the actions say so."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "analyze_now", {"camera_id": "porch"})
    assert err.value.translation_key == "not_loaded"


async def test_set_zones(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Zones are checked, saved in the options and sent to the sidecar without a reload."""
    data = entry.runtime_data
    client = data.client
    with patch.object(client, "configure", wraps=client.configure) as configure:
        await _call(hass, "set_zones", {"camera_id": "porch", "zones": [ZONE]})
        await hass.async_block_till_done()
    assert entry.options[CONF_ZONES] == {
        "porch": [
            {"name": "porch", "kind": "entry", "points": [[0.1, 0.5], [0.5, 0.5], [0.5, 1.0]]}
        ]
    }
    assert entry.runtime_data is data  # not reloaded
    (settings,) = configure.call_args.args[0]
    assert settings.camera_id == "porch"
    assert settings.display_name == "Porch"
    assert [zone.name for zone in settings.zones] == ["porch"]
    assert settings.zones[0].points == ((0.1, 0.5), (0.5, 0.5), (0.5, 1.0))
    assert settings.time_zone == hass.config.time_zone

    # The zones are sent with every camera again after a reconnect (here: a reload).
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    assert entry.options[CONF_ZONES]["porch"][0]["name"] == "porch"


@pytest.mark.parametrize(
    ("zones", "key"),
    [
        ([{**ZONE, "points": [[0.1, 0.5], [0.5, 0.5], [0.5, 1.5]]}], "point_out_of_range"),
        ([{**ZONE, "points": [[0.1, 0.5], [0.5, 0.5]]}], "too_few_points"),
        ([{**ZONE, "kind": "moat"}], "invalid_zone_kind"),
        ([{**ZONE, "name": ""}], "invalid_zone_name"),
        ([ZONE, ZONE], "duplicate_zone"),
        ([{**ZONE, "points": [[0.1, "x"], [0.5, 0.5], [0.5, 1]]}], "invalid_point"),
        (["porch"], "invalid_zones"),
    ],
)
async def test_set_zones_errors(
    hass: HomeAssistant, entry: MockConfigEntry, zones: list[Any], key: str
) -> None:
    """Invalid zones are refused with a translated error and nothing is saved."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "set_zones", {"camera_id": "porch", "zones": zones})
    assert err.value.translation_key == key
    assert CONF_ZONES not in entry.options


async def test_reset_scene_by_action_and_button(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """The action and the camera's button make the camera's latest frame its usual view; with
    no frame seen yet they say so."""
    entry = make_entry(sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.connection.connected, "the frame stream")
    button = er.async_get(hass).async_get_entity_id(
        "button", DOMAIN, f"{sidecar.server_id}_porch_reset_scene"
    )
    assert button == "button.porch_accept_current_view"

    response = await hass.services.async_call(
        DOMAIN, "reset_scene", {"camera_id": "porch"}, blocking=True, return_response=True
    )
    assert response == {"camera_id": "porch", "adopted": False}
    with pytest.raises(HomeAssistantError) as refused:
        await hass.services.async_call(
            "button", "press", {"entity_id": button}, blocking=True
        )
    assert refused.value.translation_key == "no_frame_yet"

    await entry.runtime_data.camera_source.async_snapshot(TEST_CAMERA)
    cameras = entry.runtime_data.cameras
    await wait_for(hass, lambda: cameras["porch"].frames_accepted >= 1, "the frame's ack")
    response = await hass.services.async_call(
        DOMAIN, "reset_scene", {"camera_id": "porch"}, blocking=True, return_response=True
    )
    assert response == {"camera_id": "porch", "adopted": True}
    await hass.services.async_call("button", "press", {"entity_id": button}, blocking=True)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_feedback_reaches_the_server_that_made_the_event(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """A verdict on a real event is taken by its sidecar and counted in its status; an event
    no server knows, or a bad verdict, is refused with a clear error."""
    entry = make_entry(sidecar, {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    await entry.runtime_data.camera_source.async_snapshot(TEST_CAMERA)
    cameras = entry.runtime_data.cameras
    await wait_for(
        hass,
        lambda: "porch" in cameras and cameras["porch"].last_event is not None,
        "the photo's event",
    )
    event = cameras["porch"].last_event
    assert event is not None

    response = await _call(
        hass,
        "feedback",
        {"event_id": event.event_id, "verdict": "false_alarm", "what": "a poster of a bus"},
    )
    assert response == {
        "event_id": event.event_id,
        "camera_id": "porch",
        "false_alarms": 1,
        "calibrated": False,
    }
    await entry.runtime_data.coordinator.async_refresh()
    counts = entry.runtime_data.coordinator.data.feedback["porch"]
    assert (counts.false_alarms, counts.confirmed, counts.calibrated_cases) == (1, 0, 0)
    response = await _call(
        hass,
        "feedback",
        {"event_id": event.event_id, "verdict": "correct", "actual_level": "high"},
    )
    assert response["false_alarms"] == 0  # the second verdict replaced the first

    with pytest.raises(ServiceValidationError) as unknown:
        await _call(hass, "feedback", {"event_id": "no-such-event", "verdict": "correct"})
    assert unknown.value.translation_key == "unknown_event"
    with pytest.raises(vol.Invalid):
        await _call(hass, "feedback", {"event_id": event.event_id, "verdict": "maybe"})
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
