"""Validation and decoding of incoming frames.

Cheap checks (camera id, size, hash, magic bytes, header dimensions, pixels per byte) run before
any pixel is decoded, so a decompression bomb or a forged header costs the server a few bytes of
parsing. JPEGs are decoded by libjpeg-turbo in strict mode, so corrupt or cut-off scan data is
refused even when an end marker was appended, and at a reduced scale in the DCT domain when the
image is much larger than the detector's input: a 48-megapixel photo costs what the detector
needs, not 150 MB.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image, ImageFile

from gpu_server.config import LimitsConfig
from gpu_server.errors import FrameRejectedError, RejectReason

CAMERA_ID_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# JPEG start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_JPEG_SOS = 0xDA
# Markers may be padded with 0xFF fill bytes; encoders write one or a few. A longer run than
# this is no camera's file, and scanning it would only cost time.
_JPEG_MAX_FILL: Final = 64 * 1024
_JPEG_FILL = re.compile(rb"\xff{1,%d}" % _JPEG_MAX_FILL)
# Segments before the frame header: real files have a handful (APPn, DQT, DHT, COM).
_JPEG_MAX_SEGMENTS: Final = 1024
# libjpeg-turbo refuses some conversions (CMYK to BGR); Pillow decodes those instead.
_UNSUPPORTED_CONVERSION = "Unsupported color conversion"
# Bytes of memory a decode needs per decoded pixel: the BGR result plus working copies.
DECODE_BYTES_PER_PIXEL: Final = 6

BgrImage = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What the header says about an encoded image, before decoding it."""

    format: str  # "JPEG" or "PNG"
    width: int
    height: int
    sha256: str


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    pixels: BgrImage  # H x W x 3, BGR like OpenCV and ultralytics expect; maybe scaled down
    width: int  # of the original image, as the header says
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Factors from decoded pixels to original pixels (1.0 when decoded at full size)."""
        return self.width / self.pixels.shape[1], self.height / self.pixels.shape[0]


def _truncated(message: str) -> FrameRejectedError:
    return FrameRejectedError(RejectReason.TRUNCATED, message)


def _png_size(data: bytes) -> tuple[int, int]:
    # Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4).
    if len(data) < 24:
        raise _truncated("PNG ends before its IHDR header")
    if data[12:16] != b"IHDR":
        raise _truncated("PNG does not start with an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2  # after SOI
    end = len(data)
    for _ in range(_JPEG_MAX_SEGMENTS):
        # Skip the fill bytes before a marker in one C-level step.
        fill = _JPEG_FILL.match(data, pos)
        if fill is None:
            raise _truncated("JPEG marker stream is corrupt")
        pos = fill.end()
        if pos >= end:
            break
        if data[pos] == 0xFF:
            raise _truncated(f"JPEG marker padding runs over {_JPEG_MAX_FILL} bytes")
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if pos + 2 > end:
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise _truncated("JPEG segment has an invalid length")
        if marker in _JPEG_SOF_MARKERS:
            if pos + 7 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            if width == 0 or height == 0:
                raise _truncated("JPEG frame header declares a zero dimension")
            return width, height
        if marker == _JPEG_SOS:
            raise _truncated("JPEG reaches its scan data without a frame header")
        pos += length
    else:
        raise _truncated(f"JPEG has more than {_JPEG_MAX_SEGMENTS} segments before its frame")
    raise _truncated("JPEG ends before its frame header")


def validate_camera_id(camera_id: str) -> None:
    if not CAMERA_ID_PATTERN.fullmatch(camera_id):
        raise FrameRejectedError(
            RejectReason.INVALID_CAMERA_ID,
            f"camera_id {camera_id[:80]!r} must match {CAMERA_ID_PATTERN.pattern}",
        )


class FrameIntake:
    """Checks and decodes encoded frames against the configured limits.

    All methods are blocking and CPU-bound: call them from a worker thread.
    """

    def __init__(self, limits: LimitsConfig, decode_side: int = 0) -> None:
        """`decode_side`: JPEGs whose longer side is at least twice this are decoded scaled
        down, to no less than this on their longer side (the detector's input size); 0 never."""
        self._limits = limits
        self._decode_side = decode_side
        # Pillow has its own bomb guard (a warning, then an error at twice the limit). Ours runs
        # first from the header; only lift Pillow's when the configured limit is higher.
        if Image.MAX_IMAGE_PIXELS is not None and limits.max_pixels > Image.MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = limits.max_pixels
        # Truncated files must raise instead of being padded with grey.
        ImageFile.LOAD_TRUNCATED_IMAGES = False

    def inspect(self, data: bytes, declared_sha256: str = "") -> FrameHeader:
        """Check size, hash, format and header dimensions without decoding pixels."""
        limits = self._limits
        if not data:
            raise FrameRejectedError(RejectReason.EMPTY, "frame has no image bytes")
        if len(data) > limits.max_frame_bytes:
            raise FrameRejectedError(
                RejectReason.TOO_MANY_BYTES,
                f"frame has {len(data)} bytes; the limit is {limits.max_frame_bytes}",
            )
        digest = hashlib.sha256(data).hexdigest()
        if declared_sha256:
            declared = declared_sha256.strip().lower()
            if not _SHA256_HEX.fullmatch(declared) or not hmac.compare_digest(declared, digest):
                raise FrameRejectedError(
                    RejectReason.HASH_MISMATCH,
                    f"content_sha256 {declared_sha256[:70]!r} does not match the image bytes",
                )
        if data.startswith(JPEG_MAGIC):
            fmt = "JPEG"
            width, height = _jpeg_size(data)
        elif data.startswith(PNG_MAGIC):
            fmt = "PNG"
            width, height = _png_size(data)
        else:
            raise FrameRejectedError(RejectReason.NOT_AN_IMAGE, "frame is neither JPEG nor PNG")
        if width > limits.max_width or height > limits.max_height:
            raise FrameRejectedError(
                RejectReason.DIMENSIONS_TOO_LARGE,
                f"image is {width}x{height}; the limit is "
                f"{limits.max_width}x{limits.max_height}",
            )
        if width * height > limits.max_pixels:
            raise FrameRejectedError(
                RejectReason.DECOMPRESSION_BOMB,
                f"image has {width * height} pixels; the limit is {limits.max_pixels}",
            )
        if width == 0 or height == 0:
            raise _truncated(f"image header declares {width}x{height} pixels")
        if width * height > limits.max_pixels_per_byte * len(data):
            # No camera writes files that compress this well: the pixel data is missing or the
            # header is forged.
            raise _truncated(
                f"image header promises {width}x{height} pixels, more than {len(data)} bytes "
                "can hold: the file is cut short or forged"
            )
        return FrameHeader(format=fmt, width=width, height=height, sha256=digest)

    def decoded_size(self, header: FrameHeader) -> tuple[int, int]:
        """The width and height `decode` will produce, known before decoding."""
        factor = self._scale_factor(header)
        if factor == 1:
            return header.width, header.height
        # libjpeg scales by M/8; with M = 8 / factor the size rounds up.
        return -(-header.width // factor), -(-header.height // factor)

    def decode_cost(self, header: FrameHeader) -> int:
        """Bytes of memory decoding this frame takes at its peak, for the decode budget."""
        width, height = self.decoded_size(header)
        return width * height * DECODE_BYTES_PER_PIXEL

    def _scale_factor(self, header: FrameHeader) -> int:
        """The largest of 2, 4, 8 that keeps the longer side at least `decode_side`, else 1."""
        if header.format != "JPEG" or self._decode_side <= 0:
            return 1
        longer = max(header.width, header.height)
        factor = 1
        while factor < 8 and longer // (factor * 2) >= self._decode_side:
            factor *= 2
        return factor

    def decode(self, data: bytes, header: FrameHeader) -> DecodedFrame:
        """Decode the pixels (JPEGs maybe scaled down); corrupt or cut-off data is TRUNCATED."""
        if header.format == "JPEG":
            pixels = self._decode_jpeg(data, header)
        else:
            pixels = _decode_with_pillow(data, header)
        decoded_width, decoded_height = self.decoded_size(header)
        if pixels.shape[1] != decoded_width or pixels.shape[0] != decoded_height:
            raise _truncated(
                f"decoded {pixels.shape[1]}x{pixels.shape[0]} pixels but the header said "
                f"{header.width}x{header.height}"
            )
        return DecodedFrame(pixels=pixels, width=header.width, height=header.height)

    def _decode_jpeg(self, data: bytes, header: FrameHeader) -> BgrImage:
        factor = self._scale_factor(header)
        try:
            # strict: libjpeg's warnings (premature end of data, extraneous bytes, a corrupt
            # scan) are errors; Pillow would pad such an image with grey instead.
            pixels: BgrImage = simplejpeg.decode_jpeg(
                data,
                colorspace="BGR",
                min_width=-(-header.width // factor) if factor > 1 else 0,
                min_height=-(-header.height // factor) if factor > 1 else 0,
                strict=True,
            )
        except ValueError as exc:
            if _UNSUPPORTED_CONVERSION in str(exc) and factor == 1:
                return _decode_with_pillow(data, header)
            raise _truncated(f"image data is truncated or corrupt: {exc}") from exc
        return pixels


def _decode_with_pillow(data: bytes, header: FrameHeader) -> BgrImage:
    # Pillow decodes a PNG cut after its last pixel row without complaint; a complete
    # PNG always ends with an IEND chunk, so its absence means the upload was cut short.
    if header.format == "PNG" and data.rfind(b"IEND", 33) == -1:
        raise _truncated("PNG has no IEND chunk: the file is incomplete")
    try:
        with Image.open(io.BytesIO(data), formats=[header.format]) as image:
            # load() raises on truncated data, unlike OpenCV which fills the rest with grey.
            image.load()
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            array = np.asarray(rgb, dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise FrameRejectedError(RejectReason.DECOMPRESSION_BOMB, str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _truncated(f"image data is truncated or corrupt: {exc}") from exc
    return np.ascontiguousarray(array[:, :, ::-1])
