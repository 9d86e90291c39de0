"""End-to-end tests: real frames through a real sidecar, including a sidecar restart."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
from homeassistant.components.camera import async_get_image
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.home_security_ai.const import (
    CONF_CAMERAS,
    CONF_MOTION_SENSORS,
    CONF_SNAPSHOT_INTERVAL,
    CONF_UPLOAD_FOLDERS,
    DOMAIN,
    STATUS_REFRESH_DELAY,
    UPLOAD_RESCAN_INTERVAL,
)

from .conftest import (
    TEST_CAMERA,
    PorchCamera,
    device_by_identifier,
    enable_entity,
    make_entry,
    wait_for,
)
from .sidecar_process import Sidecar, expected_detector_state

MOTION = "binary_sensor.porch_motion"


@pytest.fixture(autouse=True)
def fast_reconnect() -> object:
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


def _entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, unique_id
    return entity_id


def _write_settled(path: Path, data: bytes) -> None:
    """Write a file whose mtime lies in the past, as a finished upload's would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - 5
    os.utime(path, (past, past))


async def _poll_uploads(hass: HomeAssistant, times: int = 2) -> None:
    """Let the upload watcher poll `times` times."""
    for _ in range(times):
        async_fire_time_changed(hass, dt_util.utcnow() + UPLOAD_RESCAN_INTERVAL)
        await hass.async_block_till_done()
        watcher = hass.config_entries.async_entries(DOMAIN)[0].runtime_data.upload_watcher
        await wait_for(hass, lambda w=watcher: not w.scanning, "the poll")


async def test_camera_entity_snapshots(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """Timed and motion snapshots are analysed and shown with their detections."""
    hass.states.async_set(MOTION, STATE_OFF)
    entry = make_entry(
        sidecar,
        {
            CONF_CAMERAS: [TEST_CAMERA],
            # Long enough that no timed snapshot falls due in real time during the test.
            CONF_SNAPSHOT_INTERVAL: 3600,
            CONF_MOTION_SENSORS: {TEST_CAMERA: MOTION},
        },
    )
    entry.add_to_hass(hass)
    enable_entity(hass, entry, "sensor", "server_frames_analysed")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(hass, lambda: data.connection.connected, "the frame stream")

    objects = _entity_id(hass, "sensor", f"{sidecar.server_id}_porch_objects")
    camera = _entity_id(hass, "camera", f"{sidecar.server_id}_porch_camera")
    assert objects == "sensor.porch_objects"
    assert hass.states.get(objects).state == "unknown"
    device = device_by_identifier(hass, entry.entry_id, (DOMAIN, f"{sidecar.server_id}_porch"))
    assert device is not None
    assert device.name == "Porch"
    assert device.via_device_id is not None

    # A timed snapshot.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3600))
    await wait_for(hass, lambda: data.cameras["porch"].frames_accepted == 1, "an ack")
    state = hass.states.get(objects)
    # bus.jpg: people and the bus they stand in front of, counted by label.
    assert state.attributes["person"] >= 1
    assert state.attributes["person"] + state.attributes.get("bus", 0) == int(state.state)
    assert porch_camera.requests == 1
    # The server device's counters follow the frames: the acks' refresh window closes when
    # the clock moves past it, not after a second of real time.
    analysed = _entity_id(hass, "sensor", f"{sidecar.server_id}_server_frames_analysed")
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=STATUS_REFRESH_DELAY + 1))
    await wait_for(hass, lambda: hass.states.get(analysed).state == "1", "the status refresh")

    image = await async_get_image(hass, camera)
    assert image.content_type == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8"
    assert image.content != porch_camera.image  # boxes were drawn

    # The sidecar's batch closes: its event is stored and releases the frame. (Waited for,
    # because an event stored while the next frame of the same picture waits in the spool
    # releases that frame too, and it is then never sent.)
    await wait_for(hass, lambda: data.events.last_sequence > 0, "the batch's event")
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the frame's release")

    # Motion triggers another snapshot (same picture: the sidecar reports a duplicate, covered
    # by the stored event, so the frame leaves the spool at once).
    hass.states.async_set(MOTION, STATE_ON)
    await wait_for(hass, lambda: porch_camera.requests == 2, "the motion snapshot")
    await wait_for(hass, lambda: data.frames.counters.acked == 2, "the motion frame's ack")
    assert data.cameras["porch"].frames_accepted == 1
    assert data.cameras["porch"].frames_duplicate == 1
    await wait_for(hass, lambda: data.spool.frame_count == 0, "the duplicate's release")
    assert int(hass.states.get(objects).state) >= 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_upload_folder_and_sidecar_restart(
    hass: HomeAssistant,
    sidecar: Sidecar,
    photo: bytes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Uploads become cameras; bad files are handled; a sidecar restart is survived."""
    uploads = tmp_path / "uploads"
    (uploads / ".hidden").mkdir(parents=True)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    entry: MockConfigEntry = make_entry(sidecar, {CONF_UPLOAD_FOLDERS: [str(uploads)]})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(hass, lambda: data.connection.connected, "the frame stream")
    server_id = sidecar.server_id

    # A photo, a text file and a file in a hidden folder.
    _write_settled(uploads / "Front Door" / "2026" / "MDAlarm_1.jpg", photo)
    _write_settled(uploads / "Front Door" / "notes.txt", b"not a picture")
    _write_settled(uploads / ".hidden" / "x.jpg", photo)
    _write_settled(uploads / "Front Door" / ".partial.jpg", photo)
    await _poll_uploads(hass)
    await wait_for(hass, lambda: "front_door" in data.cameras, "the new camera")
    await wait_for(
        hass, lambda: data.cameras["front_door"].frames_accepted == 1, "the upload's ack"
    )
    assert set(data.cameras) == {"front_door"}
    assert data.frames.counters.submitted == 1

    objects = _entity_id(hass, "sensor", f"{server_id}_front_door_objects")
    camera = _entity_id(hass, "camera", f"{server_id}_front_door_camera")
    assert objects == "sensor.front_door_objects"
    assert int(hass.states.get(objects).state) >= 1
    assert hass.states.get(camera).state != STATE_UNAVAILABLE

    # A file still being written is only sent once it has settled.
    growing = uploads / "Front Door" / "MDAlarm_2.jpg"
    growing.write_bytes(photo[: len(photo) // 2])
    # Its writer keeps touching it: dated a little ahead, it never looks settled, however slowly
    # the two polls follow each other on a busy machine.
    writing = time.time() + 30
    os.utime(growing, (writing, writing))
    await _poll_uploads(hass)
    with growing.open("ab") as file:
        file.write(photo[len(photo) // 2 :] + b"\x00")
    os.utime(growing, (writing + 1, writing + 1))
    await _poll_uploads(hass, times=1)
    assert data.frames.counters.submitted == 1
    past = time.time() - 5
    os.utime(growing, (past, past))
    await _poll_uploads(hass)
    await wait_for(hass, lambda: data.frames.counters.acked == 2, "the settled upload's ack")

    # A corrupt JPEG is rejected and logged; the stream goes on.
    _write_settled(uploads / "Front Door" / "broken.jpg", photo[:4000])
    _write_settled(uploads / "Garden" / "MDAlarm_3.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    await _poll_uploads(hass)
    await wait_for(hass, lambda: data.frames.counters.rejected == 2, "the rejections")
    assert data.cameras["front_door"].frames_rejected == 1
    assert "rejected Front Door/broken.jpg from camera front_door: truncated" in caplog.text
    assert "garden" in data.cameras

    # Nothing is sent twice.
    await _poll_uploads(hass)
    assert data.frames.counters.submitted == 4

    # The sidecar goes away: connectivity drops and the cameras become unavailable.
    connectivity = _entity_id(hass, "binary_sensor", f"{server_id}_server_connectivity")
    detector = _entity_id(hass, "sensor", f"{server_id}_server_detector")
    assert hass.states.get(connectivity).state == STATE_ON
    port = sidecar.port
    await hass.async_add_executor_job(sidecar.stop)
    await wait_for(hass, lambda: hass.states.get(connectivity).state == STATE_OFF, "the drop")
    assert hass.states.get(camera).state == STATE_UNAVAILABLE
    assert hass.states.get(objects).state == STATE_UNAVAILABLE
    assert hass.states.get(detector).state == STATE_UNAVAILABLE

    # A picture arriving meanwhile waits (new content: the sidecar remembers across restarts
    # which content an event covered already, and reports it as a duplicate) ...
    _write_settled(uploads / "Back Yard" / "MDAlarm_4.jpg", photo + b"\x00\x00")
    await _poll_uploads(hass)
    await wait_for(hass, lambda: data.frames.pending_count == 1, "the queued frame")

    # ... and is delivered once the sidecar is back on the same port with the same id.
    await hass.async_add_executor_job(sidecar.start, port)
    assert sidecar.server_id == server_id
    await wait_for(hass, lambda: hass.states.get(connectivity).state == STATE_ON, "reconnect")
    await wait_for(hass, lambda: data.frames.pending_count == 0, "the queued frame's ack")
    back_yard = data.cameras["back_yard"]
    assert back_yard.frames_accepted + back_yard.frames_duplicate == 1
    assert hass.states.get(camera).state != STATE_UNAVAILABLE
    assert hass.states.get(detector).state == expected_detector_state()
    back_yard_objects = _entity_id(hass, "sensor", f"{server_id}_back_yard_objects")
    assert int(hass.states.get(back_yard_objects).state) >= 1

    # What was sent survives a reload: nothing is sent again.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(hass, lambda: data.connection.connected, "the frame stream")
    await _poll_uploads(hass)
    assert data.frames.counters.submitted == 0
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


class _GateCamera(PorchCamera):
    """A second camera entity serving a fixed JPEG."""

    _attr_name = "Gate"
    _attr_unique_id = "gate"


async def test_motion_sensor_shared_by_cameras(
    hass: HomeAssistant, sidecar: Sidecar, porch_camera: PorchCamera
) -> None:
    """One motion sensor set for two cameras triggers a snapshot of each."""
    gate = _GateCamera(porch_camera.image)
    component = hass.data.get("camera")
    assert component is not None
    await component.async_add_entities([gate])
    await hass.async_block_till_done()
    assert hass.states.get("camera.gate") is not None
    hass.states.async_set(MOTION, STATE_OFF)
    entry = make_entry(
        sidecar,
        {
            CONF_CAMERAS: [TEST_CAMERA, "camera.gate"],
            CONF_SNAPSHOT_INTERVAL: 0,
            CONF_MOTION_SENSORS: {TEST_CAMERA: MOTION, "camera.gate": MOTION},
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    data = entry.runtime_data
    await wait_for(hass, lambda: data.connection.connected, "the frame stream")

    hass.states.async_set(MOTION, STATE_ON)
    await wait_for(hass, lambda: data.frames.counters.acked == 2, "both snapshots' acks")
    assert porch_camera.requests == 1
    assert gate.requests == 1
    assert data.cameras["gate"].frames_sent == 1
    assert data.cameras["porch"].frames_sent == 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
