"""Frames for the client tests: an upload of the front door camera."""

from __future__ import annotations

import hashlib

from custom_components.home_security_ai.client import FrameIn, FrameSource


def upload_frame(ref: str, image: bytes, *, digest: bool = True) -> FrameIn:
    """A frame from the front door's upload folder, named after `ref`."""
    return FrameIn(
        camera_id="front_door",
        image=image,
        client_ref=ref,
        captured_at_ms=1_700_000_000_000,
        source=FrameSource.UPLOAD,
        source_ref=f"Front Door/{ref}.jpg",
        content_sha256=hashlib.sha256(image).hexdigest() if digest else "",
    )
