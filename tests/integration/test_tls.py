"""An entry with a pinned certificate runs over TLS; diagnostics name the certificate."""

from __future__ import annotations

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.home_security_ai.client import fetch_server_certificate
from custom_components.home_security_ai.const import CONF_TLS_CERTIFICATE
from custom_components.home_security_ai.diagnostics import (
    async_get_config_entry_diagnostics,
)

from .conftest import make_entry, wait_for
from .sidecar_process import Sidecar


@pytest.mark.usefixtures("socket_enabled")
async def test_entry_over_tls(hass: HomeAssistant, tls_sidecar: Sidecar) -> None:
    """The entry loads, streams and reads status through the pinned TLS channel."""
    cert_pem = await hass.async_add_executor_job(
        fetch_server_certificate, tls_sidecar.host, tls_sidecar.port
    )
    entry = make_entry(tls_sidecar)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_TLS_CERTIFICATE: cert_pem}
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator.data.server_id == tls_sidecar.server_id
    await wait_for(hass, lambda: entry.runtime_data.connection.connected, "the frame stream")
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["entry"]["data"]["tls_fingerprint"] == tls_sidecar.tls_fingerprint
    assert CONF_TLS_CERTIFICATE not in diagnostics["entry"]["data"]
    assert "BEGIN CERTIFICATE" not in str(diagnostics)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
