"""A real Home Assistant with its user interface, a real sidecar and a headless Chromium."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from demo import HomeAssistantApi, Stack, cameras_seen, free_port  # noqa: E402

__all__ = ["Running", "cameras_seen"]

SIDECAR_PYTHON = REPO_ROOT / ".venvs" / "sidecar" / "bin" / "python"
HASS = Path(sys.executable).parent / "hass"
# Where each step's screenshot goes; scripts/test keeps them as the run's artifacts.
SCREENSHOTS = Path(os.environ.get("HSAI_SCREENSHOTS", REPO_ROOT / ".artifacts" / "screenshots"))
# Chromium as root needs --no-sandbox; the rest keeps it off the network and the GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
]


@dataclass
class Running:
    """What the tests need to reach the stack."""

    api: HomeAssistantApi
    url: str
    password: str
    sidecar_port: int
    # The certificate's fingerprint the sidecar wrote in its ready file.
    tls_fingerprint: str
    token: str
    uploads: Path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A new user's first hour comes first: the other files use the integration it adds."""
    items.sort(key=lambda item: item.path.name != "test_first_hour.py")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Generator[Running]:
    """The sidecar and Home Assistant, onboarded, without the integration configured yet."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Chromium is missing; run scripts/setup_browser first.")
    workdir = tmp_path_factory.mktemp("stack")
    uploads = workdir / "uploads"
    shutil.copytree(REPO_ROOT / "samples" / "uploads", uploads)
    running = Stack(workdir)
    port = free_port()
    config = running.prepare_home_assistant(uploads, port)
    token = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(9)
    try:
        # Rule-based assessments answer at once; batches close within seconds, and incidents
        # a few seconds after their last event, so that photos dropped apart make incidents apart.
        ready = running.start_sidecar(
            str(SIDECAR_PYTHON),
            token,
            env={
                "HSAI_LLM_ENABLED": "false",
                "HSAI_BATCH_WINDOW_S": "3",
                "HSAI_BATCH_IDLE_S": "1",
                "HSAI_INCIDENT_GAP_S": "5",
            },
        )
        api = running.start_home_assistant(str(HASS), config, port)
        api.onboard(password)
        yield Running(
            api=api,
            url=api.base_url,
            password=password,
            sidecar_port=int(ready["port"]),
            tls_fingerprint=str(ready["tls_fingerprint"]),
            token=token,
            uploads=uploads,
        )
        assert not running.setup_failures()
    except SystemExit as err:  # the stack's own message says which part did not start
        pytest.fail(str(err))
    finally:
        running.stop()


@pytest.fixture(scope="session")
def browser() -> Generator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def page(browser: Browser) -> Generator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def screenshot(page: Page) -> Callable[[str], Path]:
    """Save a step's screenshot as `<number>-<name>.png`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.wait_for_load_state("networkidle")  # icons and pictures arrive after the text
        page.screenshot(path=path)
        return path

    return take
