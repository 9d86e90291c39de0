"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest


async def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll until `condition()` holds; fail the test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s")
        await asyncio.sleep(0.02)


class ModelRequests:
    """Counts the requests (token counts, chat completions) the sidecar starts sending to a
    model, so a test can wait until an analysis has reached the model (even a stopped one)
    rather than sleep. Only POSTs count: looking the served models up is no analysis."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, *, on_chat: Callable[[], None] | None = None
    ) -> None:
        """`on_chat` runs as the first chat completion starts, before its first byte is sent."""
        self.count = 0
        self.chats = 0
        async_send = httpx.AsyncClient.send
        sync_send = httpx.Client.send

        def seen(request: httpx.Request) -> None:
            if request.method == "POST":
                self.count += 1

        async def send_async(
            client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
        ) -> Any:
            seen(request)
            if request.url.path.endswith("/chat/completions"):
                self.chats += 1
                if on_chat is not None and self.chats == 1:
                    on_chat()
            return await async_send(client, request, **kwargs)

        def send_sync(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
            seen(request)  # from a worker thread: one increment, under the GIL
            return sync_send(client, request, **kwargs)

        monkeypatch.setattr(httpx.AsyncClient, "send", send_async)
        monkeypatch.setattr(httpx.Client, "send", send_sync)

    async def wait_for_more_than(self, count: int, timeout_s: float = 60.0) -> None:
        await wait_until(lambda: self.count > count, timeout_s)
