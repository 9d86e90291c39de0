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


class ChatRequests:
    """Counts the chat completions the sidecar starts sending to a model, so a test can wait
    until an analysis has reached the model (even a stopped one) rather than sleep."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real_send = httpx.AsyncClient.send

        async def send(client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
            if request.url.path.endswith("/chat/completions"):
                self.count += 1
            return await real_send(client, request, **kwargs)

        monkeypatch.setattr(httpx.AsyncClient, "send", send)

    async def wait_for_more_than(self, count: int, timeout_s: float = 60.0) -> None:
        await wait_until(lambda: self.count > count, timeout_s)
