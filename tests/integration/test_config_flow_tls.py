"""The config flow with TLS, against a real sidecar that made its own certificate."""

from __future__ import annotations

import socket
from collections.abc import Generator
from pathlib import Path
from unittest.mock import patch

import pytest
from cryptography import x509
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import (
    certificate_fingerprint,
    fetch_server_certificate,
)
from custom_components.home_security_ai.config_flow import (
    CONF_FINGERPRINT_MATCHES,
    CONF_USE_TLS,
)
from custom_components.home_security_ai.const import CONF_TLS_CERTIFICATE, DOMAIN

from .certificates import self_signed
from .sidecar_process import Sidecar

# The flow fetches the certificate with a plain Python socket, which the Home Assistant test
# plugin blocks unless asked.
pytestmark = pytest.mark.usefixtures("mock_setup_entry", "socket_enabled")


@pytest.fixture
def mock_setup_entry() -> object:
    """Keep the flows from setting the entry up."""
    with patch("custom_components.home_security_ai.async_setup_entry", return_value=True) as mock:
        yield mock


@pytest.fixture
def closed_port(socket_enabled: None) -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _input(sidecar: Sidecar, *, use_tls: bool = True, **changes: object) -> dict[str, object]:
    return {
        CONF_HOST: sidecar.host,
        CONF_PORT: sidecar.port,
        CONF_TOKEN: sidecar.token,
        CONF_USE_TLS: use_tls,
        **changes,
    }


async def _sidecar_certificate(hass: HomeAssistant, sidecar: Sidecar) -> str:
    return await hass.async_add_executor_job(fetch_server_certificate, sidecar.host, sidecar.port)


async def _start_user_flow(hass: HomeAssistant, user_input: dict[str, object]) -> dict[str, object]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return dict(await hass.config_entries.flow.async_configure(result["flow_id"], user_input))


async def test_user_flow_with_tls(hass: HomeAssistant, tls_sidecar: Sidecar) -> None:
    """The flow shows the fingerprint the sidecar printed; confirmed, the certificate is pinned."""
    result = await _start_user_flow(hass, _input(tls_sidecar))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "tls_confirm"
    assert result["description_placeholders"] == {
        CONF_HOST: tls_sidecar.host,
        "fingerprint": tls_sidecar.tls_fingerprint,
    }

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FINGERPRINT_MATCHES: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == tls_sidecar.server_id
    data = result["data"]
    assert set(data) == {CONF_HOST, CONF_PORT, CONF_TOKEN, CONF_TLS_CERTIFICATE}
    assert certificate_fingerprint(data[CONF_TLS_CERTIFICATE]) == tls_sidecar.tls_fingerprint


@pytest.fixture
def default_sidecar(tmp_path: Path) -> Generator[Sidecar]:
    """A sidecar started as a user starts it: nothing said about TLS."""
    sidecar = Sidecar(root=tmp_path, env={"HSAI_TLS": ""})
    sidecar.start()
    yield sidecar
    sidecar.stop()


async def test_defaults_on_both_sides_pin_the_certificate(
    hass: HomeAssistant, default_sidecar: Sidecar
) -> None:
    """Host, port and token alone, against a sidecar at its defaults: TLS, with the fingerprint
    the sidecar announced shown for confirmation, then its certificate pinned."""
    assert default_sidecar.tls_fingerprint is not None
    result = await _start_user_flow(
        hass,
        {
            CONF_HOST: default_sidecar.host,
            CONF_PORT: default_sidecar.port,
            CONF_TOKEN: default_sidecar.token,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "tls_confirm"
    assert result["description_placeholders"] == {
        CONF_HOST: default_sidecar.host,
        "fingerprint": default_sidecar.tls_fingerprint,
    }
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FINGERPRINT_MATCHES: True}
    )
    # The entry is only made after a call through the pinned certificate succeeded.
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == default_sidecar.server_id
    pinned = result["data"][CONF_TLS_CERTIFICATE]
    assert certificate_fingerprint(pinned) == default_sidecar.tls_fingerprint
    assert pinned.encode() == default_sidecar.tls_certificate_file.read_bytes()


async def test_user_flow_fingerprint_declined(hass: HomeAssistant, tls_sidecar: Sidecar) -> None:
    """A fingerprint the user does not recognise saves nothing, and the token was never sent."""
    with patch(
        "custom_components.home_security_ai.config_flow.HomeSecurityAIClient.get_status"
    ) as get_status:
        result = await _start_user_flow(hass, _input(tls_sidecar))
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_FINGERPRINT_MATCHES: False}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "certificate_not_trusted"
    assert not hass.config_entries.async_entries(DOMAIN)
    get_status.assert_not_called()


async def test_user_flow_tls_mismatch_errors(
    hass: HomeAssistant, tls_sidecar: Sidecar, shared_sidecar: Sidecar
) -> None:
    """TLS asked of a plaintext sidecar, or plaintext of a TLS one, says so on the switch."""
    result = await _start_user_flow(hass, _input(shared_sidecar))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_USE_TLS: "tls_unavailable"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar, use_tls=False)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_TLS_CERTIFICATE not in result["data"]

    result = await _start_user_flow(hass, _input(tls_sidecar, use_tls=False))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_USE_TLS: "tls_required"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(tls_sidecar)
    )
    assert result["step_id"] == "tls_confirm"


async def test_user_flow_tls_errors_recover(
    hass: HomeAssistant, tls_sidecar: Sidecar, closed_port: int
) -> None:
    """Errors after the fingerprint check go back to the form; an accepted one is not asked again.

    The token is only sent once the certificate was accepted, so a wrong token shows up after
    the check.
    """
    result = await _start_user_flow(hass, _input(tls_sidecar, **{CONF_PORT: closed_port}))
    assert result["errors"] == {CONF_HOST: "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(tls_sidecar, **{CONF_TOKEN: "wrong-token"})
    )
    assert result["step_id"] == "tls_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FINGERPRINT_MATCHES: True}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    # Something answered with a certificate other than the one the sidecar serves.
    other = self_signed(x509.DNSName("home-security-ai.local"))
    with patch(
        "custom_components.home_security_ai.config_flow.fetch_server_certificate",
        return_value=other,
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _input(tls_sidecar)
        )
    assert result["step_id"] == "tls_confirm"
    assert result["description_placeholders"]["fingerprint"] == certificate_fingerprint(other)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FINGERPRINT_MATCHES: True}
    )
    assert result["errors"] == {CONF_USE_TLS: "certificate_rejected"}

    # The sidecar's own certificate was accepted above: no second check.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(tls_sidecar))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert certificate_fingerprint(result["data"][CONF_TLS_CERTIFICATE]) == (
        tls_sidecar.tls_fingerprint
    )


async def test_reauth_keeps_the_pinned_certificate(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    """Reauth of a TLS entry connects with its pinned certificate and only changes the token."""
    cert_pem = await _sidecar_certificate(hass, tls_sidecar)
    data = {
        CONF_HOST: tls_sidecar.host,
        CONF_PORT: tls_sidecar.port,
        CONF_TOKEN: "old-token",
        CONF_TLS_CERTIFICATE: cert_pem,
    }
    entry = MockConfigEntry(domain=DOMAIN, unique_id=tls_sidecar.server_id, data=data)
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: tls_sidecar.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data == {**data, CONF_TOKEN: tls_sidecar.token}


async def test_reconfigure_to_tls(
    hass: HomeAssistant, tls_sidecar: Sidecar, closed_port: int
) -> None:
    """A plaintext entry moved to TLS confirms the fingerprint, then pins the certificate."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=tls_sidecar.server_id,
        data={CONF_HOST: tls_sidecar.host, CONF_PORT: closed_port, CONF_TOKEN: tls_sidecar.token},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(tls_sidecar))
    assert result["step_id"] == "tls_confirm"
    assert result["description_placeholders"]["fingerprint"] == tls_sidecar.tls_fingerprint
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FINGERPRINT_MATCHES: True}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_PORT] == tls_sidecar.port
    assert certificate_fingerprint(entry.data[CONF_TLS_CERTIFICATE]) == tls_sidecar.tls_fingerprint

    # The same certificate again needs no second look; the form shows TLS as on.
    result = await entry.start_reconfigure_flow(hass)
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested[CONF_USE_TLS] is True
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(tls_sidecar))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_changed_certificate_asks_again(
    hass: HomeAssistant, tls_sidecar: Sidecar
) -> None:
    """A certificate other than the pinned one is shown again; declined, nothing changes."""
    old = self_signed(x509.DNSName("home-security-ai.local"))
    data = {
        CONF_HOST: tls_sidecar.host,
        CONF_PORT: tls_sidecar.port,
        CONF_TOKEN: tls_sidecar.token,
        CONF_TLS_CERTIFICATE: old,
    }
    entry = MockConfigEntry(domain=DOMAIN, unique_id=tls_sidecar.server_id, data=data)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _input(tls_sidecar))
    assert result["step_id"] == "tls_confirm"
    assert result["description_placeholders"]["fingerprint"] == tls_sidecar.tls_fingerprint
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FINGERPRINT_MATCHES: False}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "certificate_not_trusted"
    assert entry.data == data


async def test_reconfigure_back_to_plaintext(
    hass: HomeAssistant, shared_sidecar: Sidecar
) -> None:
    """Turning TLS off drops the pinned certificate."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=shared_sidecar.server_id,
        data={
            CONF_HOST: shared_sidecar.host,
            CONF_PORT: shared_sidecar.port,
            CONF_TOKEN: shared_sidecar.token,
            CONF_TLS_CERTIFICATE: self_signed(x509.DNSName("home-security-ai.local")),
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_sidecar, use_tls=False)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {
        CONF_HOST: shared_sidecar.host,
        CONF_PORT: shared_sidecar.port,
        CONF_TOKEN: shared_sidecar.token,
    }
