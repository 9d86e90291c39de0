"""A new user's first hour, in a real browser: log in, add the integration, see the cameras.

The steps run in order against one Home Assistant; each saves a screenshot of what the user sees.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import Running, cameras_seen

DOMAIN = "home_security_ai"
Screenshot = Callable[[str], Path]

# All text of the page, including what lives in shadow roots (where Home Assistant's forms are;
# the page's HTML source and body.innerText do not show it).
RENDERED_TEXT = """() => {
  const SKIP = new Set(["STYLE", "SCRIPT", "TEMPLATE"]);
  const parts = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) parts.push(child.textContent);
      else if (child.nodeType === Node.ELEMENT_NODE && !SKIP.has(child.tagName)) walk(child);
    }
  };
  walk(document.body);
  return parts.join(" ").replace(/\\s+/g, " ");
}"""


def rendered_text(page: Page) -> str:
    return str(page.evaluate(RENDERED_TEXT))


def assert_human_text(page: Page) -> str:
    """Every label, description and error on the page is text, not a translation key."""
    text = rendered_text(page)
    keys = re.findall(r"\[%key:[^\]]*\]|component\.home_security_ai\.[\w.]+", text)
    assert not keys, keys
    assert "Translation error" not in text, text
    return text


def entry_id(stack: Running) -> str:
    (entries,) = stack.api.websocket({"type": "config_entries/get", "domain": DOMAIN})
    assert len(entries) == 1, entries
    return str(entries[0]["entry_id"])


def test_log_in(page: Page, stack: Running, screenshot: Screenshot) -> None:
    page.goto(stack.url)
    page.wait_for_url(re.compile(r"/auth/authorize"))
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password", exact=True).fill(stack.password)
    screenshot("01-log-in")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/lovelace"))
    expect(page.get_by_text("Settings").first).to_be_visible()


def _open_add_integration(page: Page, stack: Running) -> None:
    page.goto(f"{stack.url}/config/integrations/dashboard")
    page.get_by_text("Add integration").last.click()
    dialog = page.locator("dialog-add-integration")
    expect(dialog.get_by_text("Select brand")).to_be_visible()
    dialog.get_by_role("textbox").first.fill("Home Security AI")
    dialog.get_by_text("Home Security AI", exact=True).click()
    expect(page.get_by_label("Access token")).to_be_visible()


def test_wrong_token_is_refused_in_the_form(
    page: Page, stack: Running, screenshot: Screenshot
) -> None:
    _open_add_integration(page, stack)
    expect(page.get_by_text("Host name or IP address of the inference server.")).to_be_visible()
    assert_human_text(page)
    screenshot("02-add-integration")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(stack.sidecar_port))
    page.get_by_label("Access token").fill("not-the-token")
    page.get_by_role("button", name="Submit").click()
    _confirm_fingerprint(page, stack, screenshot)
    expect(page.get_by_text("The inference server refused this token.")).to_be_visible()
    assert_human_text(page)
    screenshot("03-wrong-token")


def _confirm_fingerprint(page: Page, stack: Running, screenshot: Screenshot) -> None:
    """TLS is on by default: the form shows the certificate's fingerprint, which must be the
    one the sidecar announced, before anything is sent with the token."""
    expect(page.get_by_text("Check the server's certificate")).to_be_visible()
    text = assert_human_text(page)
    assert stack.tls_fingerprint.upper() in text.upper(), text
    screenshot("03-tls-fingerprint")
    page.get_by_label("The fingerprints match").check()
    page.get_by_role("button", name="Submit").click()


def test_right_token_creates_the_entry(page: Page, stack: Running, screenshot: Screenshot) -> None:
    page.get_by_label("Access token").fill(stack.token)
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("Created configuration for")).to_be_visible()
    assert_human_text(page)
    screenshot("04-entry-created")
    page.get_by_role("button", name="Finish").click()
    assert entry_id(stack)


def test_options_flow_opens_and_saves(page: Page, stack: Running, screenshot: Screenshot) -> None:
    page.goto(f"{stack.url}/config/integrations/integration/{DOMAIN}")
    page.get_by_role("button", name="Configure").first.click()
    # The options open on a menu: frame sources, or alerts and presence.
    expect(page.get_by_text("Alerts and presence")).to_be_visible()
    assert_human_text(page)
    page.get_by_text("Frame sources").click()
    expect(page.get_by_text("Upload folders")).to_be_visible()
    text = assert_human_text(page)
    assert "Upload folders" in text
    screenshot("05-options")  # before the folder is filled in: the test uses a temporary one
    page.get_by_role("button", name="Add upload folders").click()
    page.locator("ha-multi-textfield input").last.fill(str(stack.uploads))
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("Options successfully saved")).to_be_visible()
    assert_human_text(page)
    screenshot("06-options-saved")
    page.get_by_role("button", name="Finish").click()


def test_camera_device_page_shows_values(
    page: Page, stack: Running, screenshot: Screenshot
) -> None:
    wait_until(lambda: bool(cameras_seen(stack.api)), "the sample cameras' values and events")
    devices: list[dict[str, Any]]
    (devices,) = stack.api.websocket({"type": "config/device_registry/list"})
    front_door = next(device for device in devices if device["name"] == "Front Door")
    page.goto(f"{stack.url}/config/devices/device/{front_door['id']}")
    expect(page.get_by_text("Objects").first).to_be_visible()
    expect(page.get_by_text("Security events today").first).to_be_visible()
    text = assert_human_text(page)
    assert re.search(r"Objects \d+", text), text
    screenshot("07-camera-device")


def test_dashboard_shows_cameras_and_server(
    page: Page, stack: Running, screenshot: Screenshot
) -> None:
    stack.api.create_dashboard(entry_id(stack))
    page.goto(f"{stack.url}/lovelace/cameras")
    expect(page.get_by_text("Front Door").first).to_be_visible()
    expect(page.get_by_text("Garden").first).to_be_visible()
    expect(page.get_by_text("Connectivity").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"risk on Front Door")).first).to_be_visible()
    text = assert_human_text(page)
    assert re.search(r"Objects \d+", text), text
    assert "Connected" in text
    assert re.search(r"Last event: (?!unknown)\w", text), text
    screenshot("08-dashboard")
    (issues,) = stack.api.websocket({"type": "repairs/list_issues"})
    assert issues["issues"] == []


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 180.0) -> None:
    """Poll the stack (real processes) until `predicate` holds; bounded."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {what}")
        time.sleep(1)


def _browse(stack: Running, media_id: str) -> dict[str, Any]:
    (listing,) = stack.api.websocket(
        {"type": "media_source/browse_media", "media_content_id": media_id}
    )
    return dict(listing)


def _first_incident(stack: Running) -> list[dict[str, Any]] | None:
    """Return camera -> day -> incident of an incident, one with several snapshots if any."""
    found = [
        [camera, day, child]
        for camera in _browse(stack, f"media-source://{DOMAIN}")["children"]
        for day in _browse(stack, camera["media_content_id"])["children"]
        for child in _browse(stack, day["media_content_id"])["children"]
        if child["can_expand"]
    ]
    found.sort(key=lambda path: path[2]["title"].endswith("(1 snapshot)"))
    return found[0] if found else None


# Whether a thumbnail in the media browser shows a picture: the browser fetches it with the
# user's credentials and sets it as the card's background image.
THUMBNAIL_SHOWN = """() => {
  const found = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) {
      const style = child.style && child.style.backgroundImage;
      if (style && style.startsWith("url(")) found.push(style);
      walk(child);
    }
  };
  walk(document.body);
  return found.length;
}"""


def test_media_browser_shows_an_incident(
    page: Page, stack: Running, screenshot: Screenshot
) -> None:
    """Media -> Home Security AI -> camera -> day -> incident shows its annotated snapshots."""
    found: list[list[dict[str, Any]] | None] = [None]

    def _incident() -> bool:
        found[0] = _first_incident(stack)
        return found[0] is not None

    wait_until(_incident, "an incident in the media browser")
    camera, day, incident = found[0] or []
    page.goto(f"{stack.url}/media-browser/browser")
    page.get_by_text("Home Security AI", exact=True).first.click()
    for step in (camera, day, incident):
        page.get_by_text(step["title"], exact=True).first.click()
    snapshots = [
        child
        for child in _browse(stack, incident["media_content_id"])["children"]
        if child["media_content_type"] == "image/jpeg"
    ]
    assert snapshots
    expect(page.get_by_text(snapshots[0]["title"], exact=True).first).to_be_visible()
    wait_until(lambda: page.evaluate(THUMBNAIL_SHOWN) >= len(snapshots), "the thumbnails", 30)
    assert_human_text(page)
    page.mouse.move(600, 900)  # no tooltip of the last card clicked over the pictures
    screenshot("09-media-browser-incident")


BLUEPRINT_NAME = "Notify on security events (Home Security AI)"


def test_notification_blueprint_is_ready_to_use(
    page: Page, stack: Running, screenshot: Screenshot
) -> None:
    """The blueprint, once imported, is listed and opens as a form to make an automation."""
    page.goto(f"{stack.url}/config/blueprint/dashboard")
    expect(page.get_by_text(BLUEPRINT_NAME)).to_be_visible()
    assert_human_text(page)
    screenshot("10-blueprints")
    page.get_by_text(BLUEPRINT_NAME).click()
    page.wait_for_url(re.compile(r"/config/automation/edit/new"))
    expect(page.get_by_text("Notify action of the phone")).to_be_visible()
    expect(page.get_by_text("Minimum risk level")).to_be_visible()
    assert_human_text(page)
    screenshot("11-blueprint-automation")
