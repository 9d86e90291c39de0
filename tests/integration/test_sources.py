"""Tests for camera ids and the upload folder scan."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from unittest.mock import MagicMock, patch

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.cameras import Cameras
from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.delivery.frame_stream import FrameStream
from custom_components.home_security_ai.delivery.spool import FrameSpool
from custom_components.home_security_ai.sources.camera_ids import CameraIds, normalize_camera_id
from custom_components.home_security_ai.sources.uploads import (
    OutsideRootError,
    UploadFolderWatcher,
    _acceptable_name,
    _read_file,
    _scan_roots,
)


@pytest.mark.parametrize(
    ("name", "camera_id"),
    [
        ("Front Door", "front_door"),
        ("  Back--Yard (east) ", "back_yard_east"),
        ("Café", "cafe"),
        ("garage_2", "garage_2"),
        ("!!!", "cam_" + hashlib.sha256(b"!!!").hexdigest()[:12]),
        ("门口", "cam_" + hashlib.sha256("门口".encode()).hexdigest()[:12]),
        ("a" * 70, "a" * 64),
        ("a" * 63 + " b", "a" * 63),
    ],
)
def test_normalize_camera_id(name: str, camera_id: str) -> None:
    """Names become lower-case ids of letters, digits and single underscores."""
    assert normalize_camera_id(name) == camera_id


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("MDAlarm_1.jpg", True),
        (".hidden.jpg", False),
        ("bad\nname.jpg", False),
        ("bell\x07.jpg", False),
        ("back\\slash.jpg", False),
        ("bytes\udcff.jpg", False),
        ("", False),
    ],
)
def test_acceptable_name(name: str, ok: bool) -> None:
    """Hidden files and hostile names are skipped."""
    assert _acceptable_name(name) is ok


def test_scan_skips_symlinks_and_non_media(tmp_path: Path) -> None:
    """Only regular images and videos inside camera folders count; links are never followed."""
    root = tmp_path / "uploads"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    camera = root / "Front Door" / "2026"
    camera.mkdir(parents=True)
    (camera / "a.JPG").write_bytes(b"a")
    (camera / "b.png").write_bytes(b"b")
    (camera / "clip.mp4").write_bytes(b"v")
    (camera / "notes.txt").write_bytes(b"t")
    (root / "loose.jpg").write_bytes(b"l")
    os.symlink(outside, root / "Linked Camera")
    os.symlink(outside / "secret.jpg", camera / "link.jpg")
    os.symlink(outside, camera / "linked_dir")

    scan = _scan_roots([str(root), str(tmp_path / "missing")])

    assert scan.folders == {"Front Door"}
    assert sorted(found.relative for found in scan.files.values()) == [
        "Front Door/2026/a.JPG",
        "Front Door/2026/b.png",
        "Front Door/2026/clip.mp4",
    ]
    assert scan.failed_roots == {str(tmp_path / "missing")}


def test_scan_names_folders_without_ascii(tmp_path: Path) -> None:
    """A folder named without ASCII letters or digits is a camera with a stable hashed id."""
    root = tmp_path / "uploads"
    (root / "门口").mkdir(parents=True)
    (root / "门口" / "c.jpg").write_bytes(b"c")
    scan = _scan_roots([str(root)])
    camera_id = normalize_camera_id("门口")
    assert camera_id.startswith("cam_")
    assert scan.folders == {"门口"}
    assert [found.folder for found in scan.files.values()] == ["门口"]


def test_read_file_checks_size_and_root(tmp_path: Path) -> None:
    """A file that changed size since the scan, or lies outside the root, is not read."""
    root = tmp_path / "uploads"
    root.mkdir()
    picture = root / "a.jpg"
    picture.write_bytes(b"abc")
    read = _read_file(str(picture), str(root), 3)
    assert read is not None
    assert read[0] == b"abc"
    assert _read_file(str(picture), str(root), 2) is None
    with pytest.raises(OutsideRootError):
        _read_file(str(picture), str(tmp_path / "other"), 3)
    assert _read_file(str(root / "gone.jpg"), str(root), 3) is None


def _settled(path: Path, data: bytes, age: float = 5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - age
    os.utime(path, (past, past))


@dataclasses.dataclass(kw_only=True)
class _Uploads:
    """An upload folder watcher feeding a frame stream that is not connected."""

    watcher: UploadFolderWatcher
    frames: FrameStream
    cameras: Cameras


async def _watcher(hass: HomeAssistant, tmp_path: Path, max_bytes: int = 10**6) -> _Uploads:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="server")
    entry.add_to_hass(hass)
    spool = FrameSpool(
        hass, entry.entry_id, tmp_path / "spool", max_bytes=max_bytes, max_age_s=3600
    )
    cameras = Cameras(hass, entry.entry_id, threat_duration=timedelta(minutes=5))
    frames = FrameStream(
        hass,
        entry,
        MagicMock(),
        MagicMock(),
        spool=spool,
        cameras=cameras,
        event_stored=lambda _outbox, _sequence: False,
    )
    watcher = UploadFolderWatcher(
        hass, entry, frames, cameras, CameraIds(hass, entry.entry_id),
        roots=[str(tmp_path / "uploads")],
    )
    return _Uploads(watcher=watcher, frames=frames, cameras=cameras)


async def _polls(watcher: UploadFolderWatcher, times: int = 2) -> None:
    for _ in range(times):
        await watcher.async_poll()


async def test_watcher_retention_and_pruning(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files older than the retention are never sent; what was sent is forgotten once it is
    gone or old, and skipped files are forgotten once gone."""
    caplog.set_level(logging.INFO)
    uploads_ = await _watcher(hass, tmp_path)
    watcher = uploads_.watcher
    uploads = tmp_path / "uploads"
    old = uploads / "门口" / "old.jpg"
    new = uploads / "门口" / "new.jpg"
    big = uploads / "门口" / "big.jpg"
    _settled(old, b"old", age=watcher.retention_s + 60)
    _settled(new, b"new")
    _settled(big, b"bigger")
    with patch("custom_components.home_security_ai.sources.uploads.UPLOAD_MAX_FILE_BYTES", 3):
        await _polls(watcher)
    camera_id = normalize_camera_id("门口")
    assert uploads_.cameras[camera_id].name == "门口"
    assert [f.source_ref for f in uploads_.frames.spool.frames()] == ["门口/new.jpg"]
    assert watcher.sent_paths == {str(new)}
    assert watcher.skipped_paths == {str(big)}
    await _polls(watcher)
    assert caplog.text.count("has no letters or digits") == 1

    # A sent file that ages out of the window is forgotten, and not sent again.
    past = time.time() - watcher.retention_s - 60
    os.utime(new, (past, past))
    big.unlink()
    await _polls(watcher)
    assert watcher.sent_paths == set()
    assert watcher.skipped_paths == set()
    assert uploads_.frames.counters.submitted == 1


async def test_watcher_backs_off_when_the_spool_refuses(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk is logged once; the file waits a growing delay instead of being read and
    refused every poll, and goes once the disk has room."""
    uploads_ = await _watcher(hass, tmp_path)
    watcher = uploads_.watcher
    uploads = tmp_path / "uploads"
    _settled(uploads / "Garden" / "a.jpg", b"a" * 10)
    _settled(uploads / "Garden" / "b.jpg", b"b" * 10)

    def _no_space(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    spool = uploads_.frames.spool
    clock = time.monotonic()
    with patch("custom_components.home_security_ai.delivery.spool.write_atomic", _no_space):
        await _polls(watcher, 5)
        assert spool.stats.refused == 1  # one try, and none of the other file this poll
        with patch(
            "custom_components.home_security_ai.sources.uploads.time.monotonic",
            return_value=clock + 31,
        ):
            await _polls(watcher, 3)
        assert spool.stats.refused == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "No space left on device" in errors[0].getMessage()

    await _polls(watcher)
    assert spool.frame_count == 0  # uploads still wait the delay
    with patch(
        "custom_components.home_security_ai.sources.uploads.time.monotonic",
        return_value=clock + 100,
    ):
        await _polls(watcher)
    assert spool.frame_count == 2
    assert spool.last_error is None


async def test_watcher_pauses_while_the_spool_is_nearly_full(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Uploads stop going into a nearly full spool instead of evicting what waits there."""
    uploads_ = await _watcher(hass, tmp_path, max_bytes=1000)
    watcher = uploads_.watcher
    for name in ("a", "b", "c"):
        _settled(tmp_path / "uploads" / "Garden" / f"{name}.jpg", name.encode() * 400)
    await _polls(watcher, 4)
    spool = uploads_.frames.spool
    assert spool.frame_count == 2
    assert spool.stats.evicted == 0
    await spool.async_release([spool.frames()[0].sha256])
    await _polls(watcher)
    assert spool.frame_count == 2
    assert uploads_.frames.counters.submitted == 3


async def test_watcher_skips_a_file_outside_its_folder(
    hass: HomeAssistant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that resolves outside its folder is warned about once, not every poll."""
    uploads_ = await _watcher(hass, tmp_path)
    watcher = uploads_.watcher
    picture = tmp_path / "uploads" / "Garden" / "a.jpg"
    _settled(picture, b"a")
    (found,) = _scan_roots(watcher.roots).files.values()
    # As if the folder had been swapped for a link between the scan and the read.
    assert await watcher._async_send(
        str(picture), dataclasses.replace(found, root=str(tmp_path / "elsewhere"))
    )
    await _polls(watcher, 3)
    assert caplog.text.count("lies outside its upload folder") == 1
    assert uploads_.frames.counters.submitted == 0


async def test_folders_whose_names_collide_stay_two_cameras(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """"Front Door" and "front-door" are two cameras: the first (by name) keeps front_door,
    the other gets a suffix, and each frame carries its own folder's camera id."""
    uploads_ = await _watcher(hass, tmp_path)
    uploads = tmp_path / "uploads"
    _settled(uploads / "front-door" / "b.jpg", b"b")
    _settled(uploads / "Front Door" / "a.jpg", b"a")
    await _polls(uploads_.watcher)
    await hass.async_block_till_done()
    by_ref = {f.source_ref: f.camera_id for f in uploads_.frames.spool.frames()}
    assert by_ref["Front Door/a.jpg"] == "front_door"
    assert by_ref["front-door/b.jpg"].startswith("front_door_")
    assert uploads_.watcher.cameras == set(by_ref.values())
    assert {uploads_.cameras[camera_id].name for camera_id in by_ref.values()} == {
        "Front Door",
        "front-door",
    }
