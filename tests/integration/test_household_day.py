"""A household's day replayed end to end: real photos with the day's capture times, through a
real sidecar and Home Assistant with the shipped notification blueprint and a notify action that
records what the phone gets. The day itself (who comes when, which of it should page) is in
`household_day.py`, which `bench/household_day.py` shares.

A page is a notification with a tag the phone has not shown that day; a notification with a tag
it already shows replaces that one (an incident's update)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import Event, HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.home_security_ai.const import (
    CONF_MIN_LEVELS,
    CONF_PRESENCE_PERSONS,
    CONF_UPLOAD_FOLDERS,
    DOMAIN,
    EVENT_INCIDENT_ENDED,
    EVENT_SECURITY,
)

from . import household_day as day
from .conftest import make_entry, wait_for
from .notify_blueprint import NOTIFY, blueprint_automation, install_blueprint
from .sidecar_process import Sidecar, expected_detector

# Where the benchmark wants the day's rows (bench/household_day.py sets it).
RESULT_ENV = "HSAI_HOUSEHOLD_DAY_RESULT"
# The hours Anna is expected at the front door (the README's example; the benchmark's
# --member-hours changes it, "always" for any time). The day's hours are those its photos were
# taken at, which the household's rules judge by.
MEMBER_HOURS_ENV = "HSAI_HOUSEHOLD_DAY_MEMBER_HOURS"
DEFAULT_MEMBER_HOURS = "17:00-01:00"
FALSE_ALARM_PREFIX = "HOME_SECURITY_AI_FALSE_ALARM_"


@pytest.fixture
async def day_sidecar(hass: HomeAssistant, tmp_path: Path) -> AsyncGenerator[Sidecar]:
    """A real sidecar whose incidents and cooldowns run at the replay's pace."""
    process = Sidecar(root=tmp_path / "sidecar", env=dict(day.SIDECAR_ENV))
    await hass.async_add_executor_job(process.start)
    yield process
    await hass.async_add_executor_job(process.stop)


async def _use_blueprint(hass: HomeAssistant, config_dir: Path) -> list[ServiceCall]:
    """Install the blueprint as importing it does, and make an automation from it that keeps
    its default minimum level; the phone's notify action records what it is sent."""
    hass.config.config_dir = str(config_dir)
    install_blueprint(hass)
    calls = async_mock_service(hass, "notify", NOTIFY)
    assert await async_setup_component(
        hass, "automation", {"automation": blueprint_automation()}
    )
    await hass.async_block_till_done()
    return calls


async def _until(hass: HomeAssistant, what: str, predicate: Callable[[], bool]) -> None:
    await wait_for(hass, predicate, what, limit=60.0)


class Replay:
    """Plays the day into the upload folders and records what the household was told."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MockConfigEntry,
        uploads: Path,
        calls: list[ServiceCall],
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.uploads = uploads
        self.calls = calls
        self.zone = dt_util.get_default_time_zone()
        self.date = day.day_of_replay(dt_util.now())
        self.events: list[dict[str, Any]] = []
        self.ended: set[str] = set()
        self.seen_tags: set[str] = set()
        self.started = time.monotonic()
        # Per camera: when its previous step started (replay clock) and at which time of day,
        # and when its last security event arrived.
        self.camera_step: dict[str, tuple[float, datetime]] = {}
        self.camera_event: dict[str, float] = {}
        hass.bus.async_listen(EVENT_SECURITY, self._security)
        hass.bus.async_listen(EVENT_INCIDENT_ENDED, self._ended)

    def _security(self, event: Event) -> None:
        self.events.append(dict(event.data))
        self.camera_event[event.data["camera_id"]] = time.monotonic()

    def _ended(self, event: Event) -> None:
        self.ended.add(event.data["incident_id"])

    @property
    def watcher(self) -> Any:
        return self.entry.runtime_data.upload_watcher

    async def send(self, camera: str, shots: list[tuple[day.Shot, datetime]]) -> None:
        """Upload the frames and wait until each has been spooled and sent (two scans: the
        first sees a new file, the next one sends it once it has settled)."""
        target = self.watcher.files_sent + len(shots)
        await self.hass.async_add_executor_job(day.write_frames, self.uploads, camera, shots)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while self.watcher.files_sent < target:
            assert loop.time() < deadline, f"the uploads of {camera} were not sent"
            await self.watcher.async_poll()
            await asyncio.sleep(0.05)

    async def settle(self, first_event: int) -> list[dict[str, Any]]:
        """Wait until every frame sent is covered by an event and the incidents of the new
        events have ended; return the new security events."""
        spool = self.entry.runtime_data.spool
        await _until(self.hass, "the frames' events", lambda: spool.frame_count == 0)
        incidents = {
            data["incident_id"] for data in self.events[first_event:] if data.get("incident_id")
        }
        await _until(self.hass, "the incidents' end", lambda: incidents <= self.ended)
        await self.hass.async_block_till_done()
        return self.events[first_event:]

    async def prologue(self) -> None:
        """Anna, seen on the hallway camera, is enrolled from that event's face and marked as
        a household member on the front door camera."""
        step = day.PROLOGUE
        first = len(self.events)
        now = dt_util.now()
        await self.send(step.camera, [(step.shots[0], now)])
        events = await self.settle(first)
        faces = [face for data in events for face in data["face_ids"]]
        assert faces, f"no face of Anna on the hallway camera: {events}"
        enrolled = await self.hass.services.async_call(
            DOMAIN,
            "enroll_person",
            {"name": day.HOUSEHOLD_MEMBER, "face_id": faces[0]},
            blocking=True,
            return_response=True,
        )
        assert enrolled == {"name": day.HOUSEHOLD_MEMBER, "faces": 1}
        member: dict[str, Any] = {
            "name": day.HOUSEHOLD_MEMBER,
            "cameras": [day.CAMERA_IDS[day.FRONT_DOOR]],
        }
        hours = os.environ.get(MEMBER_HOURS_ENV) or DEFAULT_MEMBER_HOURS
        if hours != "always":
            member["start"], member["end"] = hours.split("-")
        await self.hass.services.async_call(
            DOMAIN, "set_household_member", member, blocking=True
        )

    async def wait_for_the_hour(self, step: day.Step) -> None:
        """Let the sidecar's clock pass what the day passes between two steps of a camera:
        minutes at the replay's pace; hours as long as a cooldown lasts (nothing on the
        sidecar's clock lasts longer)."""
        before = self.camera_step.get(step.camera)
        if before is None:
            return
        started, at = before
        minutes = (
            datetime.combine(self.date, step.clock) - at.replace(tzinfo=None)
        ).total_seconds() / 60
        per_minute = 1.0 / day.DAY_MINUTES_PER_SECOND
        if minutes * per_minute < day.COOLDOWN_S:
            until = started + minutes * per_minute
        elif (last := self.camera_event.get(step.camera_id)) is not None:
            # Only a security event starts a cooldown.
            until = last + day.COOLDOWN_S + 0.5
        else:
            return
        await asyncio.sleep(max(0.0, until - time.monotonic()))

    async def play(self, step: day.Step) -> dict[str, Any]:
        for person, state in step.presence.items():
            self.hass.states.async_set(person, state)
        await self.hass.async_block_till_done()
        # A step of one camera, or the usual views of all (the day's first step).
        cameras = [step.camera] if step.camera else list(day.USUAL_VIEW_CAMERAS)
        if step.camera:
            await self.wait_for_the_hour(step)
        first_event, first_call = len(self.events), len(self.calls)
        offset = time.monotonic() - self.started
        for camera in cameras:
            shots = step.shots or (day.Shot(),)
            timed = [(shot, day.capture_time(self.date, step, shot, self.zone)) for shot in shots]
            await self.send(camera, timed)
            self.camera_step[camera] = (time.monotonic(), timed[0][1])
        events = await self.settle(first_event)
        notifications = [
            {**call.data["data"], "title": call.data["title"]} for call in self.calls[first_call:]
        ]
        pages, replaced = day.new_pages(notifications, self.seen_tags)
        return {
            "key": step.key,
            "time": f"{step.clock:%H:%M}",
            "camera": step.camera,
            "what": step.what,
            "expect_page": step.expect_page,
            "why": step.why,
            "expect_reason": step.expect_reason,
            "replay_s": round(offset, 1),
            "pages": pages,
            "replaced": replaced,
            "notifications": [
                {
                    "tag": item["tag"],
                    "title": item["title"],
                    "event_id": _event_of(item),
                    "urgent": item.get("channel") == "alarm_stream",
                    "quiet": item.get("push") == {"interruption-level": "passive"},
                }
                for item in notifications
            ],
            "events": [_summary(data) for data in events],
        }


def _event_of(notification: dict[str, Any]) -> str | None:
    for action in notification.get("actions", []):
        if str(action.get("action", "")).startswith(FALSE_ALARM_PREFIX):
            return str(action["action"])[len(FALSE_ALARM_PREFIX) :]
    return None


def _local(iso: str | None) -> str | None:
    parsed = dt_util.parse_datetime(iso) if iso else None
    return f"{dt_util.as_local(parsed):%Y-%m-%d %H:%M:%S}" if parsed is not None else None


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """What the table and the assertions need of a bus event."""
    return {
        key: data.get(key)
        for key in (
            "event_id",
            "camera_id",
            "incident_id",
            "incident_update",
            "risk_score",
            "raw_risk_level",
            "risk_level",
            "escalation_reason",
            "alert",
            "alert_reason",
            "failsafe",
            "people",
            "unknown_person",
            "scene_change",
            "fast_path",
            "cooldown_until",
            "started_at",
            "created_at",
            "summary",
        )
    } | {
        # Local times: when the frames were taken, and when the sidecar made the event (what
        # Home Assistant's alert decision reads the hour from).
        "captured_local": _local(data.get("started_at")),
        "created_local": _local(data.get("created_at")),
        "labels": sorted({item["label"] for item in data.get("detections", [])}),
        "visitors": [
            {key: item[key] for key in ("visitor_id", "name", "cue", "visits")}
            for item in data.get("visitors", [])
        ],
    }


async def test_a_household_day_pages_exactly_when_it_should(
    hass: HomeAssistant, day_sidecar: Sidecar, tmp_path: Path
) -> None:
    """Anna coming home, a courier by day and a cat at night page nobody; each of two strangers
    at night, and the covered driveway camera, pages once; an incident's updates replace its
    notification."""
    if expected_detector()[1]:
        # CI fetches it (and requires it): there its absence is a failure, not a skip.
        missing = "the embedded detector is missing (scripts/setup_sidecar_env fetches it)"
        if os.environ.get("HSAI_REQUIRE_EMBEDDED_MODEL"):
            pytest.fail(missing)
        pytest.skip(missing)
    calls = await _use_blueprint(hass, tmp_path / "config")
    uploads = tmp_path / "uploads"
    for camera in day.CAMERA_IDS:
        (uploads / camera).mkdir(parents=True)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    for person in day.PRESENCE_PERSONS:
        hass.states.async_set(person, "not_home")
    entry = make_entry(
        day_sidecar,
        {
            CONF_UPLOAD_FOLDERS: [str(uploads)],
            CONF_PRESENCE_PERSONS: list(day.PRESENCE_PERSONS),
            CONF_MIN_LEVELS: dict(day.MIN_ALERT_LEVELS),
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")
    watcher = entry.runtime_data.upload_watcher
    await wait_for(
        hass, lambda: set(day.CAMERA_IDS.values()) <= watcher.cameras, "the camera folders"
    )
    # The cameras' settings (their time zone: night and day) reach the sidecar before a frame.
    await entry.runtime_data.events.async_configure()

    replay = Replay(hass, entry, uploads, calls)
    await replay.prologue()
    replay.seen_tags.update(str(call.data["data"]["tag"]) for call in calls)
    replay.started = time.monotonic()
    rows = [await replay.play(step) for step in day.DAY]
    result = {
        "date": replay.date.isoformat(),
        "time_zone": str(replay.zone),
        "replay_s": round(time.monotonic() - replay.started, 1),
        "sidecar_env": day.SIDECAR_ENV,
        "min_alert_levels": day.MIN_ALERT_LEVELS,
        "blueprint_minimum_level": day.BLUEPRINT_MINIMUM_LEVEL,
        "member_hours": os.environ.get(MEMBER_HOURS_ENV) or DEFAULT_MEMBER_HOURS,
        "score": day.score(rows),
        "rows": rows,
    }
    if target := os.environ.get(RESULT_ENV):
        text = json.dumps(result, indent=2) + "\n"
        await hass.async_add_executor_job(Path(target).write_text, text, "utf-8")

    table = "\n" + day.table(rows)
    # Every expected page, and no other.
    for row in rows:
        assert len(row["pages"]) == int(row["expect_page"]), (row["key"], table, row["events"])
    # Where the household's rules hold an incident back, they say why; its updates do not alert.
    for row in rows:
        if row["expect_reason"] is not None:
            opened = [
                event["alert_reason"] for event in row["events"] if not event["incident_update"]
            ]
            assert opened == [row["expect_reason"]], (row["key"], row["events"])
            assert not any(event["alert"] for event in row["events"]), row["events"]
    # Anna is held back by the household rule alone: at the door with nobody home, her event
    # is raised to a level the front door pages for.
    anna = next(row for row in rows if row["expect_reason"] == "household")
    opening = next(event for event in anna["events"] if not event["incident_update"])
    assert (opening["people"], opening["risk_level"]) == (["Anna"], "high"), opening
    # Each notification is tagged with its event's incident; an incident's updates reuse it.
    first = rows[1]
    incident = {event["incident_id"] for event in first["events"]}
    assert len(incident) == 1, first["events"]
    assert any(event["incident_update"] for event in first["events"]), first["events"]
    opening = [event for event in first["events"] if not event["incident_update"]]
    assert [(event["risk_level"], event["escalation_reason"]) for event in opening] == [
        ("critical", "nobody_home")
    ], first["events"]
    # One critical page, then its updates refresh that notification quietly (no new page).
    assert first["replaced"], first["notifications"]
    assert set(first["replaced"]) == set(first["pages"]), first["notifications"]
    assert all(item["quiet"] for item in first["notifications"][1:]), first["notifications"]
    by_id = {event["event_id"]: event for row in rows for event in row["events"]}
    for row in rows:
        for notification in row["notifications"]:
            event = by_id[notification["event_id"]]
            assert notification["tag"] == event["incident_id"], (notification, event)
            if event["incident_update"]:
                # An update refreshes its incident's notification, quietly: never a page.
                assert notification["quiet"], (row["key"], notification)
    # The second stranger: a new incident while the first one's cooldown runs, told apart by
    # face, so it pages.
    second = rows[2]
    assert {event["incident_id"] for event in second["events"]}.isdisjoint(incident)
    opening = next(event for event in second["events"] if not event["incident_update"])
    assert opening["cooldown_until"] is not None, opening
    strangers = {
        visitor["visitor_id"]
        for row in rows[1:3]
        for event in row["events"]
        for visitor in event["visitors"]
        if visitor["cue"] == "face" and not visitor["name"]
    }
    assert len(strangers) == 2, [row["events"] for row in rows[1:3]]
    assert day.score(rows)["precision"] == day.score(rows)["recall"] == 1.0
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
