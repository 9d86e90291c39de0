"""The connection to the sidecar: one supervisor keeps every stream open.

The supervisor starts the frame stream and the event stream and owns their reconnect and
reauthentication with one policy:

- Before each session of a stream it asks the sidecar for its status (which also refreshes
  the server device's sensors) and hands the status to the stream.
- When a session ends, the stream says how soon to try again (`Stream.async_retry_after`):
  at once, after the longest backoff, or after the usual exponential backoff, which starts
  over only after a session that made progress (`Stream.progressed`), not after a status
  answer alone.
- The first stream is the primary one: its link is "the connection" the entities show as
  available and the connectivity sensor reports; losing it marks the status as failed.
- A refused token (AuthFailed) on any stream starts reauthentication once, for both: every
  stream stops until the entry is set up again with a new token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Protocol

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from ..client import AuthFailed, HomeSecurityAIClient, HomeSecurityAIError, ServerStatus
from ..const import DOMAIN, RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_MAX, signal_connection

_LOGGER = logging.getLogger(__name__)


class Retry(Enum):
    """How soon a stream wants to be connected again after its session ended."""

    # Now, with the backoff starting over (the stream fixed what ended the session).
    AT_ONCE = "at_once"
    # After the current backoff, which then doubles.
    BACKOFF = "backoff"
    # After the longest backoff (the sidecar cannot serve this stream for now).
    SLOWLY = "slowly"


class Stream(Protocol):
    """One long-lived gRPC stream the supervisor keeps open."""

    # For logs: "frame stream", "event stream".
    name: str

    @property
    def progressed(self) -> bool:
        """Return whether the last session did useful work (resets the backoff)."""

    async def async_session(self, status: ServerStatus, connected: Callable[[], None]) -> None:
        """Run one session until it ends by raising HomeSecurityAIError.

        `status` is the sidecar's status just before; call `connected` once the stream is up.
        """

    async def async_retry_after(self, err: HomeSecurityAIError) -> Retry:
        """Take note of the error that ended a session; return how soon to reconnect."""

    def async_stopped(self) -> None:
        """Let go of what only a running stream needs (timers); it is not started again."""


@dataclass(kw_only=True)
class Link:
    """The state of one stream's connection."""

    name: str
    connected: bool = False
    last_error: str | None = None
    reconnects: int = 0


class ConnectionSupervisor:
    """Starts the streams to the sidecar and keeps them connected."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: HomeSecurityAIClient,
        coordinator: DataUpdateCoordinator[ServerStatus],
        *,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
    ) -> None:
        """Set up an idle supervisor; `async_start` starts the streams."""
        self.hass = hass
        self._entry = entry
        self._client = client
        self._coordinator = coordinator
        self._backoff_initial = (
            RECONNECT_BACKOFF_INITIAL if backoff_initial is None else backoff_initial
        )
        self._backoff_max = RECONNECT_BACKOFF_MAX if backoff_max is None else backoff_max
        self.links: dict[str, Link] = {}
        self._primary: Link | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Set once the sidecar refused the token: reauthentication has started.
        self.auth_failed = False

    @property
    def connected(self) -> bool:
        """Return whether the primary stream (frames) is connected."""
        return self._primary is not None and self._primary.connected

    @property
    def last_error(self) -> str | None:
        """Return why the primary stream last dropped, while it is down."""
        return self._primary.last_error if self._primary is not None else None

    def link(self, name: str) -> Link:
        """Return the connection state of a stream by name."""
        return self.links[name]

    def is_connected(self, name: str) -> bool:
        """Return whether the stream of that name is connected."""
        return (link := self.links.get(name)) is not None and link.connected

    @callback
    def async_start(self, *streams: Stream) -> None:
        """Start keeping each stream open; the first is the primary one."""
        for stream in streams:
            link = self.links[stream.name] = Link(name=stream.name)
            if self._primary is None:
                self._primary = link
            self._tasks.append(
                self._entry.async_create_background_task(
                    self.hass, self._async_keep(stream, link), f"{DOMAIN} {stream.name}"
                )
            )

    async def async_stop(self) -> None:
        """Stop every stream (the entry's unload does this on its own)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _async_keep(self, stream: Stream, link: Link) -> None:
        """Keep one stream open until cancelled or the token is refused."""
        backoff = self._backoff_initial
        try:
            while (retry := await self._async_session(stream, link)) is not None:
                link.reconnects += 1
                if retry is Retry.AT_ONCE:
                    backoff = self._backoff_initial
                    continue
                if stream.progressed:
                    backoff = self._backoff_initial
                delay = self._backoff_max if retry is Retry.SLOWLY else backoff
                await asyncio.sleep(delay)
                backoff = min(max(delay, self._backoff_initial) * 2, self._backoff_max)
        finally:
            stream.async_stopped()

    async def _async_session(self, stream: Stream, link: Link) -> Retry | None:
        """Run one session of the stream; return how soon to start the next, None for never."""
        try:
            status = await self._client.get_status()
            self._coordinator.async_set_updated_data(status)
            await stream.async_session(status, partial(self._async_set, link, connected=True))
        except AuthFailed as err:
            self._async_auth_failed(err)
            return None
        except HomeSecurityAIError as err:
            error = err
        else:
            error = HomeSecurityAIError(f"The sidecar closed the {stream.name}")
        was_connected = link.connected
        self._async_set(link, connected=False, error=str(error))
        # A stream that knows what happened says so itself.
        retry = await stream.async_retry_after(error)
        if was_connected and link is self._primary:
            self._coordinator.async_set_update_error(error)
        if was_connected and retry is Retry.BACKOFF:
            _LOGGER.warning("Lost the %s to the sidecar: %s", stream.name, error)
        elif retry is Retry.BACKOFF:
            _LOGGER.debug("The %s is still down: %s", stream.name, error)
        return retry

    @callback
    def _async_auth_failed(self, err: AuthFailed) -> None:
        """Stop every stream and start reauthentication, once."""
        for link in self.links.values():
            self._async_set(link, connected=False, error=str(err))
        if self.auth_failed:
            return
        self.auth_failed = True
        _LOGGER.warning("The sidecar refused the token; frames and events are paused: %s", err)
        self._coordinator.async_set_update_error(err)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._entry.async_start_reauth(self.hass)

    @callback
    def _async_set(self, link: Link, *, connected: bool, error: str | None = None) -> None:
        if connected:
            link.last_error = None
        elif error is not None:
            link.last_error = error
        if connected == link.connected:
            return
        link.connected = connected
        if connected and link is self._primary:
            _LOGGER.info("Connected to the sidecar at %s:%s", self._client.host, self._client.port)
        async_dispatcher_send(self.hass, signal_connection(self._entry.entry_id))
