"""The status coordinator: polls the sidecar's status and raises the repairs it calls for."""

from __future__ import annotations

import logging
from datetime import datetime

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .client import (
    LANGUAGE_MODEL_FAILING,
    AuthFailed,
    HomeSecurityAIClient,
    HomeSecurityAIError,
    LanguageModelState,
    LanguageModelStatus,
    ServerStatus,
)
from .const import DOMAIN, LANGUAGE_MODEL_ISSUE_AFTER, STATUS_UPDATE_INTERVAL
from .delivery.tls_upgrade import async_check_tls_required, async_clear_tls_required

_LOGGER = logging.getLogger(__name__)


class HomeSecurityAIStatusCoordinator(DataUpdateCoordinator[ServerStatus]):
    """Polls the sidecar's status."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: HomeSecurityAIClient,
    ) -> None:
        """Set up the coordinator for one sidecar."""
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=DOMAIN,
            update_interval=STATUS_UPDATE_INTERVAL,
        )
        self.client = client
        # Since when the language model has been failing without a break.
        self._model_failing_since: datetime | None = None

    async def _async_update_data(self) -> ServerStatus:
        try:
            status = await self.client.get_status()
        except AuthFailed as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except HomeSecurityAIError as err:
            # A plaintext entry whose sidecar now serves TLS: offer to pin its certificate.
            await async_check_tls_required(self.hass, self.config_entry, err)
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
        async_clear_tls_required(self.hass, self.config_entry)
        self.update_language_model_issue(status.language_model)
        return status

    def update_language_model_issue(self, model: LanguageModelStatus) -> None:
        """Raise a repair issue while the language model keeps failing; clear it once it works."""
        issue_id = f"language_model_failing_{self.config_entry.entry_id}"
        if model.state not in LANGUAGE_MODEL_FAILING:
            self._model_failing_since = None
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        now = dt_util.utcnow()
        since = self._model_failing_since = self._model_failing_since or now
        cannot_start = model.state is LanguageModelState.FAILED
        if not cannot_start and now - since < LANGUAGE_MODEL_ISSUE_AFTER:
            return
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            # One text per state: a placeholder is never translated.
            translation_key=f"language_model_{model.state.value}",
            translation_placeholders={
                "model": model.model or "-",
                "reason": model.reason or "-",
                "fallbacks": str(model.fallbacks),
            },
        )
