"""The dashboard card: served by the integration and loaded by the frontend, once per instance."""

from __future__ import annotations

import hashlib
from pathlib import Path

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_security_ai.frontend import CARD_FILE, CARD_URL

from .conftest import make_entry
from .sidecar_process import Sidecar


def _card_urls(hass: HomeAssistant) -> list[str]:
    return [url for url in hass.data[DATA_EXTRA_MODULE_URL].urls if url.startswith(CARD_URL)]


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_card_served_and_loaded_once_for_two_entries(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    shared_sidecar: Sidecar,
    sidecar: Sidecar,
    tmp_path: Path,
) -> None:
    """Two entries: the card's file is served and the frontend loads it once, by a URL that
    changes with the file's content."""
    # The frontend's own files from an empty folder: the test needs its extra modules only,
    # not the home-assistant-frontend package (which not every test environment installs).
    (tmp_path / "frontend" / "hass_frontend").mkdir(parents=True)
    config = {"frontend": {"development_repo": str(tmp_path / "frontend")}}
    assert await async_setup_component(hass, "frontend", config)
    await _setup(hass, make_entry(shared_sidecar))
    await _setup(hass, make_entry(sidecar))

    content = CARD_FILE.read_bytes()
    (url,) = _card_urls(hass)
    assert url == f"{CARD_URL}?v={hashlib.sha256(content).hexdigest()[:12]}"

    # The frontend loads it without credentials, as a module.
    client = await hass_client_no_auth()
    response = await client.get(url)
    assert response.status == 200
    assert "javascript" in response.headers["Content-Type"]
    body = await response.read()
    assert body == content
    assert b'customElements.define(CARD_TYPE' in body
    assert b'"home-security-ai-card"' in body

    # Unloading and loading an entry again registers nothing twice.
    entries = hass.config_entries.async_entries("home_security_ai")
    assert await hass.config_entries.async_reload(entries[0].entry_id)
    await hass.async_block_till_done()
    assert _card_urls(hass) == [url]


async def test_card_served_without_the_frontend(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    shared_sidecar: Sidecar,
) -> None:
    """Without the frontend (a headless set-up) the entry loads; the file is still served."""
    await _setup(hass, make_entry(shared_sidecar))
    assert DATA_EXTRA_MODULE_URL not in hass.data
    response = await (await hass_client_no_auth()).get(CARD_URL)
    assert response.status == 200
    assert await response.read() == CARD_FILE.read_bytes()
