"""An upload folder that cannot be read raises a repair issue, which goes once it can be."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.home_security_ai.const import CONF_UPLOAD_FOLDERS, DOMAIN

from .conftest import make_entry
from .sidecar_process import Sidecar


def _issues(hass: HomeAssistant) -> list[ir.IssueEntry]:
    return [
        issue
        for (domain, issue_id), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue_id.startswith("upload_folder_unreadable_")
    ]


async def test_unreadable_upload_folder_raises_an_issue_until_it_is_back(
    hass: HomeAssistant, shared_sidecar: Sidecar, tmp_path: Path
) -> None:
    present, share = tmp_path / "present", tmp_path / "share"
    (present / "Garden").mkdir(parents=True)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry = make_entry(shared_sidecar, {CONF_UPLOAD_FOLDERS: [str(present), str(share)]})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    watcher = entry.runtime_data.upload_watcher
    assert watcher is not None

    await watcher.async_poll()
    # The share is not mounted: one issue, for it alone, saying why.
    (issue,) = _issues(hass)
    assert issue.translation_key == "upload_folder_unreadable"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["folder"] == str(share)
    assert issue.translation_placeholders["error"] == "No such file or directory"
    assert not issue.is_fixable

    (share / "Driveway").mkdir(parents=True)
    await watcher.async_poll()
    assert _issues(hass) == []

    # A folder that vanishes while watched raises it again; unloading the entry clears it.
    (present / "Garden").rmdir()
    present.rmdir()
    await watcher.async_poll()
    assert [i.translation_placeholders["folder"] for i in _issues(hass)] == [str(present)]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert _issues(hass) == []
