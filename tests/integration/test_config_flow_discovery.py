"""Set-up without typing a host or a token: the add-on's Supervisor discovery and zeroconf.

Both run against a real sidecar with the certificate it made itself. The zeroconf test reads the
sidecar's real announcement on loopback and hands it to the flow as Home Assistant's zeroconf
integration would.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_ZEROCONF
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from custom_components.home_security_ai.client import certificate_fingerprint
from custom_components.home_security_ai.const import CONF_TLS_CERTIFICATE, DOMAIN

from .sidecar_process import Sidecar

# The manifest's zeroconf type: the sidecar announces exactly this one.
ZEROCONF_TYPE = "_home-sec-ai._tcp.local."

pytestmark = pytest.mark.usefixtures("mock_setup_entry", "socket_enabled")


@pytest.fixture
def mock_setup_entry() -> object:
    """Keep the flows from setting the entry up."""
    with patch("custom_components.home_security_ai.async_setup_entry", return_value=True) as mock:
        yield mock


def _addon_discovery(sidecar: Sidecar, **changes: Any) -> HassioServiceInfo:
    config = {
        "host": sidecar.host,
        "port": sidecar.port,
        "token": sidecar.token,
        "server_id": sidecar.server_id,
        "tls_fingerprint": sidecar.tls_fingerprint,
        **changes,
    }
    return HassioServiceInfo(
        config=config, name="Home Security AI", slug="local_home_security_ai", uuid="1234"
    )


async def test_addon_discovery_sets_up_with_one_click(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_addon_discovery(tls_sidecar)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "Home Security AI"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = result["data"]
    assert (data[CONF_HOST], data[CONF_PORT], data[CONF_TOKEN]) == (
        tls_sidecar.host,
        tls_sidecar.port,
        tls_sidecar.token,
    )
    # The certificate the Supervisor vouched for is pinned, without asking the user.
    assert certificate_fingerprint(data[CONF_TLS_CERTIFICATE]) == tls_sidecar.tls_fingerprint
    assert result["result"].unique_id == tls_sidecar.server_id


async def test_addon_discovery_refuses_another_certificate(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    forged = "AA:" * 31 + "AA"
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_HASSIO},
        data=_addon_discovery(tls_sidecar, tls_fingerprint=forged),
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "certificate_mismatch"
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_addon_discovery_updates_the_entry_it_made(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    """A reinstalled add-on (new token, new port) updates its entry instead of a second one."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=tls_sidecar.server_id,
        data={CONF_HOST: "old-host", CONF_PORT: 1, CONF_TOKEN: "old-token"},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_addon_discovery(tls_sidecar)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == tls_sidecar.host
    assert entry.data[CONF_PORT] == tls_sidecar.port
    assert entry.data[CONF_TOKEN] == tls_sidecar.token


async def _announcement(server_id: str, timeout_s: float = 20.0) -> ZeroconfServiceInfo:
    """The sidecar's own announcement on loopback, as Home Assistant's zeroconf reports it."""
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.put_nowait(name)

    browser = AsyncServiceBrowser(zeroconf.zeroconf, ZEROCONF_TYPE, handlers=[on_change])
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                name = await names.get()
                info = AsyncServiceInfo(ZEROCONF_TYPE, name)
                if not await info.async_request(zeroconf.zeroconf, 3000):
                    continue
                properties = {
                    key.decode(): (value or b"").decode() for key, value in info.properties.items()
                }
                # Other sidecars on this machine may announce too.
                if properties.get("id") != server_id:
                    continue
                addresses = [ip_address(address) for address in info.parsed_addresses()]
                return ZeroconfServiceInfo(
                    ip_address=addresses[0],
                    ip_addresses=addresses,
                    port=info.port,
                    hostname=str(info.server),
                    type=ZEROCONF_TYPE,
                    name=name,
                    properties=properties,
                )
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()


async def test_zeroconf_asks_only_for_the_token(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    discovery = await _announcement(tls_sidecar.server_id)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: str(tls_sidecar.port),
        "fingerprint": tls_sidecar.tls_fingerprint,
    }
    assert list(result["data_schema"].schema) == [CONF_TOKEN]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "wrong-token"}
    )
    # A wrong token: the connection form says so, host and port already filled in.
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    hass.config_entries.flow.async_abort(result["flow_id"])

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: tls_sidecar.token}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_HOST] == "127.0.0.1"
    assert result["data"][CONF_PORT] == tls_sidecar.port
    assert (
        certificate_fingerprint(result["data"][CONF_TLS_CERTIFICATE])
        == tls_sidecar.tls_fingerprint
    )


async def test_zeroconf_follows_a_sidecar_that_moved(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    """A known sidecar announced at a new address: the entry's host and port follow."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=tls_sidecar.server_id,
        data={CONF_HOST: "192.0.2.7", CONF_PORT: 1, CONF_TOKEN: tls_sidecar.token},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=await _announcement(tls_sidecar.server_id),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == "127.0.0.1"
    assert entry.data[CONF_PORT] == tls_sidecar.port
    assert entry.data[CONF_TOKEN] == tls_sidecar.token


async def test_zeroconf_refuses_a_certificate_other_than_announced(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    """Someone announcing a server under another fingerprint never receives the token."""
    discovery = await _announcement(tls_sidecar.server_id)
    discovery.properties["fp"] = "AB:" * 31 + "AB"
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: tls_sidecar.token}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "certificate_mismatch"}
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_zeroconf_ignores_announcements_without_a_server_id(hass: HomeAssistant) -> None:
    discovery = ZeroconfServiceInfo(
        ip_address=ip_address("192.0.2.1"),
        ip_addresses=[ip_address("192.0.2.1")],
        port=50051,
        hostname="other.local.",
        type=ZEROCONF_TYPE,
        name=f"other.{ZEROCONF_TYPE}",
        properties={},
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_home_security_ai"
