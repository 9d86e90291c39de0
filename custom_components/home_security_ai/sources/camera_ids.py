"""Stable camera ids for camera entities and upload folders.

A camera id comes from a name: `camera.front_door` and the folder "Front Door" both give
`front_door`. Two different sources that give the same id would silently become one camera
(one batch, one scene reference, one device), so the first source to claim an id keeps it and
every later one gets a stable suffix from a hash of what it is ("front_door_3fa2c1"), with a
repair issue that says which sources collided. Every assignment is stored, so an id never
changes once given: cameras keep their ids, devices and history across restarts and upgrades.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store

from ..const import CAMERA_ID_MAX_LENGTH, DOMAIN, STORAGE_VERSION

_NON_ALNUM: Final = re.compile(r"[^a-z0-9]+")
_SUFFIX_LENGTH: Final = 6
ENTITY_PREFIX: Final = "entity:"
FOLDER_PREFIX: Final = "folder:"


def _plain_camera_id(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    camera_id = _NON_ALNUM.sub("_", ascii_name.lower()).strip("_")
    return camera_id[:CAMERA_ID_MAX_LENGTH].rstrip("_")


def normalize_camera_id(name: str) -> str:
    """Turn a folder or entity name into a camera id ("Front Door" -> "front_door").

    A name with no ASCII letters or digits ("门口") gets a stable id from its hash instead.
    """
    if camera_id := _plain_camera_id(name):
        return camera_id
    return "cam_" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def is_hashed_camera_id(name: str) -> bool:
    """Return whether the name's camera id comes from its hash."""
    return not _plain_camera_id(name)


def _name(source: str) -> str:
    """The name a source's camera id is made from."""
    if source.startswith(ENTITY_PREFIX):
        return source.removeprefix(ENTITY_PREFIX).partition(".")[2]
    return source.removeprefix(FOLDER_PREFIX)


def _describe(source: str) -> str:
    """'camera.front_door' or 'Front Door/': words would not be translated, a slash needs none."""
    if source.startswith(ENTITY_PREFIX):
        return source.removeprefix(ENTITY_PREFIX)
    return f"{source.removeprefix(FOLDER_PREFIX)}/"


class CameraIds:
    """Which camera id each source has; `async_load` before use, then used from the loop."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Prepare the store; nothing is read yet."""
        self.hass = hass
        self._store: Store[dict[str, str]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.camera_ids"
        )
        self._by_source: dict[str, str] = {}
        self._taken: dict[str, str] = {}  # camera id -> the source it belongs to

    async def async_load(self) -> None:
        """Read the ids given before."""
        stored = await self._store.async_load() or {}
        self._by_source = {
            str(source): str(camera_id)
            for source, camera_id in stored.items()
            if isinstance(camera_id, str) and camera_id
        }
        self._taken = {camera_id: source for source, camera_id in self._by_source.items()}
        # Repair issues last until a restart: say again which sources collided.
        for source, camera_id in self._by_source.items():
            wanted = normalize_camera_id(_name(source))
            if camera_id != wanted and (owner := self._taken.get(wanted)) is not None:
                self._report_collision(wanted, owner, source, camera_id)

    @callback
    def for_entity(self, entity_id: str) -> str:
        """The camera id of a camera entity."""
        return self._claim(f"{ENTITY_PREFIX}{entity_id}")

    @callback
    def for_folder(self, name: str) -> str:
        """The camera id of an upload folder (by its name, in whichever upload root)."""
        return self._claim(f"{FOLDER_PREFIX}{name}")

    @callback
    def _claim(self, source: str) -> str:
        if (known := self._by_source.get(source)) is not None:
            return known
        wanted = normalize_camera_id(_name(source))
        camera_id = wanted
        digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()
        length = _SUFFIX_LENGTH
        while camera_id in self._taken:
            camera_id = f"{wanted[: CAMERA_ID_MAX_LENGTH - length - 1]}_{digest[:length]}"
            length += 2
        if camera_id != wanted:
            self._report_collision(wanted, self._taken[wanted], source, camera_id)
        self._by_source[source] = camera_id
        self._taken[camera_id] = source
        # At once, not at shutdown: an id given must survive a crash. New ids are rare.
        self.hass.async_create_task(
            self._store.async_save(dict(self._by_source)), f"{DOMAIN} save camera ids"
        )
        return camera_id

    @callback
    def _report_collision(self, wanted: str, owner: str, source: str, given: str) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            f"camera_id_collision_{given}",
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="camera_id_collision",
            translation_placeholders={
                "camera_id": wanted,
                "owner": _describe(owner),
                "source": _describe(source),
                "given": given,
            },
        )
