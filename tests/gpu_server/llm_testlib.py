"""Helpers for tests that run the real language-model runtime on the tiny GGUF."""

from __future__ import annotations

import os
import signal
from typing import Any

from gpu_server.config import LlmSettings
from gpu_server.llm.grammar import GrammarLimits

# Short strings keep each generation on the random model to a few hundred tokens.
TEST_LIMITS = GrammarLimits(summary=40, reasoning=80, recommended_action=40)
TEST_N_CTX = 8192


def llm_settings(**overrides: Any) -> LlmSettings:
    """Settings for a model server on the tiny model: small context, two threads, fixed seed.

    A judge without a bound: the tiny model's random text would fail the audit at random, and
    these tests are about getting an answer through; the authority's own tests set it.
    """
    values: dict[str, Any] = {
        "n_ctx": TEST_N_CTX, "n_threads": 2, "seed": 7, "authority": "judge", "judge_bound": 100,
    }
    values.update(overrides)
    return LlmSettings.model_validate(values)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def signal_process(pid: int | None, sig: signal.Signals) -> None:
    assert pid is not None, "the model server is not running"
    os.kill(pid, sig)
