"""Tests of the connection supervisor: one reconnect and reauthentication policy for both
streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_security_ai.client import (
    AuthFailed,
    FailedPrecondition,
    HomeSecurityAIError,
    ServerStatus,
)
from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.delivery.connection import ConnectionSupervisor, Retry
from custom_components.home_security_ai.delivery.frame_stream import FrameStream
from custom_components.home_security_ai.events.event_stream import EventStream

from .conftest import make_entry, wait_for
from .sidecar_process import Sidecar


class _Stream:
    """A stream that connects, then ends each session with the next error of its script."""

    def __init__(self, name: str, errors: list[HomeSecurityAIError], retry: Retry) -> None:
        self.name = name
        self.errors = errors
        self.retry = retry
        self.sessions = 0
        self.stopped = False
        self.idle = asyncio.Event()  # set while the script has no error to end a session with
        self.progressed = True

    async def async_session(self, status: ServerStatus, connected: Callable[[], None]) -> None:
        self.sessions += 1
        connected()
        if not self.errors:
            self.idle.set()
            await asyncio.Event().wait()  # stays up until cancelled
        raise self.errors.pop(0)

    async def async_retry_after(self, err: HomeSecurityAIError) -> Retry:
        return self.retry

    def async_stopped(self) -> None:
        self.stopped = True


def _supervisor(hass: HomeAssistant) -> tuple[MockConfigEntry, ConnectionSupervisor, MagicMock]:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="server")
    entry.add_to_hass(hass)
    client = MagicMock(host="127.0.0.1", port=50051)
    client.get_status = AsyncMock(return_value=ServerStatus(server_id="server"))
    coordinator = MagicMock()
    supervisor = ConnectionSupervisor(
        hass, entry, client, coordinator, backoff_initial=0.01, backoff_max=0.02
    )
    return entry, supervisor, coordinator


async def test_a_refused_token_starts_reauthentication_once_for_both(hass: HomeAssistant) -> None:
    """The event stream's token is refused while the frame stream is up: reauthentication
    starts once, and both streams stop and show as disconnected."""
    entry, supervisor, coordinator = _supervisor(hass)
    frames = _Stream("frame stream", [], Retry.BACKOFF)
    events = _Stream("event stream", [AuthFailed("bad token")], Retry.BACKOFF)
    with patch.object(entry, "async_start_reauth") as reauth:
        supervisor.async_start(frames, events)
        await wait_for(hass, lambda: frames.stopped and events.stopped, "both streams to stop")
    reauth.assert_called_once_with(hass)
    coordinator.async_set_update_error.assert_called_once()
    assert supervisor.auth_failed
    assert not supervisor.connected
    assert not supervisor.is_connected("event stream")
    assert supervisor.link("frame stream").last_error == "bad token"
    assert (frames.sessions, events.sessions) == (1, 1)


async def test_each_stream_says_how_soon_to_reconnect(hass: HomeAssistant) -> None:
    """A stream that fixed what ended its session reconnects at once; the other stream's
    link is not touched by it."""
    _entry, supervisor, coordinator = _supervisor(hass)
    frames = _Stream("frame stream", [], Retry.BACKOFF)
    events = _Stream(
        "event stream", [FailedPrecondition("cursor"), FailedPrecondition("again")], Retry.AT_ONCE
    )
    supervisor.async_start(frames, events)
    await wait_for(hass, lambda: frames.idle.is_set() and events.idle.is_set(), "both up")
    assert events.sessions == 3
    assert supervisor.link("event stream").reconnects == 2
    assert frames.sessions == 1
    assert supervisor.connected
    assert supervisor.is_connected("event stream")
    # Only the primary (frame) stream's loss marks the status as failed.
    coordinator.async_set_update_error.assert_not_called()
    await supervisor.async_stop()
    assert frames.stopped
    assert events.stopped


async def test_the_real_sidecar_refusing_the_token(hass: HomeAssistant, sidecar: Sidecar) -> None:
    """The sidecar comes back with another token: one reauthentication flow, both streams
    down until the user enters the new token."""
    entry = make_entry(sidecar)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    connection = entry.runtime_data.connection
    await wait_for(hass, lambda: connection.connected, "the frame stream")
    await wait_for(hass, lambda: connection.is_connected(EventStream.name), "the event stream")

    port = sidecar.port
    await hass.async_add_executor_job(sidecar.stop)
    sidecar.token = "another-token-0123456789"
    await hass.async_add_executor_job(sidecar.start, port)
    await wait_for(hass, lambda: connection.auth_failed, "the refused token")
    await wait_for(
        hass,
        lambda: (
            not connection.is_connected(FrameStream.name)
            and not connection.is_connected(EventStream.name)
        ),
        "both streams down",
    )
    flows = [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["context"]["source"] == SOURCE_REAUTH
    ]
    assert len(flows) == 1
    assert flows[0]["context"]["entry_id"] == entry.entry_id
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
