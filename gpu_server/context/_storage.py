"""Small persistence helpers shared by the context stores."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

# Camera ids from the intake already match this; anything else is hashed so a user-supplied id
# can never walk out of the data directory or collide with another camera's file.
_SAFE_STEM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def camera_file_stem(camera_id: str) -> str:
    if _SAFE_STEM.fullmatch(camera_id):
        return camera_id
    digest = hashlib.sha256(camera_id.encode("utf-8")).hexdigest()[:24]
    return f"cam-{digest}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file and os.replace, so a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def quarantine(path: Path) -> Path | None:
    """Move an unreadable file aside (keeping it for inspection) so a fresh one can be written."""
    target = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target
