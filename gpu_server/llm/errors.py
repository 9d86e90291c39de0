"""Why a language model did not produce an assessment; each becomes a fallback reason."""

from __future__ import annotations


class LlmError(Exception):
    """The model did not produce a usable assessment; the message says why."""


class LlmUnreachableError(LlmError):
    """The endpoint refused or dropped the connection before or while answering."""


class LlmHttpError(LlmError):
    """The endpoint answered with an HTTP error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"model endpoint answered HTTP {status}{': ' + detail if detail else ''}")
        self.status = status


class LlmProtocolError(LlmError):
    """The endpoint's answer was not the OpenAI chat-completions shape (not JSON, no choices)."""


class LlmOutputError(LlmError):
    """The model's output was cut off or did not validate."""
