"""Fixtures for the client tests: the real sidecar, as in the integration tests."""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import pytest

# The client is imported as `custom_components.home_security_ai.client` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from integration.sidecar_process import (
    Sidecar,
    grpc_aio_engine_session,
    shared_sidecar_session,
)


@pytest.fixture(scope="session", autouse=True)
def grpc_aio_engine() -> Generator[None]:
    """Keep grpc.aio's poller thread alive for the whole session."""
    yield from grpc_aio_engine_session()


@pytest.fixture(scope="session")
def shared_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Generator[Sidecar]:
    """One real sidecar for the tests that do not stop it."""
    yield from shared_sidecar_session(tmp_path_factory)


@pytest.fixture(scope="session")
def tls_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Generator[Sidecar]:
    """One real sidecar on TLS with the certificate it made itself."""
    yield from shared_sidecar_session(tmp_path_factory, {"HSAI_TLS": "auto"})
