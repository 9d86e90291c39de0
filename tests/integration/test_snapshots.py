"""Tests for drawing on frames: bad and hostile images still give a JPEG."""

from __future__ import annotations

import io
import struct
import zlib

from homeassistant.components.camera import async_get_image
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from PIL import Image

from custom_components.home_security_ai.client import Box, Detection
from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.media.snapshots import annotate_jpeg, placeholder_jpeg

from .conftest import make_entry, wait_for
from .sidecar_process import Sidecar

JPEG = b"\xff\xd8\xff"
PERSON = Detection(label="person", class_id=0, confidence=0.9, box=Box(x1=1, y1=1, x2=5, y2=5))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png() -> bytes:
    """A PNG header claiming 30000 x 30000 pixels: Pillow refuses it as a decompression bomb."""
    header = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 128, 0)).save(out, format="PNG")
    return out.getvalue()


def test_annotate_always_gives_a_jpeg(photo: bytes) -> None:
    """Decodable frames are drawn on; a bomb or a broken PNG gives the placeholder; a broken
    JPEG is kept as it is."""
    assert annotate_jpeg(_png(), [PERSON]).startswith(JPEG)
    assert annotate_jpeg(_bomb_png(), [PERSON]) == placeholder_jpeg()
    assert annotate_jpeg(_png()[:40], []) == placeholder_jpeg()
    assert annotate_jpeg(b"\x00garbage", []) == placeholder_jpeg()
    assert annotate_jpeg(photo[:200], []) == photo[:200]
    assert placeholder_jpeg().startswith(JPEG)


async def test_camera_entity_serves_a_jpeg_for_a_bomb(
    hass: HomeAssistant, sidecar: Sidecar
) -> None:
    """The camera entity says image/jpeg and serves a JPEG, even for a frame Pillow refuses."""
    entry = make_entry(sidecar)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(hass, lambda: data.connection.connected, "the frame stream")
    data.cameras.async_register("attic", "Attic")
    await hass.async_block_till_done()
    entity_id = er.async_get(hass).async_get_entity_id(
        "camera", DOMAIN, f"{sidecar.server_id}_attic_camera"
    )
    assert entity_id is not None
    data.cameras.async_frame_analyzed("attic", _bomb_png(), "bomb")
    image = await async_get_image(hass, entity_id)
    assert image.content_type == "image/jpeg"
    assert image.content.startswith(JPEG)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
