"""Domain errors reach clients through one table of status codes."""

from __future__ import annotations

import grpc

from gpu_server import errors
from gpu_server.grpc_api.status_codes import MESSAGE_MAX_CHARS, STATUS_CODES, status_for


def test_every_domain_error_has_one_status_code() -> None:
    domain = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.SidecarError)
    }
    assert domain == {kind for kind, _ in STATUS_CODES}
    full = errors.BackpressureError("full")
    assert status_for(full) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "full")
    assert status_for(RuntimeError("secret"))[0] is grpc.StatusCode.INTERNAL
    assert "secret" not in status_for(RuntimeError("secret"))[1]


def test_a_message_never_echoes_more_than_a_short_prefix() -> None:
    code, message = status_for(errors.NotFoundError("no event " + "x" * 10_000_000))
    assert code is grpc.StatusCode.NOT_FOUND
    assert len(message) == MESSAGE_MAX_CHARS
    assert message.startswith("no event xxx")
