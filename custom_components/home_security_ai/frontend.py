"""The dashboard card shipped with the integration: served as a static file, loaded as a module.

Registered once per Home Assistant instance (not per entry): the card lists the incidents of
every entry through the `get_events` action. The URL carries the file's hash, so a browser
fetches the card again exactly when it changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from homeassistant.components.frontend import add_extra_js_url
from homeassistant.components.http import StaticPathConfig
from homeassistant.core import HomeAssistant

from .const import DOMAIN

CARD_FILE: Final = Path(__file__).parent / "frontend" / "home-security-ai-card.js"
CARD_URL: Final = f"/{DOMAIN}/home-security-ai-card.js"
_REGISTERED: Final = f"{DOMAIN}_card_registered"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


async def async_register_card(hass: HomeAssistant) -> None:
    """Serve the card's file and have the frontend load it on every page."""
    if hass.data.get(_REGISTERED):
        return
    hass.data[_REGISTERED] = True
    version = await hass.async_add_executor_job(_file_hash, CARD_FILE)
    await hass.http.async_register_static_paths(
        # Cached by the browser: the versioned URL changes with the file.
        [StaticPathConfig(CARD_URL, str(CARD_FILE), cache_headers=True)]
    )
    # Without the frontend (a headless set-up) there is no page to load the card into.
    if "frontend" in hass.config.components:
        add_extra_js_url(hass, card_module_url(version))


def card_module_url(version: str) -> str:
    """Return the URL the frontend loads the card from, versioned by its content."""
    return f"{CARD_URL}?v={version}"
