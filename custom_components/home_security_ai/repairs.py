"""Repair flows: pin the certificate of a sidecar that switched to TLS."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import BooleanSelector

from .client import CannotConnect, certificate_fingerprint, fetch_server_certificate
from .const import CONF_TLS_CERTIFICATE

CONF_FINGERPRINT_MATCHES = "fingerprint_matches"


class TlsRequiredRepairFlow(RepairsFlow):
    """Fetch the certificate, show its fingerprint, pin it once the user confirms."""

    def __init__(self, entry_id: str) -> None:
        """Remember which entry to fix."""
        self._entry_id = entry_id
        self._cert_pem = ""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Start with the certificate the sidecar presents now."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Show the fingerprint; pin the certificate and reload the entry when it matches."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        host, port = entry.data[CONF_HOST], entry.data[CONF_PORT]
        if user_input is not None and self._cert_pem:
            if not user_input[CONF_FINGERPRINT_MATCHES]:
                return self.async_abort(reason="certificate_not_trusted")
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_TLS_CERTIFICATE: self._cert_pem}
            )
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
            return self.async_create_entry(data={})
        try:
            self._cert_pem = await self.hass.async_add_executor_job(
                fetch_server_certificate, host, port
            )
        except CannotConnect:
            return self.async_abort(reason="cannot_connect")
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema(
                {vol.Required(CONF_FINGERPRINT_MATCHES, default=False): BooleanSelector()}
            ),
            description_placeholders={
                "host": f"{host}:{port}",
                "fingerprint": certificate_fingerprint(self._cert_pem),
            },
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Create the flow that fixes this issue."""
    return TlsRequiredRepairFlow(str((data or {})["entry_id"]))
