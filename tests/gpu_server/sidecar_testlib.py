"""Helpers shared by the sidecar tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2_grpc
from PIL import Image

from gpu_server._generated import frames_pb2, service_pb2_grpc, status_pb2
from gpu_server.server import GRPCServer

TOKEN = "test-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def encode_jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (valid CRC) without any pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(
        ">I", zlib.crc32(chunk)
    )


@dataclass
class Running:
    server: GRPCServer
    channel: grpc.aio.Channel
    stub: service_pb2_grpc.SecurityAIStub
    health: health_pb2_grpc.HealthStub

    async def submit(self, frames: Iterable[frames_pb2.Frame]) -> list[frames_pb2.FrameAck]:
        """Send frames on one stream and collect every ack."""
        call = self.stub.SubmitFrames(iter(list(frames)), metadata=AUTH)
        return [ack async for ack in call]

    async def status(self) -> status_pb2.ServerStatus:
        result: status_pb2.ServerStatus = await self.stub.GetStatus(
            status_pb2.GetStatusRequest(), metadata=AUTH
        )
        return result


StartServer = Callable[..., Awaitable[Running]]


def frame(image: bytes, ref: str, camera: str = "front_door", sha: str = "") -> frames_pb2.Frame:
    return frames_pb2.Frame(
        camera_id=camera, image=image, client_ref=ref, content_sha256=sha,
        source=frames_pb2.FRAME_SOURCE_UPLOAD, source_ref=f"{ref}.jpg",
    )
