"""Fixtures for the Home Security AI integration tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.camera import Camera
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockPlatform,
    mock_platform,
)

# The integration is imported as `custom_components.home_security_ai` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from custom_components.home_security_ai.const import DOMAIN

from .sidecar_process import (
    Sidecar,
    bus_photo,
    grpc_aio_engine_session,
    shared_sidecar_session,
)

TEST_CAMERA = "camera.porch"


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


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load the integration from custom_components."""


@pytest.fixture(autouse=True)
def spool_and_media_dirs(hass: HomeAssistant, tmp_path: Path) -> Generator[Path]:
    """Keep the frame spool and event snapshots in the test's own folder."""
    hass.config.media_dirs = {"local": str(tmp_path / "media")}
    with patch(
        "custom_components.home_security_ai.delivery.spool.spool_directory",
        lambda _hass, entry_id: tmp_path / "spool" / entry_id,
    ):
        yield tmp_path


@pytest.fixture(autouse=True)
def no_deprecated_calls(caplog: pytest.LogCaptureFixture) -> Generator[None]:
    """Fail a test when Home Assistant reports a deprecated call (newer releases remove them)."""
    yield
    reports = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.name == "homeassistant.helpers.frame" and "deprecated" in record.getMessage()
    ]
    assert not reports, "\n".join(reports)


@pytest.fixture
async def sidecar(hass: HomeAssistant, tmp_path: Path) -> AsyncGenerator[Sidecar]:
    """A real sidecar of the test's own, which the test may stop and restart."""
    process = Sidecar(root=tmp_path / "sidecar")
    await hass.async_add_executor_job(process.start)
    yield process
    await hass.async_add_executor_job(process.stop)


@pytest.fixture
def photo() -> bytes:
    """A real photo with people in it."""
    return bus_photo()


def make_entry(sidecar: Sidecar, options: dict[str, Any] | None = None) -> MockConfigEntry:
    """Return a config entry pointing at the sidecar."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Home Security AI (127.0.0.1)",
        unique_id=sidecar.server_id,
        data={CONF_HOST: sidecar.host, CONF_PORT: sidecar.port, CONF_TOKEN: sidecar.token},
        options=options or {},
    )


@pytest.fixture
def mock_config_entry(shared_sidecar: Sidecar) -> MockConfigEntry:
    """A config entry for the shared sidecar, with no sources."""
    return make_entry(shared_sidecar)


class PorchCamera(Camera):
    """A camera entity serving a fixed JPEG."""

    _attr_name = "Porch"
    _attr_unique_id = "porch"

    def __init__(self, image: bytes) -> None:
        """Serve `image`."""
        super().__init__()
        self.image = image
        self.requests = 0

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return the image."""
        self.requests += 1
        return self.image


@pytest.fixture
async def porch_camera(hass: HomeAssistant, photo: bytes) -> PorchCamera:
    """Set up `camera.porch`, a camera entity of a test platform."""
    camera = PorchCamera(photo)

    async def _setup_platform(hass: HomeAssistant, config: Any, add: Any, info: Any) -> None:
        add([camera])

    mock_platform(hass, "test_cam.camera", MockPlatform(async_setup_platform=_setup_platform))
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test_cam"}})
    await hass.async_block_till_done()
    assert hass.states.get(TEST_CAMERA) is not None
    return camera


async def wait_for(hass: HomeAssistant, predicate: Any, what: str, limit: float = 60.0) -> None:
    """Wait (bounded) for real subprocess or network I/O to make `predicate()` true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"Timed out waiting for {what}")
        await asyncio.sleep(0.05)
        await hass.async_block_till_done()


async def wait_for_sidecar(
    check: Callable[[], Awaitable[bool]], what: str, limit: float = 30.0
) -> None:
    """Wait (bounded) until an asynchronous question to the sidecar, `check()`, says yes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"Timed out waiting for {what}")
        await asyncio.sleep(0.05)


def device_by_identifier(
    hass: HomeAssistant, entry_id: str, identifier: tuple[str, str]
) -> dr.DeviceEntry | None:
    """Find an entry's device by one identifier on every supported Home Assistant release.

    (`DeviceRegistry.async_get_device(identifiers=...)` is deprecated from 2026.x on, and its
    replacement does not exist in 2025.4.)
    """
    for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry_id):
        if identifier in device.identifiers:
            return device
    return None


def enable_entity(hass: HomeAssistant, entry: MockConfigEntry, platform: str, key: str) -> None:
    """Enable a disabled-by-default entity of an added entry, before the entry sets up."""
    er.async_get(hass).async_get_or_create(
        platform, DOMAIN, f"{entry.unique_id}_{key}", config_entry=entry, disabled_by=None
    )
