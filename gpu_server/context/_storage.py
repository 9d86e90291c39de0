"""Small persistence helpers shared by the context stores."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# Camera ids from the intake already match this; anything else is hashed so a user-supplied id
# can never walk out of the data directory or collide with another camera's file.
_SAFE_STEM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def camera_file_stem(camera_id: str) -> str:
    if _SAFE_STEM.fullmatch(camera_id):
        return camera_id
    digest = hashlib.sha256(camera_id.encode("utf-8")).hexdigest()[:24]
    return f"cam-{digest}"


def quarantine(path: Path) -> Path | None:
    """Move an unreadable file aside (keeping it for inspection) so a fresh one can be written."""
    target = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target
