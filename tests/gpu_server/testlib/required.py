"""What the set-up fetches: a test without it skips, saying why, except where CI requires it
(an environment variable), where its absence is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def required(path: Path | None, reason: str, env_var: str) -> Path:
    """`path`, or a skip with `reason` (a failure when `env_var` is set)."""
    if path is not None:
        return path
    if os.environ.get(env_var):
        pytest.fail(reason)
    pytest.skip(reason)
