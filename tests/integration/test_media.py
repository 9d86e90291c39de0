"""The media source, incident clips and the retention of snapshots and clips."""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path

import av
import pytest
from homeassistant.components import media_source
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_security_ai.const import (
    CONF_KEEP_MEDIA_ON_REMOVAL,
    CONF_MEDIA_RETENTION_DAYS,
    DOMAIN,
    EVENT_INCIDENT_ENDED,
)

from .conftest import make_entry, wait_for
from .sidecar_process import Sidecar

DAY = 86_400


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


def _put(path: Path, data: bytes, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def _source_id(identifier: str) -> str:
    return f"media-source://{DOMAIN}/{identifier}" if identifier else f"media-source://{DOMAIN}"


async def _setup(hass: HomeAssistant, sidecar: Sidecar, **options: object) -> MockConfigEntry:
    assert await async_setup_component(hass, "media_source", {})
    entry = make_entry(sidecar, dict(options))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    entry.runtime_data.cameras.async_register("porch", "Porch")
    await hass.async_block_till_done()
    return entry


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_browse_resolve_and_fetch(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    shared_sidecar: Sidecar,
    spool_and_media_dirs: Path,
) -> None:
    """Home Security AI -> camera -> day -> incident lists the snapshots; a resolved URL serves
    the very bytes; a snapshot saved by an earlier version still resolves by its old id."""
    entry = await _setup(hass, shared_sidecar)
    folder = spool_and_media_dirs / "media" / "home_security_ai"
    today = dt_util.now().date().isoformat()
    first = _put(folder / "porch" / today / "inc1" / "e1.jpg", _jpeg((200, 0, 0)), 30)
    _put(folder / "porch" / today / "inc1" / "e2.jpg", _jpeg((0, 200, 0)), 20)
    _put(folder / "porch" / today / "e3.jpg", _jpeg((0, 0, 200)), 10)
    legacy = _put(folder / "porch" / "e0.jpg", _jpeg((9, 9, 9)), 40)

    root = await media_source.async_browse_media(hass, _source_id(""))
    assert root.title == "Home Security AI"
    assert [(child.title, child.identifier) for child in root.children] == [("Porch", "porch")]
    camera = await media_source.async_browse_media(hass, _source_id("porch"))
    assert [child.identifier for child in camera.children] == [f"porch/{today}"]
    day = await media_source.async_browse_media(hass, _source_id(f"porch/{today}"))
    assert [child.identifier for child in day.children] == [
        "porch/e0.jpg",
        f"porch/{today}/inc1",
        f"porch/{today}/e3.jpg",
    ]
    assert day.children[1].can_expand
    assert day.children[1].title.endswith("incident, snapshots: 2")
    incident = await media_source.async_browse_media(hass, _source_id(f"porch/{today}/inc1"))
    assert [(child.identifier, child.media_content_type) for child in incident.children] == [
        (f"porch/{today}/inc1/clip.mp4", "video/mp4"),
        (f"porch/{today}/inc1/e1.jpg", "image/jpeg"),
        (f"porch/{today}/inc1/e2.jpg", "image/jpeg"),
    ]

    client = await hass_client()
    resolved = await media_source.async_resolve_media(
        hass, _source_id(f"porch/{today}/inc1/e1.jpg"), None
    )
    assert resolved.mime_type == "image/jpeg"
    response = await client.get(resolved.url)
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert await response.read() == first.read_bytes()
    # A thumbnail is the same URL, fetched by the browser with a signed path.
    assert incident.children[1].thumbnail == resolved.url

    # The bus event's id of a snapshot saved by an earlier version still resolves.
    old = await media_source.async_resolve_media(
        hass, "media-source://media_source/local/home_security_ai/porch/e0.jpg", None
    )
    response = await client.get(old.url)
    assert await response.read() == legacy.read_bytes()

    # Nothing outside the folder, nothing hidden, nothing for a stranger.
    (spool_and_media_dirs / "media" / "secret.jpg").write_bytes(b"secret")
    for bad in ("../secret.jpg", "porch/../../secret.jpg", "porch/.hidden.jpg", "porch/x.txt"):
        with pytest.raises(media_source.Unresolvable):
            await media_source.async_resolve_media(hass, _source_id(bad), None)
    response = await client.get("/api/home_security_ai/media/porch/..%2F..%2Fsecret.jpg")
    assert response.status in (400, 404)
    response = await client.get(f"/api/home_security_ai/media/porch/{today}/missing.jpg")
    assert response.status == 404
    stranger = await hass_client_no_auth()
    response = await stranger.get(resolved.url)
    assert response.status == 401
    await _unload(hass, entry)


async def test_incident_clip(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    shared_sidecar: Sidecar,
    spool_and_media_dirs: Path,
) -> None:
    """An incident's clip is made when it ends, plays as H.264 with one frame per snapshot,
    and is made again on play once a newer snapshot arrived."""
    entry = await _setup(hass, shared_sidecar)
    folder = spool_and_media_dirs / "media" / "home_security_ai"
    incident = folder / "porch" / "2026-11-20" / "inc7"
    _put(incident / "e1.jpg", _jpeg((250, 0, 0), (640, 480)), 30)
    _put(incident / "e2.jpg", _jpeg((0, 250, 0), (641, 481)), 20)  # odd size: scaled
    _put(folder / "porch" / "2026-11-20" / "lone" / "e9.jpg", _jpeg((1, 2, 3)), 5)

    hass.bus.async_fire(
        EVENT_INCIDENT_ENDED,
        {"entry_id": entry.entry_id, "incident_id": "inc7", "camera_ids": ["porch", "gone"]},
    )
    clip = incident / "clip.mp4"
    await wait_for(hass, clip.exists, "the clip")

    def _frames(path: Path) -> tuple[str, int, tuple[int, int]]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            count = sum(1 for _ in container.decode(stream))
            return stream.codec_context.name, count, (stream.width, stream.height)

    assert await hass.async_add_executor_job(_frames, clip) == ("h264", 2, (640, 480))

    _put(incident / "e3.jpg", _jpeg((0, 0, 250), (640, 480)), 0)
    resolved = await media_source.async_resolve_media(
        hass, _source_id("porch/2026-11-20/inc7/clip.mp4"), None
    )
    assert resolved.mime_type == "video/mp4"
    assert (await hass.async_add_executor_job(_frames, clip))[1] == 3
    client = await hass_client()
    response = await client.get(resolved.url)
    assert response.status == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert await response.read() == clip.read_bytes()

    # One snapshot makes no clip.
    with pytest.raises(media_source.Unresolvable):
        await media_source.async_resolve_media(
            hass, _source_id("porch/2026-11-20/lone/clip.mp4"), None
        )
    await _unload(hass, entry)


async def test_retention_deletes_old_and_keeps_new(
    hass: HomeAssistant, shared_sidecar: Sidecar, spool_and_media_dirs: Path
) -> None:
    """The clean-up deletes snapshots and clips older than the retention and the folders they
    leave empty, keeps the rest and counts them; a new retention applies without a reload."""
    folder = spool_and_media_dirs / "media" / "home_security_ai"
    old_incident = folder / "porch" / "2026-10-01" / "inc1"
    old = [
        _put(old_incident / "e1.jpg", b"old", 40 * DAY),
        _put(old_incident / "clip.mp4", b"old clip", 40 * DAY),
        _put(folder / "porch" / "e0.jpg", b"legacy", 31 * DAY),
    ]
    recent = _put(folder / "porch" / "2026-11-27" / "inc2" / "e2.jpg", b"recent", 2 * DAY)
    fresh = _put(folder / "porch" / "2026-11-29" / "e3.jpg", b"fresh", 60)
    unrelated = _put(folder / "porch" / "notes.txt", b"kept", 90 * DAY)
    entry = await _setup(hass, shared_sidecar)
    data = entry.runtime_data
    await wait_for(hass, lambda: data.media.last is not None, "the first clean-up")

    assert not any(path.exists() for path in old)
    assert not old_incident.parent.exists()
    assert recent.exists()
    assert fresh.exists()
    assert unrelated.exists()
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{shared_sidecar.server_id}_server_media_files"
    )
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.state == "2"
    assert state.attributes["deleted"] == 3
    assert state.attributes["retention_days"] == 30

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert "media" in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "media"}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_MEDIA_RETENTION_DAYS: 1, CONF_KEEP_MEDIA_ON_REMOVAL: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.runtime_data is data  # applied without a reload
    count = await data.media.async_clean()
    await hass.async_block_till_done()
    assert (count.deleted, count.files) == (1, 1)
    assert not recent.exists()
    assert fresh.exists()
    assert hass.states.get(entity_id).state == "1"
    await _unload(hass, entry)


@pytest.mark.parametrize("keep", [False, True])
async def test_removing_the_entry_deletes_or_keeps_its_media(
    hass: HomeAssistant,
    shared_sidecar: Sidecar,
    spool_and_media_dirs: Path,
    caplog: pytest.LogCaptureFixture,
    keep: bool,
) -> None:
    """Removing the last entry deletes every snapshot and clip and says so, unless the option
    keeps them."""
    caplog.set_level(logging.INFO)
    folder = spool_and_media_dirs / "media" / "home_security_ai"
    snapshot = _put(folder / "porch" / "2026-11-29" / "inc1" / "e1.jpg", b"x", 60)
    entry = await _setup(hass, shared_sidecar, **{CONF_KEEP_MEDIA_ON_REMOVAL: keep})
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert snapshot.exists() is keep
    if keep:
        assert "Keeping the snapshots and clips" in caplog.text
    else:
        assert "Deleted 1 snapshots and clips of the removed Home Security AI entry" in caplog.text
        assert not folder.exists()
