"""Camera ids: colliding names get distinct, stable ids and a repair issue."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.home_security_ai.const import DOMAIN
from custom_components.home_security_ai.sources.camera_ids import CameraIds


def _collisions(hass: HomeAssistant) -> dict[str, dict[str, str]]:
    return {
        issue.issue_id: dict(issue.translation_placeholders or {})
        for issue in ir.async_get(hass).issues.values()
        if issue.domain == DOMAIN and issue.translation_key == "camera_id_collision"
    }


async def test_colliding_names_get_stable_distinct_ids(hass: HomeAssistant) -> None:
    """An entity and three folders that all read "front door": the first keeps front_door,
    each other one gets its own suffix, and the same ids come back after a restart."""
    ids = CameraIds(hass, "entry")
    await ids.async_load()
    assert ids.for_entity("camera.front_door") == "front_door"
    folders = {name: ids.for_folder(name) for name in ("Front Door", "Front.Door", "front-door")}
    assert len(set(folders.values())) == 3
    assert all(
        camera_id.startswith("front_door_") and len(camera_id) == len("front_door_") + 6
        for camera_id in folders.values()
    )
    assert ids.for_folder("Garden") == "garden"  # no collision, no suffix
    # Asking again gives the same answers.
    assert ids.for_entity("camera.front_door") == "front_door"
    assert {name: ids.for_folder(name) for name in folders} == folders

    issues = _collisions(hass)
    assert len(issues) == 3
    placeholders = issues[f"camera_id_collision_{folders['front-door']}"]
    assert placeholders == {
        "camera_id": "front_door",
        "owner": "camera.front_door",
        "source": "front-door/",
        "given": folders["front-door"],
    }

    await hass.async_block_till_done()  # the ids are saved
    for issue_id in list(issues):
        ir.async_delete_issue(hass, DOMAIN, issue_id)
    again = CameraIds(hass, "entry")
    await again.async_load()
    # After a restart the other order asks first: the stored ids stand.
    assert {name: again.for_folder(name) for name in reversed(list(folders))} == folders
    assert again.for_entity("camera.front_door") == "front_door"
    assert len(_collisions(hass)) == 3  # said again at every start


async def test_existing_ids_do_not_change(hass: HomeAssistant) -> None:
    """Before ids were stored, each camera's id was its name's: the first to ask keeps it,
    and one that never collided never gets a suffix."""
    ids = CameraIds(hass, "upgraded")
    await ids.async_load()
    assert ids.for_folder("Front Door") == "front_door"
    assert ids.for_entity("camera.driveway") == "driveway"
    assert ids.for_folder("门口").startswith("cam_")
    assert _collisions(hass) == {}
