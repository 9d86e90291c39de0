"""Tests for setting up and unloading Home Security AI, its entities and diagnostics."""

from __future__ import annotations

import socket
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import (
    CONF_HOST,
    CONF_PORT,
    CONF_TOKEN,
    STATE_ON,
    STATE_UNAVAILABLE,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.delivery.frame_stream import FrameStream
from custom_components.home_security_ai.diagnostics import (
    async_get_config_entry_diagnostics,
)
from custom_components.home_security_ai.events.event_stream import EventStream

from .conftest import device_by_identifier, enable_entity, make_entry, wait_for
from .sidecar_process import Sidecar, expected_detector, expected_detector_state


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if entry.entry_id not in {e.entry_id for e in hass.config_entries.async_entries(DOMAIN)}:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def test_setup_and_unload(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, shared_sidecar: Sidecar
) -> None:
    """The entry loads, creates the server's entities and unloads cleanly."""
    mock_config_entry.add_to_hass(hass)
    enable_entity(hass, mock_config_entry, "sensor", "server_queue_depth")
    await _setup(hass, mock_config_entry)
    assert mock_config_entry.state is ConfigEntryState.LOADED
    connection = mock_config_entry.runtime_data.connection
    await wait_for(hass, lambda: connection.connected, "the frame stream")

    entity_registry = er.async_get(hass)
    server_id = shared_sidecar.server_id
    entries = er.async_entries_for_config_entry(entity_registry, mock_config_entry.entry_id)
    unique_ids = {entry.unique_id: entry for entry in entries}
    expected = {
        f"{server_id}_server_connectivity",
        f"{server_id}_server_armed",
        f"{server_id}_server_incidents",
        f"{server_id}_server_gpu_available",
        f"{server_id}_server_detector",
        f"{server_id}_server_language_model",
        f"{server_id}_server_model_memory",
        f"{server_id}_server_inference_latency",
        f"{server_id}_server_total_latency_p95",
        f"{server_id}_server_queue_depth",
        f"{server_id}_server_frames_analysed",
        f"{server_id}_server_frames_rejected",
        f"{server_id}_server_spool_usage",
        f"{server_id}_server_spool_frames",
        f"{server_id}_server_media_files",
    }
    # The GPU's utilization exists only where the sidecar sees a GPU.
    if mock_config_entry.runtime_data.coordinator.data.gpu.devices:
        expected.add(f"{server_id}_server_gpu_utilization")
    assert set(unique_ids) == expected
    # Diagnostics are marked so; the counters and gauges are off until the user wants them.
    for key in (
        "inference_latency",
        "total_latency_p95",
        "queue_depth",
        "frames_analysed",
        "frames_rejected",
        "spool_usage",
        "spool_frames",
        "model_memory",
    ):
        registered = unique_ids[f"{server_id}_server_{key}"]
        assert registered.entity_category is EntityCategory.DIAGNOSTIC, key
        if key != "queue_depth":  # enabled by this test, before setup
            assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION, key

    detector = unique_ids[f"{server_id}_server_detector"].entity_id
    assert detector == "sensor.home_security_ai_127_0_0_1_detector"
    assert hass.states.get(detector).state == expected_detector_state()
    assert hass.states.get(detector).attributes["friendly_name"] == (
        "Home Security AI (127.0.0.1) Detector"
    )
    model = hass.states.get(unique_ids[f"{server_id}_server_language_model"].entity_id)
    assert model.state == "off"
    assert model.attributes["reason"] == "LLM disabled in the settings"
    connectivity = unique_ids[f"{server_id}_server_connectivity"].entity_id
    assert connectivity == "binary_sensor.home_security_ai_127_0_0_1_connectivity"
    assert hass.states.get(connectivity).state == STATE_ON
    queue = unique_ids[f"{server_id}_server_queue_depth"].entity_id
    assert hass.states.get(queue).state == "0"

    device = device_by_identifier(hass, mock_config_entry.entry_id, (DOMAIN, server_id))
    assert device is not None
    assert device.sw_version

    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get(connectivity).state == STATE_UNAVAILABLE


async def test_setup_sidecar_down(hass: HomeAssistant, socket_enabled: None) -> None:
    """The entry retries later while the sidecar is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="down",
        data={"host": "127.0.0.1", CONF_PORT: port, CONF_TOKEN: "x"},
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_setup_wrong_token(hass: HomeAssistant, shared_sidecar: Sidecar) -> None:
    """A refused token fails setup and starts reauthentication."""
    entry = make_entry(shared_sidecar)
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=entry.unique_id, data={**entry.data, CONF_TOKEN: "wrong"}
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress()
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_diagnostics(hass: HomeAssistant, shared_sidecar: Sidecar, tmp_path: object) -> None:
    """Diagnostics redact the token and folders and include status and counters."""
    entry = make_entry(shared_sidecar, {"upload_folders": ["/secret/uploads"]})
    hass.config.allowlist_external_dirs = {"/secret"}
    await _setup(hass, entry)
    address = f"{shared_sidecar.host}:{shared_sidecar.port}"
    connection = entry.runtime_data.connection
    await wait_for(hass, lambda: connection.connected, "the frame stream")
    await wait_for(hass, lambda: connection.is_connected(EventStream.name), "the event stream")
    # As if both streams had dropped with these errors.
    connection.link(FrameStream.name).last_error = f"Cannot reach ipv4:{address}: refused"
    connection.link(EventStream.name).last_error = f"Lost {address}"
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["entry"]["data"][CONF_TOKEN] == "**REDACTED**"
    assert diagnostics["entry"]["data"][CONF_HOST] == "**REDACTED**"
    assert shared_sidecar.host not in str(diagnostics)
    assert diagnostics["connection"]["last_error"].startswith("Cannot reach ipv4:**REDACTED**")
    assert diagnostics["entry"]["options"]["upload_folders"] == "**REDACTED**"
    assert diagnostics["status"]["language_model"]["state"] == "off"
    assert shared_sidecar.token not in str(diagnostics)
    assert diagnostics["status"]["server_id"] == shared_sidecar.server_id
    assert diagnostics["status"]["detector"]["name"] == expected_detector()[0]
    assert "submitted" in diagnostics["counters"]
    assert diagnostics["cameras"] == {}
    assert diagnostics["spool"]["frames"] == 0
    assert diagnostics["events"]["last_sequence"] == 0
    assert diagnostics["arming"] == {"mode": "home", "paused_cameras": []}
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("option", ["snapshot_interval"])
async def test_options_update_reloads(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, option: str
) -> None:
    """Changing the options reloads the entry."""
    await _setup(hass, mock_config_entry)
    with patch("custom_components.home_security_ai.async_setup_entry", return_value=True) as setup:
        hass.config_entries.async_update_entry(mock_config_entry, options={option: 5})
        await hass.async_block_till_done()
    assert setup.call_count == 1
