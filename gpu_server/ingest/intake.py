"""Validation and decoding of incoming frames.

Cheap checks (camera id, size, hash, magic bytes, header dimensions, aspect, pixels per byte)
run before any pixel is decoded, so a decompression bomb or a forged header costs the server a
few bytes of parsing. JPEGs are decoded by libjpeg-turbo in strict mode, so corrupt or cut-off
scan data is refused even when an end marker was appended, and at a reduced scale in the DCT
domain when the image is much larger than the detector's input: a 48-megapixel photo costs what
the detector needs, not 150 MB.

Every image that enters the sidecar comes through here, frames and the photos EnrollPerson
is given alike (`ImageIntake`): the same formats (JPEG, PNG), limits (bytes, sides, pixels,
aspect) and one decode budget, counted as what the decoders really hold (`decode_cost`). A
refused decode leaves nothing behind: its error carries no frame that holds pixels.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import re
import struct
import traceback
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np
import simplejpeg
from PIL import Image, ImageFile

from gpu_server.config import LimitsConfig
from gpu_server.core.camera_ids import camera_id_problem
from gpu_server.core.images import BgrImage
from gpu_server.errors import FrameRejectedError, RejectReason
from gpu_server.ingest.memory import DecodeBudget, default_budget_bytes

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# JPEG start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
# Progressive frames (Huffman or arithmetic coded, plain or hierarchical).
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_JPEG_SOS = 0xDA
# Markers may be padded with 0xFF fill bytes; encoders write one or a few. A longer run than
# this is no camera's file, and scanning it would only cost time.
_JPEG_MAX_FILL: Final = 64 * 1024
_JPEG_FILL = re.compile(rb"\xff{1,%d}" % _JPEG_MAX_FILL)
# Segments before the first scan: real files have a handful (APPn, DQT, DHT, COM).
_JPEG_MAX_SEGMENTS: Final = 1024
# libjpeg-turbo refuses some conversions (CMYK to BGR); Pillow decodes those instead.
_UNSUPPORTED_CONVERSION = "Unsupported color conversion"
# Samples a pixel of each PNG colour type holds.
_PNG_CHANNELS: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 interlacing's passes: first column and row, column and row steps.
_ADAM7: Final = (
    (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
    (0, 1, 1, 2),
)
# A PNG's data is inflated this much at a time to count it (see `_check_png_data`).
_INFLATE_STEP: Final = 1 << 20
# The bit depths each PNG colour type allows (PNG specification, table 11.1).
_PNG_DEPTHS: Final = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}

# What decoding holds besides the result, in bytes (see `decode_cost`; checked by measurement
# in tests/gpu_server/test_sidecar_intake_memory.py).
# BGR output: 3 bytes a pixel.
_OUTPUT_BYTES: Final = 3
# libjpeg keeps a whole-image buffer of DCT coefficients for a progressive or multi-scan JPEG,
# at full size even when it scales the output: 2 bytes (a JCOEF) per coefficient.
_COEFFICIENT_BYTES: Final = 2
# libjpeg's row buffers (an MCU row of each component, upsampling, colour conversion), per
# byte of one full-size row: a fixed number of rows, whatever the scale.
_JPEG_ROW_BUFFERS: Final = 64
# Pillow stores a PNG's pixels at 1 byte (grey or palette up to 8 bits), 2 (16-bit grey,
# "I;16") or 4 (RGB, RGBA and grey with alpha, at any depth) a pixel.
_PILLOW_PIXEL_BYTES: Final = {0: 1, 2: 4, 3: 1, 4: 4, 6: 4}
# Pillow's image is turned into BGR strips of about this many pixels at a time: the convert,
# tobytes and BGR copies of one strip, never of the whole image.
_STRIP_PIXELS: Final = 1 << 16
_STRIP_BYTES: Final = _STRIP_PIXELS * (4 + 4 + 3 + 3)



@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What the header says about an encoded image, before decoding it."""

    format: str  # "JPEG" or "PNG"
    width: int
    height: int
    sha256: str
    # PNG: the IHDR colour type and bit depth. JPEG: the components, each one's sampling
    # factors (horizontal, vertical), and whether libjpeg must buffer every coefficient
    # (progressive, or the components in scans of their own).
    colour_type: int = 2
    bit_depth: int = 8
    sampling: tuple[tuple[int, int], ...] = ((1, 1), (1, 1), (1, 1))
    buffered: bool = False
    interlaced: bool = False  # PNG: Adam7


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    pixels: BgrImage  # H x W x 3, BGR like OpenCV and ultralytics expect; maybe scaled down
    width: int  # of the original image, as the header says
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Factors from decoded pixels to original pixels (1.0 when decoded at full size)."""
        return self.width / self.pixels.shape[1], self.height / self.pixels.shape[0]


@dataclass(frozen=True, slots=True)
class _JpegFrame:
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]
    buffered: bool


def _truncated(message: str) -> FrameRejectedError:
    return FrameRejectedError(RejectReason.TRUNCATED, message)


def _png_header(data: bytes, sha256: str) -> FrameHeader:
    """Width, height, bit depth, colour type and interlacing from the IHDR chunk."""
    # Signature (8) + IHDR length (4) + "IHDR" (4) + width, height (8) + depth, colour,
    # compression, filter, interlace (5).
    if len(data) < 29:
        raise _truncated("PNG ends before its IHDR header")
    if data[12:16] != b"IHDR":
        raise _truncated("PNG does not start with an IHDR chunk")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise _truncated(f"PNG header declares colour type {colour} at {depth} bits: no PNG has")
    return FrameHeader(
        "PNG", width, height, sha256, colour_type=colour, bit_depth=depth,
        interlaced=interlace == 1,
    )


def _jpeg_frame(data: bytes) -> _JpegFrame:
    """The frame header's size and sampling, and whether the first scan holds every component."""
    pos = 2  # after SOI
    end = len(data)
    frame: _JpegFrame | None = None
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
        if marker in _JPEG_SOF_MARKERS and frame is None:
            frame = _sof(data[pos : pos + length], progressive=marker in _JPEG_PROGRESSIVE)
        elif marker == _JPEG_SOS:
            return _first_scan(frame, data[pos : pos + 3])
        pos += length
    else:
        raise _truncated(f"JPEG has more than {_JPEG_MAX_SEGMENTS} segments before its scan")
    if frame is None:
        raise _truncated("JPEG ends before its frame header")
    raise _truncated("JPEG ends before its scan data")


def _first_scan(frame: _JpegFrame | None, segment: bytes) -> _JpegFrame:
    """The frame, told whether its first scan (length (2), components (1)) holds them all."""
    if frame is None:
        raise _truncated("JPEG reaches its scan data without a frame header")
    if len(segment) < 3:
        raise _truncated("JPEG ends inside its scan header")
    # A first scan without every component means later scans complete the image: libjpeg
    # then buffers all coefficients, as for a progressive JPEG.
    if segment[2] < len(frame.sampling) and not frame.buffered:
        return _JpegFrame(frame.width, frame.height, frame.sampling, buffered=True)
    return frame


def _sof(segment: bytes, *, progressive: bool) -> _JpegFrame:
    # Length (2), precision (1), height (2), width (2), components (1), then 3 bytes each.
    if len(segment) < 8:
        raise _truncated("JPEG ends inside its frame header")
    height, width, count = struct.unpack(">HHB", segment[3:8])
    if width == 0 or height == 0:
        raise _truncated("JPEG frame header declares a zero dimension")
    if count not in (1, 3, 4) or len(segment) < 8 + 3 * count:
        raise _truncated(f"JPEG frame header declares {count} components")
    sampling = tuple(
        (segment[9 + 3 * i] >> 4, segment[9 + 3 * i] & 0x0F) for i in range(count)
    )
    if any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v in sampling):
        raise _truncated("JPEG frame header declares an invalid sampling factor")
    return _JpegFrame(width, height, sampling, progressive)


def validate_camera_id(camera_id: str) -> None:
    problem = camera_id_problem(camera_id)
    if problem is not None:
        raise FrameRejectedError(RejectReason.INVALID_CAMERA_ID, problem)


class FrameIntake:
    """Checks and decodes encoded images against the configured limits.

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
            jpeg = _jpeg_frame(data)
            header = FrameHeader(
                "JPEG", jpeg.width, jpeg.height, digest, sampling=jpeg.sampling,
                buffered=jpeg.buffered,
            )
        elif data.startswith(PNG_MAGIC):
            header = _png_header(data, digest)
        else:
            raise FrameRejectedError(RejectReason.NOT_AN_IMAGE, "frame is neither JPEG nor PNG")
        self._check_size(header, len(data))
        return header

    def _check_size(self, header: FrameHeader, nbytes: int) -> None:
        limits = self._limits
        width, height = header.width, header.height
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
        if max(width, height) > limits.max_aspect * min(width, height):
            # No camera's frame is this thin, and a thin image costs what its longer side
            # squared would (letterboxing pads it to a square).
            raise FrameRejectedError(
                RejectReason.DIMENSIONS_TOO_LARGE,
                f"image is {width}x{height}, one side over {limits.max_aspect:g} times the "
                f"other; the limit is {limits.max_aspect:g}:1",
            )
        if width * height > limits.max_pixels_per_byte * nbytes:
            # No camera writes files that compress this well: the pixel data is missing or the
            # header is forged.
            raise _truncated(
                f"image header promises {width}x{height} pixels, more than {nbytes} bytes "
                "can hold: the file is cut short or forged"
            )

    def decoded_size(self, header: FrameHeader) -> tuple[int, int]:
        """The width and height `decode` will produce, known before decoding."""
        factor = self._scale_factor(header)
        if factor == 1:
            return header.width, header.height
        # libjpeg scales by M/8; with M = 8 / factor the size rounds up.
        return -(-header.width // factor), -(-header.height // factor)

    def decode_cost(self, header: FrameHeader) -> int:
        """Bytes of memory decoding this image holds at its peak, for the decode budget.

        JPEG: the BGR result at its decoded size; libjpeg's row buffers, which follow the
        full-size width; for a progressive or multi-scan JPEG the coefficients of the whole
        full-size image, which libjpeg keeps even when it scales the output (2 bytes each, per
        component at its own sampling, whole MCUs); a CMYK JPEG's 4 bytes a pixel. PNG:
        Pillow's full-size image at the bytes a pixel of its colour type, the BGR result, and
        one strip's working copies.
        """
        width, height = self.decoded_size(header)
        cost = width * height * _OUTPUT_BYTES
        if header.format == "PNG":
            stored = _PILLOW_PIXEL_BYTES[header.colour_type]
            if header.colour_type == 0 and header.bit_depth == 16:
                stored = 2
            return cost + header.width * header.height * stored + _STRIP_BYTES
        components = len(header.sampling)
        cost += header.width * components * _JPEG_ROW_BUFFERS
        if header.buffered:
            cost += _coefficients(header) * _COEFFICIENT_BYTES
        if components == 4:
            # CMYK at 4 bytes a pixel before its conversion; Pillow's image when libjpeg-turbo
            # refuses the conversion (full size only).
            cost += width * height * 4 + _STRIP_BYTES
        return cost

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
        got_height, got_width = pixels.shape[:2]
        if got_width != decoded_width or got_height != decoded_height:
            del pixels  # not kept alive by the error's traceback
            raise _truncated(
                f"decoded {got_width}x{got_height} pixels but the header said "
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
            unsupported = _UNSUPPORTED_CONVERSION in str(exc)
            failure = _truncated(f"image data is truncated or corrupt: {exc}")
        else:
            return pixels
        if unsupported and factor == 1:
            return _decode_with_pillow(data, header)
        raise failure


def _coefficients(header: FrameHeader) -> int:
    """DCT coefficients of the whole image, as libjpeg allocates them (whole MCUs)."""
    max_h = max(h for h, _ in header.sampling)
    max_v = max(v for _, v in header.sampling)
    mcus_x = -(-header.width // (8 * max_h))
    mcus_y = -(-header.height // (8 * max_v))
    return sum(mcus_x * h * mcus_y * v * 64 for h, v in header.sampling)


def _decode_with_pillow(data: bytes, header: FrameHeader) -> BgrImage:
    # Pillow decodes a PNG cut after its last pixel row without complaint; a complete
    # PNG always ends with an IEND chunk, so its absence means the upload was cut short.
    if header.format == "PNG" and data.rfind(b"IEND", 33) == -1:
        raise _truncated("PNG has no IEND chunk: the file is incomplete")
    if header.format == "PNG":
        _check_png_data(data, header)
    failure: FrameRejectedError
    try:
        return _pillow_bgr(data, header)
    except Image.DecompressionBombError as exc:
        failure = FrameRejectedError(RejectReason.DECOMPRESSION_BOMB, str(exc))
        traceback.clear_frames(exc.__traceback__)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        failure = _truncated(f"image data is truncated or corrupt: {exc}")
        # The failed decode's frames hold the image: a reference cycle through the error
        # would keep it (and hundreds of megabytes) until the next garbage collection.
        traceback.clear_frames(exc.__traceback__)
    # Raised outside the handlers, so that it carries neither the failed decode's traceback
    # nor its context.
    raise failure


def _png_row_bytes(header: FrameHeader) -> int:
    """Bytes of filtered pixel data the header's image needs (every Adam7 pass if interlaced)."""
    bits = _PNG_CHANNELS[header.colour_type] * header.bit_depth
    width, height = header.width, header.height
    if not header.interlaced:
        return height * (1 + (width * bits + 7) // 8)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pass_width = (width - x0 + dx - 1) // dx if width > x0 else 0
        pass_height = (height - y0 + dy - 1) // dy if height > y0 else 0
        if pass_width and pass_height:
            total += pass_height * (1 + (pass_width * bits + 7) // 8)
    return total


def _check_png_data(data: bytes, header: FrameHeader) -> None:
    """Refuse a PNG whose compressed data holds fewer pixels than its header promises, before
    any is decoded: Pillow takes a zlib stream that ends early for a whole image (the rest left
    as whatever memory held), and a forged header would have it allocate the whole image."""
    needed = _png_row_bytes(header)
    inflate = zlib.decompressobj()
    found = 0
    pos = 8
    while pos + 8 <= len(data) and found < needed:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            pending = data[pos + 8 : pos + 8 + length]
            # Counted a megabyte at a time: the check itself holds no image.
            while pending and found < needed:
                found += len(inflate.decompress(pending, _INFLATE_STEP))
                pending = inflate.unconsumed_tail
        pos += 12 + length
    if found < needed:
        raise _truncated(
            f"PNG pixel data ends after {found} of the {needed} bytes its header promises: "
            "the file is cut short or forged"
        )


def _pillow_bgr(data: bytes, header: FrameHeader) -> BgrImage:
    """The image in BGR, converted a strip at a time: a full-size converted copy would double
    what Pillow holds."""
    image = Image.open(io.BytesIO(data), formats=[header.format])
    try:
        # load() raises on truncated data, unlike OpenCV which fills the rest with grey.
        image.load()
        width, height = image.size
        pixels = np.empty((height, width, 3), np.uint8)
        rows = max(1, _STRIP_PIXELS // width)
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            strip = image.crop((0, top, width, bottom))
            if strip.mode != "RGB":
                strip = strip.convert("RGB")
            pixels[top:bottom] = np.frombuffer(
                strip.tobytes("raw", "BGR"), np.uint8
            ).reshape(bottom - top, width, 3)
        return pixels
    finally:
        image.close()  # frees Pillow's pixels now, whatever still refers to the image


class ImageIntake:
    """The way into the sidecar for an image outside the frame stream (EnrollPerson): checked
    by `checks`, decoded on `threads` within `budget`, shared with the frames when the server
    passes its own."""

    def __init__(self, checks: FrameIntake, budget: DecodeBudget, threads: Executor) -> None:
        self.checks = checks
        self.budget = budget
        self._threads = threads

    @classmethod
    def standalone(cls, limits: LimitsConfig, decode_side: int) -> ImageIntake:
        """One with a budget and a decode thread of its own."""
        return cls(
            FrameIntake(limits, decode_side),
            DecodeBudget(limits.decode_budget_bytes or default_budget_bytes(),
                         limits.decode_wait_s),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsai-images"),
        )

    @contextlib.asynccontextmanager
    async def decoded(self, data: bytes) -> AsyncIterator[DecodedFrame]:
        """The decoded image, its memory held in the budget for the block; FrameRejectedError
        for an image the limits refuse, BackpressureError when the budget stays full."""
        loop = asyncio.get_running_loop()
        header = await loop.run_in_executor(self._threads, self.checks.inspect, data, "")
        async with self.budget.reserve(self.checks.decode_cost(header)):
            yield await loop.run_in_executor(self._threads, self.checks.decode, data, header)
