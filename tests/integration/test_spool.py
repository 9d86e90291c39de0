"""Tests for the frame spool on disk: durability, bounds, evictions and a full disk."""

from __future__ import annotations

import errno
import hashlib
import json
import time
from pathlib import Path
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.home_security_ai.client import FrameIn, FrameSource
from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.delivery.spool import FrameSpool

ENTRY_ID = "entry"


def _frame(name: str, size: int = 100, camera_id: str = "garden") -> FrameIn:
    image = (name.encode() * size)[:size]
    return FrameIn(
        camera_id=camera_id,
        image=image,
        client_ref=name,
        captured_at_ms=1_700_000_000_000,
        source=FrameSource.UPLOAD,
        source_ref=f"{name}.jpg",
        content_sha256=hashlib.sha256(image).hexdigest(),
    )


def _listing(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(path.name for path in folder.glob(pattern))


def _spool(hass: HomeAssistant, folder: Path, **kwargs: float) -> FrameSpool:
    return FrameSpool(
        hass,
        ENTRY_ID,
        folder,
        max_bytes=int(kwargs.get("max_bytes", 10_000)),
        max_age_s=kwargs.get("max_age_s", 3600),
    )


async def test_write_reload_release(hass: HomeAssistant, tmp_path: Path) -> None:
    """Frames survive a restart whole; orphans and leftovers are removed; events release them."""
    spool = _spool(hass, tmp_path)
    first = await spool.async_add(_frame("a"))
    second = await spool.async_add(_frame("b"))
    assert first is not None
    assert second is not None
    assert _listing(tmp_path) == sorted(
        [f"{first.key}.img", f"{first.key}.json", f"{second.key}.img", f"{second.key}.json"]
    )
    meta = json.loads((tmp_path / f"{first.key}.json").read_text())
    assert meta["sha256"] == _frame("a").content_sha256
    assert "image" not in meta

    # What a crash can leave behind: a temp file, an image without metadata, metadata without
    # an image, unreadable metadata.
    (tmp_path / "x.img.tmp").write_bytes(b"partial")
    (tmp_path / "orphan.img").write_bytes(b"x")
    (tmp_path / "lost.json").write_text(json.dumps({**meta, "key": "lost"}))
    (tmp_path / "bad.img").write_bytes(b"x")
    (tmp_path / "bad.json").write_text("{not json")

    reloaded = _spool(hass, tmp_path)
    await reloaded.async_load()
    assert reloaded.keys() == [first.key, second.key]
    assert reloaded.stats.loaded == 2
    assert reloaded.used_bytes == 200
    assert reloaded.unacked_count == 2
    frame = await reloaded.async_read(first.key)
    assert frame is not None
    assert frame.image == _frame("a").image
    assert frame.client_ref == first.key
    assert frame.source is FrameSource.UPLOAD
    assert frame.source_ref == "a.jpg"
    assert len(_listing(tmp_path)) == 4

    assert await reloaded.async_release([_frame("a").content_sha256, "unknown"]) == 1
    assert reloaded.keys() == [second.key]
    assert not (tmp_path / f"{first.key}.img").exists()
    assert reloaded.stats.released == 1
    assert await reloaded.async_release_keys([second.key, "unknown"]) == 1
    assert reloaded.keys() == []
    assert not (tmp_path / f"{second.key}.json").exists()
    assert reloaded.stats.released == 2


async def test_evicts_low_value_first(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full spool gives up acked frames without detections first, each logged and counted."""
    evicted: list[str] = []
    spool = _spool(hass, tmp_path, max_bytes=400)
    spool.on_evict = lambda frame: evicted.append(frame.source_ref)
    entries = {name: await spool.async_add(_frame(name)) for name in ("a", "b", "c", "d")}
    keys = {name: entry.key for name, entry in entries.items() if entry is not None}
    spool.async_mark_acked(keys["a"], detections=2)  # oldest, but it saw something
    spool.async_mark_acked(keys["b"], detections=0)
    spool.async_mark_acked(keys["c"], detections=0)
    # "d" is not acked yet.

    assert await spool.async_add(_frame("e")) is not None
    assert evicted == ["b.jpg"]
    assert await spool.async_add(_frame("f", size=200)) is not None
    # Then the other acked frame without detections, then the unacked one.
    assert evicted == ["b.jpg", "c.jpg", "d.jpg"]
    assert spool.stats.evicted == 3
    assert spool.evictions_by_camera == {"garden": 3}
    assert [frame.source_ref for frame in spool.frames()] == ["a.jpg", "e.jpg", "f.jpg"]
    assert spool.usage_percent == 100.0
    assert "The frame spool is full (400 bytes); evicted acked frame b.jpg" in caplog.text
    assert "evicted unacked frame d.jpg" in caplog.text
    assert len(_listing(tmp_path, "*.img")) == 3

    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"spool_full_{ENTRY_ID}")
    assert issue is not None
    assert issue.translation_key == "spool_full"
    assert issue.translation_placeholders == {"max_mb": "0", "evicted": "3"}

    # Once events free most of it, the issue goes away.
    await spool.async_release([frame.sha256 for frame in spool.frames()][:2])
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"spool_full_{ENTRY_ID}") is None


async def test_age_bound(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames older than the age bound are removed, logged and counted, also on load."""
    spool = _spool(hass, tmp_path, max_age_s=60)
    old = await spool.async_add(_frame("old"))
    assert old is not None
    with patch(
        "custom_components.home_security_ai.delivery.spool.time.time",
        return_value=time.time() + 30,
    ):
        new = await spool.async_add(_frame("new"))
    assert new is not None

    with patch(
        "custom_components.home_security_ai.delivery.spool.time.time",
        return_value=time.time() + 61,
    ):
        await spool.async_expire()
        assert spool.keys() == [new.key]
        assert spool.stats.expired == 1
        assert "Frame old.jpg of camera garden waited longer than 60 s" in caplog.text

    with patch(
        "custom_components.home_security_ai.delivery.spool.time.time",
        return_value=time.time() + 120,
    ):
        reloaded = _spool(hass, tmp_path, max_age_s=60)
        await reloaded.async_load()
    assert reloaded.frame_count == 0
    assert reloaded.stats.expired == 1
    assert _listing(tmp_path) == []


async def test_too_big_for_the_spool(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame larger than the whole spool is refused, logged and raised as an issue."""
    spool = _spool(hass, tmp_path, max_bytes=50)
    assert await spool.async_add(_frame("a")) is None
    assert spool.stats.refused == 1
    assert spool.frame_count == 0
    assert "Cannot spool frame a.jpg of camera garden" in caplog.text
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"spool_disk_full_{ENTRY_ID}")
    assert issue is not None
    assert issue.translation_key == "spool_write_failed"


async def test_disk_full(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC refuses the frame with an error and a repair issue; later writes work again."""
    spool = _spool(hass, tmp_path)
    kept = await spool.async_add(_frame("kept"))
    assert kept is not None

    def _no_space(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data[:1])  # what a write that ran out of space leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    with patch("custom_components.home_security_ai.delivery.spool.write_atomic", _no_space):
        assert await spool.async_add(_frame("lost")) is None
    assert spool.keys() == [kept.key]
    assert spool.used_bytes == 100
    assert spool.stats.refused == 1
    assert "No space left on device" in caplog.text
    assert any(record.levelname == "ERROR" for record in caplog.records)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"spool_disk_full_{ENTRY_ID}")
    assert issue is not None
    assert issue.translation_key == "spool_disk_full"
    assert issue.severity is ir.IssueSeverity.ERROR

    assert await spool.async_add(_frame("later")) is not None
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"spool_disk_full_{ENTRY_ID}") is None
    assert spool.frame_count == 2
