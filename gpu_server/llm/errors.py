"""Why a language model did not produce an assessment; each becomes a fallback reason."""

from __future__ import annotations


class LlmError(Exception):
    """The model did not produce a usable assessment; the message says why."""


class LlmTimeoutError(LlmError):
    pass


class LlmBusyError(LlmError):
    """A previous generation (one that timed out) is still running on this model."""


class LlmCancelledError(LlmError):
    pass


class LlmOutputError(LlmError):
    """The model's output was cut off or did not validate."""


class GrammarError(LlmError):
    """llama.cpp refused the grammar."""
