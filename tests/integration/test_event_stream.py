"""End-to-end tests of security events: real frames, a real sidecar, crashes and restarts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock, patch

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.home_security_ai.cameras import Cameras
from custom_components.home_security_ai.client import (
    AckStatus,
    AuditRubric,
    EventKind,
    FrameAck,
    FrameIn,
    FrameSource,
    FrameTimings,
    Incident,
    RejectReason,
    SecurityEvent,
)
from custom_components.home_security_ai.const import (
    CONF_CAMERAS,
    CONF_SNAPSHOT_INTERVAL,
    DOMAIN,
    EVENT_INCIDENT_ENDED,
    EVENT_SECURITY,
    MEDIA_RECOUNT_COOLDOWN,
    STORAGE_VERSION,
)
from custom_components.home_security_ai.delivery.frame_stream import FrameStream
from custom_components.home_security_ai.delivery.spool import FrameSpool
from custom_components.home_security_ai.events.event_stream import EventStream
from custom_components.home_security_ai.vocabulary import RISK_LEVELS

from .conftest import (
    TEST_CAMERA,
    PorchCamera,
    enable_entity,
    make_entry,
    wait_for,
    wait_for_sidecar,
)
from .sidecar_process import Sidecar

# Batches stay open until the test closes them (no fast path, no window within the test).
LONG_WINDOW = {
    "HSAI_BATCH_WINDOW_S": "600",
    "HSAI_BATCH_IDLE_S": "600",
    "HSAI_FAST_PATH_LABELS": "giraffe",
}


@pytest.fixture(autouse=True)
def fast_reconnect() -> Generator[None]:
    """Reconnect quickly after the sidecar comes back."""
    with (
        patch(
            "custom_components.home_security_ai.delivery.connection.RECONNECT_BACKOFF_INITIAL",
            0.1,
        ),
        patch("custom_components.home_security_ai.delivery.connection.RECONNECT_BACKOFF_MAX", 0.3),
        patch("custom_components.home_security_ai.RECONNECT_BACKOFF_MAX", 0.3),
    ):
        yield


@pytest.fixture
async def long_window_sidecar(hass: HomeAssistant, tmp_path: Path) -> Any:
    """A real sidecar whose batches stay open until closed by the test."""
    process = Sidecar(root=tmp_path / "sidecar", env=dict(LONG_WINDOW))
    await hass.async_add_executor_job(process.start)
    yield process
    await hass.async_add_executor_job(process.stop)


def _record_events(hass: HomeAssistant) -> list[dict[str, Any]]:
    fired: list[dict[str, Any]] = []

    def _listener(event: Event) -> None:
        fired.append(dict(event.data))

    hass.bus.async_listen(EVENT_SECURITY, _listener)
    return fired


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if entry.entry_id not in {e.entry_id for e in hass.config_entries.async_entries(DOMAIN)}:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.connection.connected, "the frame stream")
    await wait_for(hass, lambda: entry.runtime_data.events.subscribed, "the event stream")


async def _snap(hass: HomeAssistant, entry: MockConfigEntry, camera: PorchCamera, n: int) -> str:
    """Take snapshot number `n` (distinct content each); return its hash."""
    camera.image = camera.image.split(b"\xff\xd9HSAI")[0] + b"\xff\xd9HSAI" + str(n).encode()
    await entry.runtime_data.camera_source.async_snapshot(TEST_CAMERA)
    return hashlib.sha256(camera.image).hexdigest()


def _entity(hass: HomeAssistant, platform: str, server_id: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{server_id}_{key}")
    assert entity_id is not None, key
    return entity_id


def _head(path: Path) -> bytes:
    return path.read_bytes()[:2]


def _listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _options() -> dict[str, Any]:
    return {CONF_CAMERAS: [TEST_CAMERA], CONF_SNAPSHOT_INTERVAL: 0}


async def test_security_event_end_to_end(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera, tmp_path: Path
) -> None:
    """Frames in: the event entity fires, the bus carries the event, a snapshot is saved and
    the spool empties."""
    fired = _record_events(hass)
    entry = make_entry(sidecar, _options())
    entry.add_to_hass(hass)
    enable_entity(hass, entry, "sensor", "server_spool_frames")
    await _setup(hass, entry)
    data = entry.runtime_data
    server_id = sidecar.server_id

    event_entity = _entity(hass, "event", server_id, "porch_security_event")
    assert event_entity == "event.porch_security_event"
    assert hass.states.get(event_entity).state == STATE_UNKNOWN
    assert hass.states.get(event_entity).attributes["event_types"] == list(RISK_LEVELS)
    threat = _entity(hass, "binary_sensor", server_id, "porch_threat_active")
    assert hass.states.get(threat).state == STATE_OFF

    hashes = {await _snap(hass, entry, porch_camera, n) for n in range(2)}
    assert data.spool.frame_count == 2
    await wait_for(hass, lambda: fired, "the security event")
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the spool to empty")

    covered = {sha for payload in fired for sha in payload["frame_sha256s"]}
    assert covered == hashes
    payload = fired[-1]
    assert payload["kind"] == "security"
    assert payload["camera_id"] == "porch"
    assert payload["entry_id"] == entry.entry_id
    assert payload["risk_level"] in RISK_LEVELS
    assert 0 <= payload["risk_score"] <= 100
    assert payload["summary"]
    assert payload["model"]
    assert payload["detections"]
    assert payload["detections"][0]["label"] == "person"
    assert payload["detections"][0]["frame_sha256"] in hashes
    snapshot = Path(payload["snapshot_path"])
    # Filed under the local day the incident started, then the incident (docs/media.md).
    day = dt_util.as_local(dt_util.parse_datetime(payload["incident_started_at"])).date()
    relative = f"home_security_ai/porch/{day}/{payload['incident_id']}/{payload['event_id']}.jpg"
    assert snapshot == tmp_path / "media" / relative
    assert _head(snapshot) == b"\xff\xd8"
    # The media sensor counts new snapshots without waiting for the daily clean-up: the
    # first at once, the later ones at the end of the recount's cooldown.
    media = _entity(hass, "sensor", server_id, "server_media_files")
    await wait_for(hass, lambda: hass.states.get(media).state != "0", "the first media count")
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=MEDIA_RECOUNT_COOLDOWN))
    await wait_for(
        hass, lambda: hass.states.get(media).state == str(len(fired)), "the media count"
    )
    assert payload["media_content_id"] == f"media-source://media_source/local/{relative}"
    assert data.events.last_sequence == payload["sequence"]
    assert _listing(tmp_path / "spool" / entry.entry_id) == []
    # The first event of the camera's first incident: it opens it and pages.
    first = fired[0]
    assert first["incident_id"]
    assert first["incident_update"] is False
    assert first["alert"] is True
    assert first["incident_cameras"] == ["porch"]
    assert first["incident_started_at"]
    assert all(later["incident_id"] == first["incident_id"] for later in fired)

    state = hass.states.get(event_entity)
    assert state.attributes["event_type"] == payload["risk_level"]
    assert state.attributes["event_id"] == payload["event_id"]
    assert state.attributes["risk_score"] == payload["risk_score"]
    assert state.attributes["summary"] == payload["summary"][:255]
    assert state.attributes["incident_id"] == payload["incident_id"]
    assert state.attributes["incident_update"] == payload["incident_update"]
    assert state.attributes["alert"] == payload["alert"]
    score = _entity(hass, "sensor", server_id, "porch_last_risk_score")
    assert hass.states.get(score).state == str(payload["risk_score"])
    summary = _entity(hass, "sensor", server_id, "porch_last_summary")
    assert hass.states.get(summary).state == payload["summary"][:255]
    assert hass.states.get(summary).attributes["reasoning"] == payload["reasoning"]
    today = _entity(hass, "sensor", server_id, "porch_events_today")
    assert hass.states.get(today).state == str(len(fired))
    high = payload["risk_level"] in ("high", "critical")
    assert hass.states.get(threat).state == (STATE_ON if high else STATE_OFF)
    spool_frames = _entity(hass, "sensor", server_id, "server_spool_frames")
    assert hass.states.get(spool_frames).state == "0"

    # The sidecar's outbox is acknowledged: a new subscription from 0 brings nothing back.
    # (The acknowledgement follows the stored sequence; give it a moment.)
    async def _outbox_empty() -> bool:
        return (await data.client.get_status()).events.outbox_depth == 0

    await wait_for_sidecar(_outbox_empty, "the acknowledgement")
    status = await data.client.get_status()
    assert status.events.last_sequence == payload["sequence"]

    # An event at or below the stored sequence is never handled twice.
    count = len(fired)
    await data.events.async_handle(
        SecurityEvent(
            sequence=payload["sequence"],
            event_id="again",
            camera_id="porch",
            kind=EventKind.SECURITY,
        )
    )
    await hass.async_block_till_done()
    assert len(fired) == count
    assert data.events.events_skipped == 1

    # A new security event asks for the server's status (its counters follow the events), with
    # no frame in flight to ask for it.
    async def _no_ack(*_args: Any) -> int:
        return 0

    refresh = data.coordinator.async_request_refresh
    with (
        patch.object(data.coordinator, "async_request_refresh", wraps=refresh) as asked,
        patch.object(data.client, "ack_events", _no_ack),
    ):
        await data.events.async_handle(
            SecurityEvent(
                sequence=data.events.last_sequence + 1,
                event_id="status-after",
                camera_id="porch",
                kind=EventKind.SECURITY,
            )
        )
        await hass.async_block_till_done()
    assert len(fired) == count + 1
    assert asked.call_count == 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def _assert_exactly_once(fired: list[dict[str, Any]], hashes: set[str]) -> None:
    covered = [sha for payload in fired for sha in payload["frame_sha256s"]]
    assert sorted(covered) == sorted(hashes), "every frame in exactly one event"
    assert len({payload["event_id"] for payload in fired}) == len(fired), "no event twice"
    sequences = [payload["sequence"] for payload in fired]
    assert sequences == sorted(set(sequences))


async def test_sidecar_killed_mid_batch(
    hass: HomeAssistant, long_window_sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """kill -9 after the frames were acked and before their batch closed: the spool resends
    them to the restarted sidecar and each ends up in exactly one event."""
    sidecar = long_window_sidecar
    fired = _record_events(hass)
    entry = make_entry(sidecar, _options())
    await _setup(hass, entry)
    data = entry.runtime_data

    hashes = {await _snap(hass, entry, porch_camera, n) for n in range(3)}
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the acks")
    assert data.frames.counters.acked == 3
    assert data.spool.frame_count == 3  # acked, but no event covers them yet
    assert fired == []

    port = sidecar.port
    await hass.async_add_executor_job(sidecar.kill)
    await wait_for(hass, lambda: not data.connection.connected, "the drop")
    # Back on the same port and data folder; batches now close within seconds.
    sidecar.env = {}
    await hass.async_add_executor_job(sidecar.start, port)
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the spool to empty")
    await hass.async_block_till_done()
    _assert_exactly_once(fired, hashes)
    assert data.events.security_events == len(fired)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_home_assistant_restarted_mid_batch(
    hass: HomeAssistant, long_window_sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """Unloading while frames are spooled and the batch is open, then setting up again with
    the same storage: the frames are resent and end up in exactly one event."""
    fired = _record_events(hass)
    entry = make_entry(long_window_sidecar, _options())
    await _setup(hass, entry)
    hashes = {await _snap(hass, entry, porch_camera, n) for n in range(3)}
    frames = entry.runtime_data.frames
    await wait_for(hass, lambda: frames.pending_count == 0, "the acks")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    await _setup(hass, entry)
    data = entry.runtime_data
    assert data.spool.stats.loaded == 3
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the resent frames' acks")
    assert fired == []

    # Close the batch now instead of waiting for its window.
    response = await hass.services.async_call(
        DOMAIN, "analyze_now", {"camera_id": "porch"}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["closed"] is True
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the spool to empty")
    _assert_exactly_once(fired, hashes)
    sequence = data.events.last_sequence

    # And once more: the stored sequence survives, nothing is delivered again.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await _setup(hass, entry)
    assert entry.runtime_data.events.last_sequence == sequence
    assert entry.runtime_data.spool.frame_count == 0
    await hass.async_block_till_done()
    assert len(fired) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def _stored_events(hass: HomeAssistant, entry: MockConfigEntry) -> Store[dict[str, Any]]:
    return Store[dict[str, Any]](hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.events")


async def test_covered_duplicate_is_released_after_restart(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """Content an event covered before a restart that arrives again leaves the spool at once:
    the sidecar names the stored event that covers it (covered_sequence), and Home Assistant
    has stored that event of the same outbox."""
    fired = _record_events(hass)
    entry = make_entry(sidecar, _options())
    await _setup(hass, entry)
    await _snap(hass, entry, porch_camera, 0)
    await wait_for(hass, lambda: fired, "the security event")
    await wait_for(hass, lambda: entry.runtime_data.spool.frame_count == 0, "the spool to empty")
    outbox_id = entry.runtime_data.frames.outbox_id
    assert outbox_id, "the sidecar names its outbox"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    stored = await _stored_events(hass, entry).async_load()
    assert stored is not None
    assert stored["outbox_id"] == outbox_id
    assert stored["last_sequence"] == fired[0]["sequence"]
    assert "released" not in stored  # no memory of released content any more

    await _setup(hass, entry)
    data = entry.runtime_data
    await _snap(hass, entry, porch_camera, 0)
    await wait_for(hass, lambda: data.cameras["porch"].frames_duplicate == 1, "the ack")
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the duplicate's release")
    assert data.spool.stats.released == 1
    assert len(fired) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_uncovered_duplicate_waits_for_its_event(
    hass: HomeAssistant, long_window_sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """The same content sent again while its batch is open is a duplicate no event covers yet:
    both frames stay spooled until the covering event is stored."""
    fired = _record_events(hass)
    entry = make_entry(long_window_sidecar, _options())
    await _setup(hass, entry)
    data = entry.runtime_data
    sha = await _snap(hass, entry, porch_camera, 0)
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the first ack")
    await _snap(hass, entry, porch_camera, 0)
    await wait_for(hass, lambda: data.cameras["porch"].frames_duplicate == 1, "the dup")
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the second ack")
    await hass.async_block_till_done()
    assert data.spool.frame_count == 2
    assert data.spool.stats.released == 0

    response = await hass.services.async_call(
        DOMAIN, "analyze_now", {"camera_id": "porch"}, blocking=True, return_response=True
    )
    assert response is not None
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the spool to empty")
    assert data.spool.stats.released == 2
    assert [payload["frame_sha256s"] for payload in fired] == [[sha]]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_duplicate_release_rule(hass: HomeAssistant, tmp_path: Path, photo: bytes) -> None:
    """A DUPLICATE ack releases its frame only when it names a covering event that Home
    Assistant has stored, counted in the same outbox; otherwise the frame stays."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="server")
    entry.add_to_hass(hass)
    spool = FrameSpool(hass, entry.entry_id, tmp_path / "spool", max_bytes=10**8, max_age_s=3600)
    cameras = Cameras(hass, entry.entry_id, threat_duration=timedelta(minutes=5))
    events = EventStream(hass, entry, MagicMock(), spool, cameras)
    frames = FrameStream(
        hass,
        entry,
        MagicMock(),
        MagicMock(),
        spool=spool,
        cameras=cameras,
        event_stored=events.event_stored,
    )
    # Home Assistant has stored the events of outbox-a up to sequence 5.
    events.outbox_id = "outbox-a"
    events.last_sequence = 5
    sha = hashlib.sha256(photo).hexdigest()

    async def _duplicate(outbox_id: str, covered_sequence: int) -> bool:
        """Spool a frame, ack it as a duplicate; return whether it left the spool."""
        frame = FrameIn(
            camera_id="porch",
            image=photo,
            client_ref="test",
            captured_at_ms=1,
            source=FrameSource.UPLOAD,
            content_sha256=sha,
        )
        spooled = await spool.async_add(frame)
        assert spooled is not None
        assert await frames.async_take(spooled.key) is not None
        frames.outbox_id = outbox_id
        frames.async_handle_ack(
            FrameAck(
                client_ref=spooled.key,
                camera_id="porch",
                content_sha256=sha,
                status=AckStatus.DUPLICATE,
                status_code=0,
                reject_reason=RejectReason.UNSPECIFIED,
                message="",
                image_width=1,
                image_height=1,
                detections=(),
                detector="",
                timings=FrameTimings(),
                covered_sequence=covered_sequence,
            )
        )
        # Whatever the ack started has finished: a frame still spooled now stays spooled.
        await hass.async_block_till_done(wait_background_tasks=True)
        assert spooled.acked or spool.get(spooled.key) is None, "the ack was taken"
        if spool.get(spooled.key) is None:
            return True
        await spool.async_remove([spooled.key])
        return False

    assert not await _duplicate("outbox-a", 0)  # no event covers it yet
    assert not await _duplicate("outbox-a", 6)  # covered by an event not stored yet
    assert not await _duplicate("outbox-b", 3)  # a sequence of another outbox
    assert not await _duplicate("", 3)  # an outbox that does not name itself
    assert await _duplicate("outbox-a", 5)
    assert await _duplicate("outbox-a", 1)
    assert spool.stats.released == 2
    assert spool.stats.removed == 4
    assert cameras["porch"].frames_duplicate == 6
    frames.async_stopped()


async def _ack_suppressed(*_args: Any) -> int:
    return 0


async def test_other_outbox_resets_the_cursor_without_firing_again(
    hass: HomeAssistant,
    long_window_sidecar: Sidecar,
    porch_camera: PorchCamera,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stored cursor of another outbox is void: it goes back to 0, the sidecar's events are
    taken again, and one fired before (same event_id) is not fired twice."""
    fired = _record_events(hass)
    entry = make_entry(long_window_sidecar, _options())
    await _setup(hass, entry)
    data = entry.runtime_data
    sha = await _snap(hass, entry, porch_camera, 0)
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the ack")
    outbox_id = data.frames.outbox_id
    assert outbox_id, "the sidecar names its outbox"
    # Handle the event but leave it in the sidecar's outbox (the acknowledgement is lost).
    with patch.object(data.client, "ack_events", _ack_suppressed):
        await hass.services.async_call(
            DOMAIN, "analyze_now", {"camera_id": "porch"}, blocking=True, return_response=True
        )
        await wait_for(hass, lambda: data.spool.frame_count == 0, "the spool to empty")
    assert len(fired) == 1
    sequence = fired[0]["sequence"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    store = _stored_events(hass, entry)
    stored = await store.async_load()
    assert stored is not None
    assert stored["outbox_id"] == outbox_id
    assert fired[0]["event_id"] in stored["recent_event_ids"]
    await store.async_save({**stored, "outbox_id": "an-outbox-long-gone"})

    caplog.set_level(logging.WARNING)
    await _setup(hass, entry)
    events = entry.runtime_data.events
    assert "The sidecar's event outbox is another one" in caplog.text
    await wait_for(hass, lambda: events.last_sequence == sequence, "the event taken again")
    assert events.outbox_id == outbox_id
    assert events.events_skipped == 1
    assert [payload["frame_sha256s"] for payload in fired] == [[sha]]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    stored = await store.async_load()
    assert stored is not None
    assert stored["outbox_id"] == outbox_id
    assert stored["last_sequence"] == sequence


async def test_refused_acknowledgement_resets_the_cursor(
    hass: HomeAssistant,
    long_window_sidecar: Sidecar,
    porch_camera: PorchCamera,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """FAILED_PRECONDITION from AckEvents voids the cursor: logged, reset, resubscribed; the
    event whose acknowledgement was refused is not fired again."""
    fired = _record_events(hass)
    entry = make_entry(long_window_sidecar, _options())
    await _setup(hass, entry)
    data = entry.runtime_data
    events = data.events
    sha = await _snap(hass, entry, porch_camera, 0)
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the ack")
    outbox_id = events.outbox_id
    assert outbox_id, "the sidecar names its outbox"
    events.outbox_id = "not-the-sidecars"  # every acknowledgement is refused now
    caplog.set_level(logging.WARNING)
    await hass.services.async_call(
        DOMAIN, "analyze_now", {"camera_id": "porch"}, blocking=True, return_response=True
    )
    await wait_for(hass, lambda: "refused the event cursor" in caplog.text, "the refusal")
    await wait_for(hass, lambda: events.subscribed and events.outbox_id == outbox_id, "resubscribe")
    await wait_for(hass, lambda: events.events_skipped == 1, "the event taken again")
    assert events.last_sequence == fired[0]["sequence"]
    assert [payload["frame_sha256s"] for payload in fired] == [[sha]]
    assert data.spool.frame_count == 0
    # Acknowledged this time: nothing is left in the sidecar's outbox.
    async def _outbox_empty() -> bool:
        return (await data.client.get_status()).events.outbox_depth == 0

    await wait_for_sidecar(_outbox_empty, "the acknowledgement")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_event_fired_is_stored_even_when_cancelled(
    hass: HomeAssistant, sidecar: Sidecar, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelling the handling right after the bus event fired still releases its frames and
    stores its sequence, so the event is not fired again after a restart. A frame of the event
    is spooled, so that releasing it waits for the executor: the cancellation lands there."""
    entry = make_entry(sidecar)
    await _setup(hass, entry)
    events = entry.runtime_data.events
    spool = entry.runtime_data.spool
    sha = hashlib.sha256(photo).hexdigest()
    spooled = await spool.async_add(
        FrameIn(
            camera_id="porch",
            image=photo,
            client_ref="test",
            captured_at_ms=1,
            source=FrameSource.UPLOAD,
            content_sha256=sha,
        )
    )
    assert spooled is not None
    sequence = events.last_sequence + 1
    event = SecurityEvent(
        sequence=sequence,
        event_id="once",
        camera_id="porch",
        kind=EventKind.SECURITY,
        frame_sha256s=(sha,),
    )
    fired: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    @callback
    def _cancel(bus_event: Event) -> None:
        fired.append(bus_event.data["event_id"])
        tasks[0].cancel()

    hass.bus.async_listen(EVENT_SECURITY, _cancel)
    handling = asyncio.ensure_future(events.async_handle(event))
    tasks.append(handling)
    with pytest.raises(asyncio.CancelledError):
        await handling
    await hass.async_block_till_done()
    assert fired == ["once"]
    assert events.last_sequence == sequence
    assert spool.frame_count == 0
    assert not list(spool.folder.glob(f"{spooled.key}.*")), "the frame's files are gone"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    stored = await Store[dict[str, Any]](
        hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.events"
    ).async_load()
    assert stored is not None
    assert stored["last_sequence"] == sequence

    # The sidecar's outbox never reached that sequence (it starts over, as with a new data
    # folder): the cursor goes back to its start, and the sidecar's events are taken again.
    caplog.set_level(logging.WARNING)
    await _setup(hass, entry)
    assert entry.runtime_data.events.last_sequence == 0
    assert "The sidecar's event outbox starts over" in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_incident_updates_and_endings_reach_the_bus(
    hass: HomeAssistant, sidecar: Sidecar
) -> None:
    """An update of an incident fires with the incident's id and `alert` as the sidecar said;
    the end of an incident fires its own bus event once, and releases nothing."""
    fired = _record_events(hass)
    ended: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_INCIDENT_ENDED, lambda event: ended.append(dict(event.data)))
    entry = make_entry(sidecar)
    await _setup(hass, entry)
    events = entry.runtime_data.events
    start = events.last_sequence
    incident = Incident(
        incident_id="walk",
        update=True,
        camera_ids=("driveway", "porch"),
        started_at_ms=1_767_614_400_000,
        alert=False,
        cooldown_remaining_s=90.0,
    )
    update = SecurityEvent(
        sequence=start + 1,
        event_id="update",
        camera_id="porch",
        kind=EventKind.SECURITY,
        created_at_ms=1_767_614_410_000,
        incident=incident,
        audit_notes=("mentions a vehicle but none was detected",),
        audit_rubric=AuditRubric(
            context_used=4, coherent=3, justified=5, actionable=4, score=4.0
        ),
    )
    end = SecurityEvent(
        sequence=start + 2,
        event_id="end",
        camera_id="driveway",
        kind=EventKind.INCIDENT_ENDED,
        started_at_ms=1_767_614_400_000,
        ended_at_ms=1_767_614_600_000,
        incident=incident,
    )
    with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
        for event in (update, end, end):
            await events.async_handle(event)
        await hass.async_block_till_done()
    (payload,) = fired
    assert payload["incident_id"] == "walk"
    assert payload["incident_update"] is True
    assert payload["alert"] is False
    assert payload["incident_cameras"] == ["driveway", "porch"]
    assert payload["cooldown_until"] == "2026-01-05T12:01:40+00:00"
    assert payload["audit_notes"] == ["mentions a vehicle but none was detected"]
    state = hass.states.get("event.porch_security_event")
    assert state.attributes["incident_id"] == "walk"
    assert state.attributes["alert"] is False
    assert state.attributes["audit_notes"] == ["mentions a vehicle but none was detected"]
    assert state.attributes["audit_score"] == 4.0
    assert state.attributes["audit_rubric"] == {
        "context_used": 4, "coherent": 3, "justified": 5, "actionable": 4,
    }
    assert payload["audit_score"] == 4.0
    assert ended == [
        {
            "entry_id": entry.entry_id,
            "incident_id": "walk",
            "camera_ids": ["driveway", "porch"],
            "started_at": "2026-01-05T12:00:00+00:00",
            "ended_at": "2026-01-05T12:03:20+00:00",
        }
    ]
    assert events.last_sequence == start + 2
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_camera_shows_its_cooldowns(hass: HomeAssistant, sidecar: Sidecar) -> None:
    """The camera entity says until when each kind of finding is cooling down; every security
    event carries the camera's cooldowns as they stand after it."""
    entry = make_entry(sidecar)
    await _setup(hass, entry)
    events = entry.runtime_data.events
    start = events.last_sequence
    made = dt_util.utcnow().replace(microsecond=0)
    made_ms = int(made.timestamp() * 1000)

    def event(sequence: int, cooldowns: tuple[tuple[str, float], ...]) -> SecurityEvent:
        return SecurityEvent(
            sequence=start + sequence,
            event_id=f"cool-{sequence}",
            camera_id="porch",
            kind=EventKind.SECURITY,
            created_at_ms=made_ms,
            incident=Incident(
                incident_id="walk",
                update=sequence > 1,
                camera_ids=("porch",),
                started_at_ms=made_ms,
                alert=sequence == 1,
                cooldowns=cooldowns,
            ),
        )

    with patch.object(entry.runtime_data.client, "ack_events", _ack_suppressed):
        await events.async_handle(event(1, (("person", 600.0),)))
        await hass.async_block_till_done()
        state = hass.states.get("camera.porch")
        assert state.attributes["cooldowns"] == {
            "person": (made + timedelta(seconds=600)).isoformat()
        }
        assert state.attributes["incident_id"] == "walk"
        await events.async_handle(event(2, (("person", 540.0), ("vehicle", 600.0))))
        await hass.async_block_till_done()
    assert hass.states.get("camera.porch").attributes["cooldowns"] == {
        "person": (made + timedelta(seconds=540)).isoformat(),
        "vehicle": (made + timedelta(seconds=600)).isoformat(),
    }
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
