"""Tests of the frame stream: its bookkeeping with the spool, and acks of a real sidecar."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.home_security_ai.cameras import Cameras
from custom_components.home_security_ai.client import (
    AckStatus,
    FrameAck,
    FrameIn,
    FrameSource,
    FrameTimings,
    HomeSecurityAIClient,
    RejectReason,
)
from custom_components.home_security_ai.const import (
    BACKPRESSURE_RETRY_SECONDS,
    DOMAIN,
    signal_new_camera,
)
from custom_components.home_security_ai.coordinator import HomeSecurityAIStatusCoordinator
from custom_components.home_security_ai.delivery.connection import ConnectionSupervisor
from custom_components.home_security_ai.delivery.frame_stream import FrameStream
from custom_components.home_security_ai.delivery.spool import FrameSpool

from .conftest import wait_for, wait_for_sidecar
from .sidecar_process import Sidecar


def _never(_outbox_id: str, _sequence: int) -> bool:
    return False


def _frame(ref: str, size: int = 100) -> FrameIn:
    return FrameIn(
        camera_id="garden",
        image=ref.encode() * size,
        client_ref=ref,
        captured_at_ms=0,
        content_sha256=ref * 64,
    )


async def test_spooled_frames_are_bounded(hass: HomeAssistant, tmp_path: Path) -> None:
    """When the spool is full, the oldest frame is evicted, counted and kept from sending."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="server")
    entry.add_to_hass(hass)
    spool = FrameSpool(hass, entry.entry_id, tmp_path / "spool", max_bytes=250, max_age_s=3600)
    cameras = Cameras(hass, entry.entry_id, threat_duration=timedelta(minutes=5))
    stream = FrameStream(
        hass, entry, MagicMock(), MagicMock(), spool=spool, cameras=cameras, event_stored=_never
    )
    new_cameras: list[str] = []
    async_dispatcher_connect(hass, signal_new_camera(entry.entry_id), new_cameras.append)

    for ref in ("a", "b", "c"):
        assert await stream.async_submit(_frame(ref))

    assert new_cameras == ["garden"]
    assert stream.pending_count == 2
    assert spool.frame_count == 2
    assert stream.counters.dropped == 1
    assert cameras["garden"].frames_sent == 3
    assert cameras["garden"].frames_dropped == 1
    assert {frame.sha256 for frame in spool.frames()} == {"b" * 64, "c" * 64}


# ---- Against the real sidecar ------------------------------------------------------------------


def _photo_frame(photo: bytes, n: int, camera_id: str = "porch", pad: int = 0) -> FrameIn:
    """The photo with distinct trailing bytes (distinct content, same picture)."""
    image = photo + b"HSAI" + str(n).encode() + b"\x00" * pad
    return FrameIn(
        camera_id=camera_id,
        image=image,
        client_ref=f"ref{n}",
        captured_at_ms=int(time.time() * 1000),
        source=FrameSource.CAMERA_ENTITY,
        source_ref=f"frame{n}",
        content_sha256=hashlib.sha256(image).hexdigest(),
    )


@dataclass(kw_only=True)
class _Running:
    """A frame stream kept open by its supervisor, and what it talks to."""

    stream: FrameStream
    cameras: Cameras
    client: HomeSecurityAIClient
    coordinator: HomeSecurityAIStatusCoordinator
    connection: ConnectionSupervisor


@asynccontextmanager
async def _running_stream(
    hass: HomeAssistant, sidecar: Sidecar, tmp_path: Path, **kwargs: Any
) -> AsyncIterator[_Running]:
    """A frame stream to the real sidecar, without an event stream (nothing acknowledges the
    sidecar's events)."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id=sidecar.server_id)
    entry.add_to_hass(hass)
    client = HomeSecurityAIClient(sidecar.host, sidecar.port, sidecar.token)
    coordinator = HomeSecurityAIStatusCoordinator(hass, entry, client)
    spool = FrameSpool(hass, entry.entry_id, tmp_path / "spool", max_bytes=10**8, max_age_s=3600)
    cameras = Cameras(hass, entry.entry_id, threat_duration=timedelta(minutes=5))
    stream = FrameStream(
        hass,
        entry,
        client,
        coordinator,
        spool=spool,
        cameras=cameras,
        event_stored=_never,
        **kwargs,
    )
    connection = ConnectionSupervisor(
        hass, entry, client, coordinator, backoff_initial=0.1, backoff_max=0.3
    )
    connection.async_start(stream)
    try:
        await wait_for(hass, lambda: connection.connected, "the frame stream")
        yield _Running(
            stream=stream,
            cameras=cameras,
            client=client,
            coordinator=coordinator,
            connection=connection,
        )
    finally:
        await connection.async_stop()
        await coordinator.async_shutdown()
        await client.close()


@pytest.fixture
async def small_outbox_sidecar(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[Sidecar]:
    """A real sidecar whose outbox holds one event and turns every person into an event."""
    process = Sidecar(
        root=tmp_path / "sidecar",
        env={"HSAI_OUTBOX_MAX_EVENTS": "1", "HSAI_FAST_PATH_CONFIDENCE": "0.0"},
    )
    await hass.async_add_executor_job(process.start)
    yield process
    await hass.async_add_executor_job(process.stop)


@pytest.fixture
async def small_message_sidecar(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[Sidecar]:
    """A real sidecar that takes messages of at most 256 KiB."""
    process = Sidecar(
        root=tmp_path / "sidecar",
        env={"HSAI_MAX_MESSAGE_BYTES": "262144", "HSAI_MAX_FRAME_BYTES": "262144"},
    )
    await hass.async_add_executor_job(process.start)
    yield process
    await hass.async_add_executor_job(process.stop)


async def _tick(hass: HomeAssistant, seconds: float) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done()


async def test_backpressure_frame_is_kept_and_resent(
    hass: HomeAssistant, small_outbox_sidecar: Sidecar, photo: bytes, tmp_path: Path
) -> None:
    """A frame refused because the sidecar's outbox is full stays spooled and is sent again
    once the outbox has room."""
    sidecar = small_outbox_sidecar
    async with _running_stream(hass, sidecar, tmp_path) as running:
        stream, client = running.stream, running.client
        assert await stream.async_submit(_photo_frame(photo, 0))
        await wait_for(hass, lambda: stream.pending_count == 0, "the first ack")

        async def _outbox_full() -> bool:
            return (await client.get_status()).events.outbox_depth == 1

        await wait_for_sidecar(_outbox_full, "the fast-path event to fill the outbox")

        second = _photo_frame(photo, 1)
        assert await stream.async_submit(second)
        await wait_for(hass, lambda: stream.counters.backpressure == 1, "the backpressure")
        (kept,) = [f for f in stream.spool.frames() if f.sha256 == second.content_sha256]
        assert not kept.acked
        assert stream.counters.rejected == 0

        status = await client.get_status()
        await client.ack_events(status.events.last_sequence)
        await _tick(hass, BACKPRESSURE_RETRY_SECONDS + 1)
        await wait_for(hass, lambda: kept.acked, "the resent frame's ack")
        assert running.cameras["porch"].frames_accepted == 2


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (AckStatus.REJECTED, RejectReason.INTERNAL),
        (AckStatus.UNSPECIFIED, RejectReason.UNSPECIFIED),
    ],
)
async def test_retryable_ack_keeps_the_frame(
    hass: HomeAssistant,
    sidecar: Sidecar,
    photo: bytes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    *,
    status: AckStatus,
    reason: RejectReason,
) -> None:
    """A frame the sidecar failed on (INTERNAL: safe to resend) or answered with an unknown
    status is neither removed nor counted as analysed; it is sent again later and the real
    sidecar then takes it."""
    async with _running_stream(hass, sidecar, tmp_path) as running:
        stream = running.stream
        frame = _photo_frame(photo, 7, "retried", pad=int(time.time_ns() % 1000))
        entry = await stream.spool.async_add(frame)
        assert entry is not None
        # The frame goes on the stream; the sidecar answers that it failed on it.
        assert await stream.async_take(entry.key) is not None
        stream.async_handle_ack(
            FrameAck(
                client_ref=entry.key,
                camera_id=frame.camera_id,
                content_sha256=frame.content_sha256,
                status=status,
                status_code=13,
                reject_reason=reason,
                message="internal server error; the frame may be resent later",
                image_width=0,
                image_height=0,
                detections=(),
                detector="",
                timings=FrameTimings(),
            )
        )
        await hass.async_block_till_done()
        assert stream.spool.get(entry.key) is entry
        assert not entry.acked
        assert stream.counters.retried == 1
        assert stream.counters.rejected == 0
        camera = running.cameras["retried"]
        assert camera.frames_accepted == camera.frames_rejected == 0
        assert camera.last_image is None
        assert "sending it again in 5 s" in caplog.text

        await _tick(hass, BACKPRESSURE_RETRY_SECONDS + 1)
        await wait_for(hass, lambda: entry.acked, "the resent frame's ack")
        camera = running.cameras["retried"]
        assert camera.frames_accepted + camera.frames_duplicate == 1


async def test_oversized_frames_never_stop_the_stream(
    hass: HomeAssistant, small_message_sidecar: Sidecar, photo: bytes, tmp_path: Path
) -> None:
    """Frames over the limit are refused before spooling; a frame the sidecar still finds too
    large ends one stream only: it is dropped and the frames behind it go through."""
    async with _running_stream(
        hass, small_message_sidecar, tmp_path, max_frame_bytes=400_000
    ) as running:
        stream = running.stream
        assert not await stream.async_submit(_photo_frame(photo, 0, pad=400_000))
        assert stream.counters.oversized == 1
        assert stream.spool.frame_count == 0

        # Under our limit, over the sidecar's: it ends the stream with RESOURCE_EXHAUSTED.
        assert await stream.async_submit(_photo_frame(photo, 1, pad=150_000))
        good = _photo_frame(photo, 2)
        assert await stream.async_submit(good)
        await wait_for(hass, lambda: stream.spool.frame_count == 1, "the big frame to go")
        await wait_for(hass, lambda: stream.pending_count == 0, "the good frame's ack")
        assert [f.sha256 for f in stream.spool.frames()] == [good.content_sha256]
        assert stream.counters.oversized == 2
        assert running.cameras["porch"].frames_accepted == 1
        assert running.cameras["porch"].last_reject_reason == "too_many_bytes"
        assert running.connection.connected


async def test_one_status_refresh_per_window(
    hass: HomeAssistant, sidecar: Sidecar, photo: bytes, tmp_path: Path
) -> None:
    """Many acks request one status refresh, not one background task each."""
    # A window far longer than the test: it closes only when the test moves the clock.
    window = 3600.0
    async with _running_stream(hass, sidecar, tmp_path, status_refresh_delay=window) as running:
        stream = running.stream
        refreshes: list[None] = []

        async def _count() -> None:
            refreshes.append(None)

        running.coordinator.async_request_refresh = _count  # type: ignore[method-assign]
        base = int(time.time_ns() % 10**9)
        for n in range(5):
            assert await stream.async_submit(_photo_frame(photo, base + n, "refreshed"))
        await wait_for(hass, lambda: stream.pending_count == 0, "the acks")
        assert stream.counters.acked == 5
        assert refreshes == []
        await _tick(hass, window + 1)
        assert len(refreshes) == 1
