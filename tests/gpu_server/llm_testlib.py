"""Helpers for tests that run the real language-model runtime on the tiny GGUF."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

from gpu_server.llm.grammar import GrammarLimits
from gpu_server.llm.settings import LlmSettings

# Short strings keep each generation on the random model to a few hundred tokens.
TEST_LIMITS = GrammarLimits(summary=40, reasoning=80, recommended_action=40)
TEST_N_CTX = 8192


def llm_settings(**overrides: Any) -> LlmSettings:
    """Settings for a model server on the tiny model: small context, two threads, fixed seed."""
    values: dict[str, Any] = {"n_ctx": TEST_N_CTX, "n_threads": 2, "seed": 7}
    values.update(overrides)
    return LlmSettings.model_validate(values)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll until `condition()` holds; fail the test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s")
        await asyncio.sleep(0.02)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def signal_process(pid: int | None, sig: signal.Signals) -> None:
    assert pid is not None, "the model server is not running"
    os.kill(pid, sig)
