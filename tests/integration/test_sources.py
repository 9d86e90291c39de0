"""Tests for camera ids and the upload folder scan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from custom_components.home_security_ai.sources import (
    _acceptable_name,
    _read_file,
    _scan_roots,
    normalize_camera_id,
)


@pytest.mark.parametrize(
    ("name", "camera_id"),
    [
        ("Front Door", "front_door"),
        ("  Back--Yard (east) ", "back_yard_east"),
        ("Café", "cafe"),
        ("garage_2", "garage_2"),
        ("!!!", ""),
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
    """Only regular images inside camera folders count; links are never followed."""
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

    assert scan.cameras == {"front_door": "Front Door"}
    assert sorted(found.relative for found in scan.files.values()) == [
        "Front Door/2026/a.JPG",
        "Front Door/2026/b.png",
    ]
    assert scan.failed_roots == {str(tmp_path / "missing")}


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
    assert _read_file(str(picture), str(tmp_path / "other"), 3) is None
    assert _read_file(str(root / "gone.jpg"), str(root), 3) is None
