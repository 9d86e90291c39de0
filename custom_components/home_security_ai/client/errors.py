"""Errors raised by the Home Security AI client."""

from __future__ import annotations


class HomeSecurityAIError(Exception):
    """Base class for every error the client raises."""


class CannotConnect(HomeSecurityAIError):  # noqa: N818
    """The sidecar could not be reached (down, refused, timed out)."""


class AuthFailed(HomeSecurityAIError):  # noqa: N818
    """The sidecar refused the token."""


class NotSupported(HomeSecurityAIError):  # noqa: N818
    """The sidecar does not implement the call (it runs an older release)."""


class ResourceExhausted(HomeSecurityAIError):  # noqa: N818
    """The call ran out of a resource, e.g. a message over the size limit (RESOURCE_EXHAUSTED)."""


class FailedPrecondition(HomeSecurityAIError):  # noqa: N818
    """The sidecar refused the call's premise, e.g. an event cursor of another outbox."""


class NotFound(HomeSecurityAIError):  # noqa: N818
    """The sidecar does not know what the call names, e.g. an event it no longer keeps."""


class TlsUnavailable(CannotConnect):
    """The sidecar answered, but not with TLS (it runs without it)."""
