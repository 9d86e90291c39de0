"""The one rule for camera ids: frames, settings and enrolled photos all keep to it."""

from __future__ import annotations

import re
from typing import Final

CAMERA_ID_PATTERN: Final = re.compile(r"^[a-z0-9_]{1,64}$")


def camera_id_problem(camera_id: str) -> str | None:
    """Why `camera_id` is not a camera id, or None when it is one."""
    if CAMERA_ID_PATTERN.fullmatch(camera_id):
        return None
    return f"camera_id {camera_id[:80]!r} must match {CAMERA_ID_PATTERN.pattern}"
