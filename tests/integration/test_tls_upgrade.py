"""An entry made for a plaintext sidecar, after the sidecar switched to TLS (its new default)."""

from __future__ import annotations

import pytest
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.home_security_ai.client import certificate_fingerprint
from custom_components.home_security_ai.const import CONF_TLS_CERTIFICATE, DOMAIN
from custom_components.home_security_ai.repairs import CONF_FINGERPRINT_MATCHES

from .conftest import make_entry
from .sidecar_process import Sidecar

pytestmark = pytest.mark.usefixtures("socket_enabled")


async def test_plaintext_entry_is_offered_the_certificate_and_reconnects(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    assert await async_setup_component(hass, "repairs", {})
    entry = make_entry(tls_sidecar)  # no certificate pinned: made before TLS was the default
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY

    issue_id = f"tls_required_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_placeholders == {"host": f"127.0.0.1:{tls_sidecar.port}"}

    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(DOMAIN, data={"issue_id": issue_id})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"]["fingerprint"] == tls_sidecar.tls_fingerprint

    result = await manager.async_configure(result["flow_id"], {CONF_FINGERPRINT_MATCHES: True})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    pinned = entry.data[CONF_TLS_CERTIFICATE]
    assert certificate_fingerprint(pinned) == tls_sidecar.tls_fingerprint
    assert entry.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_refused_fingerprint_changes_nothing(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    assert await async_setup_component(hass, "repairs", {})
    entry = make_entry(tls_sidecar)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    manager = repairs_flow_manager(hass)
    assert manager is not None
    result = await manager.async_init(
        DOMAIN, data={"issue_id": f"tls_required_{entry.entry_id}"}
    )
    result = await manager.async_configure(result["flow_id"], {CONF_FINGERPRINT_MATCHES: False})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "certificate_not_trusted"
    assert CONF_TLS_CERTIFICATE not in entry.data


async def test_plaintext_sidecar_that_is_down_raises_no_tls_issue(
    hass: HomeAssistant, shared_sidecar: Sidecar
) -> None:
    """A plaintext sidecar refusing for another reason: no TLS issue (nothing to pin)."""
    entry = make_entry(shared_sidecar)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"tls_required_{entry.entry_id}") is None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
