"""The incidents card on a dashboard, in a real browser: the incidents with their snapshots,
answered from the card (false alarm, who it was, snooze) and what that changes.

It uses the stack of the first hour; run alone, it adds the integration itself first.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.error
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import REPO_ROOT, Running
from .test_first_hour import DOMAIN, assert_human_text, wait_until

Screenshot = Callable[[str], Path]
DASHBOARD = "security-incidents"
CARD = "home-security-ai-card"
DESKTOP = {"width": 1280, "height": 1000}
PHONE = {"width": 375, "height": 812}
# More photos, taken "now", so that there are several incidents and cameras to list.
EXTRA_PHOTOS = {"Driveway": "person.jpg", "Garden": "dog.jpg"}
# Well over the sidecar's incident gap in the stack (conftest.py).
INCIDENT_GAP_S = 12

# Whether every snapshot of the card is loaded and shows a picture.
SNAPSHOTS_LOADED = """(images) => images.length > 0 &&
  images.every((image) => image.complete && image.naturalWidth > 0)"""


def _entry_id(stack: Running) -> str:
    (entries,) = stack.api.websocket({"type": "config_entries/get", "domain": DOMAIN})
    if entries:
        return str(entries[0]["entry_id"])
    ready = {"port": stack.sidecar_port, "tls_fingerprint": stack.tls_fingerprint}
    entry_id = str(stack.api.add_entry(ready, stack.token)["result"]["entry_id"])
    stack.api.run_flow(
        "/api/config/config_entries/options/flow",
        entry_id,
        [
            {"next_step_id": "sources"},
            {"cameras": [], "snapshot_interval": 0, "upload_folders": [str(stack.uploads)]},
        ],
    )
    return entry_id


def _events(stack: Running) -> list[dict[str, Any]]:
    reply = stack.api.request(
        "POST", f"/api/services/{DOMAIN}/get_events?return_response", {"limit": 1000}
    )
    return list(reply["service_response"]["events"])


def _with_snapshots(stack: Running) -> tuple[int, int]:
    """How many events have a snapshot, and in how many incidents."""
    try:
        events = [event for event in _events(stack) if event.get("media_content_id")]
    except urllib.error.HTTPError:  # the entry is still loading
        return 0, 0
    return len(events), len({event["incident_id"] or event["event_id"] for event in events})


def _false_alarms(stack: Running, entry_id: str) -> int:
    """The false alarms the sidecar counts, from its status in the entry's diagnostics."""
    diagnostics = stack.api.request("GET", f"/api/diagnostics/config_entry/{entry_id}")
    status = diagnostics["data"]["status"] or {}
    return sum(int(item["false_alarms"]) for item in status.get("feedback", {}).values())


def _analysis_switch(stack: Running, entry_id: str, camera_id: str) -> str:
    (entities,) = stack.api.websocket({"type": "config/entity_registry/list"})
    (switch,) = [
        entity["entity_id"]
        for entity in entities
        if entity.get("config_entry_id") == entry_id
        and str(entity.get("unique_id")).endswith(f"_{camera_id}_analysis_enabled")
    ]
    return str(switch)


def _state(stack: Running, entity_id: str) -> str:
    return str(stack.api.request("GET", f"/api/states/{entity_id}")["state"])


def _log_in(page: Page, stack: Running) -> None:
    """Log in unless the first hour's tests did already."""
    if not page.url.startswith(stack.url):  # this browser has not been to Home Assistant
        page.goto(stack.url)
        page.wait_for_url(re.compile(r"/auth/authorize"))
        page.get_by_label("Username").fill("demo")
        page.get_by_label("Password", exact=True).fill(stack.password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"/lovelace"))
        # Signed in once the sidebar shows: the tokens are kept for the next page.
        expect(page.get_by_text("Settings").first).to_be_visible()


@pytest.fixture(scope="module")
def entry_id(stack: Running) -> str:
    """The integration, watching the sample cameras, and two more photos dropped one after
    the other: an incident each."""
    entry_id = _entry_id(stack)
    wait_until(lambda: _with_snapshots(stack)[0] >= 2, "the sample cameras' events")
    for camera, photo in EXTRA_PHOTOS.items():
        time.sleep(INCIDENT_GAP_S)  # the incident before has ended
        incidents = _with_snapshots(stack)[1]
        (stack.uploads / camera).mkdir(exist_ok=True)
        shutil.copy(REPO_ROOT / "tests" / "gpu_server" / "data" / "photos" / photo,
                    stack.uploads / camera / photo)  # fmt: skip
        wait_until(lambda n=incidents: _with_snapshots(stack)[1] > n, f"{photo}'s incident")
    return entry_id


@pytest.fixture(scope="module")
def card_page(page: Page, stack: Running, entry_id: str) -> Page:
    """A dashboard of its own: the whole home's incidents, and one camera's."""
    stack.api.websocket(
        {
            "type": "lovelace/dashboards/create",
            "url_path": DASHBOARD,
            "title": "Incidents",
            "icon": "mdi:shield-home",
        },
        {
            "type": "lovelace/config/save",
            "url_path": DASHBOARD,
            "config": {
                "views": [
                    {
                        "title": "Incidents",
                        "path": "incidents",
                        "cards": [
                            {"type": f"custom:{CARD}", "days": 3, "max_incidents": 5},
                            # A camera by the integration's camera entity.
                            {
                                "type": f"custom:{CARD}",
                                "camera": "camera.front_door",
                                "title": "Front Door",
                            },
                        ],
                    }
                ]
            },
        },
    )
    _log_in(page, stack)
    page.set_viewport_size(DESKTOP)
    page.goto(f"{stack.url}/{DASHBOARD}/incidents")
    return page


def _incident(page: Page, number: int) -> Locator:
    """The whole home card's incident by its place now, followed by its key from then on (new
    events may come in between)."""
    key = page.locator(CARD).first.locator(".incident").nth(number).get_attribute("data-incident")
    return page.locator(CARD).first.locator(f'.incident[data-incident="{key}"]')


def _wait_for_snapshots(page: Page) -> None:
    snapshots = page.locator(f"{CARD} img")
    wait_until(lambda: bool(snapshots.evaluate_all(SNAPSHOTS_LOADED)), "the snapshots", 60)


def test_card_lists_the_incidents_with_their_snapshots(
    card_page: Page, stack: Running, screenshot: Screenshot
) -> None:
    page = card_page
    whole_home = page.locator(CARD).first
    expect(whole_home.locator(".incident").first).to_be_visible()
    _wait_for_snapshots(page)
    since = datetime.now(UTC) - timedelta(days=3)
    events = [e for e in _events(stack) if datetime.fromisoformat(e["started_at"]) > since]
    # Newest first, as many as the incidents of the last three days (up to max_incidents).
    shown = whole_home.locator(".incident")
    assert shown.count() == min(5, len({e["incident_id"] or e["event_id"] for e in events}))
    newest = events[0]
    first = shown.first
    expect(first.locator(".chip")).to_have_text(re.compile(r"^(low|medium|high|critical) · \d+$"))
    # The summary of the newest incident is its highest-level event's; one of its events.
    summaries = {e["summary"] for e in events if e["incident_id"] == newest["incident_id"]}
    assert first.locator(".summary").inner_text() in summaries
    assert first.get_attribute("data-cameras") == newest["camera_id"]
    # The second card shows the front door only.
    front_door = page.locator(CARD).nth(1).locator(".incident")
    expect(front_door.first).to_be_visible()
    cameras = {front_door.nth(i).get_attribute("data-cameras") for i in range(front_door.count())}
    assert cameras == {"front_door"}
    assert_human_text(page)
    page.mouse.move(1200, 950)
    screenshot("12-incident-card")


def test_false_alarm_reaches_the_server(card_page: Page, stack: Running, entry_id: str) -> None:
    before = _false_alarms(stack, entry_id)
    first = _incident(card_page, 0)
    first.get_by_role("button", name="False alarm").click()
    expect(first.get_by_text("Marked as false alarm")).to_be_visible()
    wait_until(lambda: _false_alarms(stack, entry_id) > before, "the false alarm in the status")


def test_it_was_someone_reaches_the_server(
    card_page: Page, stack: Running, entry_id: str
) -> None:
    before = _false_alarms(stack, entry_id)
    second = _incident(card_page, 1)
    second.get_by_role("button", name="It was …").click()
    # The household's people are offered (the owner's person), and any other name.
    expect(second.get_by_role("button", name="Demo", exact=True)).to_be_visible()
    second.get_by_label("Another name").fill("Anna")
    second.get_by_role("button", name="Save").click()
    expect(second.get_by_text("Marked: it was Anna")).to_be_visible()
    wait_until(lambda: _false_alarms(stack, entry_id) > before, "the verdict in the status")


def test_snooze_pauses_the_camera(
    card_page: Page, stack: Running, entry_id: str, screenshot: Screenshot
) -> None:
    # The incident marked as a false alarm before.
    marked = card_page.locator(CARD).first.locator(".incident", has_text="Marked as false alarm")
    key = marked.get_attribute("data-incident")
    first = card_page.locator(CARD).first.locator(f'.incident[data-incident="{key}"]')
    camera_id = str(first.get_attribute("data-cameras"))
    switch = _analysis_switch(stack, entry_id, camera_id)
    assert _state(stack, switch) == "on"
    first.get_by_role("button", name="Snooze 1 h").click()
    expect(first.get_by_text(re.compile(r"Snoozed .+ for 1 hour"))).to_be_visible()
    wait_until(lambda: _state(stack, switch) == "off", "the camera's analysis switch off", 30)
    # Both answers stay shown after the card reloaded the incidents.
    expect(first.get_by_text("Marked as false alarm")).to_be_visible()

    # On a phone (the same page, narrowed: the answers stay).
    card_page.set_viewport_size(PHONE)
    _wait_for_snapshots(card_page)
    # One column: the snapshot is as wide as the card, and nothing is wider than the phone.
    widths = card_page.locator(f"{CARD} .incident").first.evaluate(
        "(el) => [el.getBoundingClientRect().width,"
        " el.querySelector('.snapshot').getBoundingClientRect().width,"
        " document.documentElement.scrollWidth]"
    )
    assert abs(widths[0] - widths[1]) <= 2, widths
    assert widths[2] <= PHONE["width"], widths
    card_page.evaluate("() => window.scrollTo(0, 0)")  # from the incidents answered lower down
    screenshot("13-incident-card-phone")
    card_page.set_viewport_size(DESKTOP)
