"""What every frame a source sends carries: its content digest and a fresh client reference."""

from __future__ import annotations

import hashlib
import uuid


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of a frame's bytes, as the sidecar dedupes by it."""
    return hashlib.sha256(data).hexdigest()


def new_client_ref() -> str:
    """Return a reference no other frame has."""
    return uuid.uuid4().hex
