"""Entries made for a plaintext sidecar, after the sidecar started serving TLS.

The sidecar serves TLS by default, so an entry made before (no certificate pinned) cannot
connect after an upgrade. When such an entry fails to connect and the sidecar answers a TLS
handshake, a fixable repair issue offers to pin its certificate (see repairs.py).
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from ..client import CannotConnect, fetch_server_certificate
from ..const import CONF_TLS_CERTIFICATE, DOMAIN

# A handshake that does not answer in this time means no TLS (or no sidecar) there.
PROBE_TIMEOUT = 5.0


def issue_id(entry: ConfigEntry) -> str:
    """Return the repair issue of this entry."""
    return f"tls_required_{entry.entry_id}"


async def async_check_tls_required(
    hass: HomeAssistant, entry: ConfigEntry, error: Exception
) -> None:
    """After a failed plaintext connection: raise the issue if the sidecar speaks TLS."""
    if CONF_TLS_CERTIFICATE in entry.data:
        return
    if "connection refused" in str(error).lower():
        # Nothing listens there (a TLS server would have taken the connection): no probe.
        return
    host, port = entry.data[CONF_HOST], entry.data[CONF_PORT]
    try:
        await hass.async_add_executor_job(fetch_server_certificate, host, port, PROBE_TIMEOUT)
    except CannotConnect:  # TlsUnavailable included: plaintext, or nothing there
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(entry),
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="tls_required",
        translation_placeholders={"host": f"{host}:{port}"},
        data={"entry_id": entry.entry_id},
    )


def async_clear_tls_required(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The entry connects: no issue."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(entry))
