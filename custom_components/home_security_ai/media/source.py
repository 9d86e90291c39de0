"""The "Home Security AI" media source: camera -> day -> incident -> snapshots and clip.

Identifiers are paths relative to the integration's media folder (media_files.py), so a file's
identifier is where it lies. Files are served by this integration's own authenticated view
(the media source signs the URL it resolves to), which works whatever the user named the
local media folders. An incident's clip is made on first play when it is missing or older
than its newest snapshot; folder listings and encoding run in the executor.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from aiohttp import web
from homeassistant.components.media_player.const import MediaClass, MediaType
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.helpers.translation import async_get_translations

from ..const import DOMAIN
from .incident_clips import async_make_incident_clip, clip_due
from .media_files import (
    CLIP_NAME,
    MEDIA_SUFFIXES,
    SNAPSHOT_SUFFIX,
    Incident,
    MediaFile,
    existing_file,
    integration_folder,
    is_day,
    list_cameras,
    list_day,
    list_days,
    list_incident,
    valid_relative,
)

_LOGGER = logging.getLogger(__name__)

SOURCE_NAME = "Home Security AI"
MEDIA_URL = f"/api/{DOMAIN}/media"
_MIME_TYPES = {SNAPSHOT_SUFFIX: "image/jpeg", ".mp4": "video/mp4"}


async def async_get_media_source(hass: HomeAssistant) -> HomeSecurityAIMediaSource:
    """Set up the media source and the view that serves its files."""
    hass.http.register_view(HomeSecurityAIMediaView(hass))
    return HomeSecurityAIMediaSource(hass)


def _error(key: str, identifier: str) -> dict[str, Any]:
    """Return the arguments of a translated error about one identifier."""
    return {
        "translation_domain": DOMAIN,
        "translation_key": key,
        "translation_placeholders": {"identifier": identifier},
    }


def media_url(relative: str) -> str:
    """Return the view's URL of a file of the integration's media folder."""
    return f"{MEDIA_URL}/{quote(relative)}"


class HomeSecurityAIMediaSource(MediaSource):
    """Browses the annotated snapshots and incident clips of every camera."""

    name = SOURCE_NAME

    def __init__(self, hass: HomeAssistant) -> None:
        """Browse the integration's media folder."""
        super().__init__(DOMAIN)
        self.hass = hass
        # One encoder per clip at a time: a second play waits for the first to finish.
        self._clip_locks: dict[str, asyncio.Lock] = {}

    @property
    def folder(self) -> Path:
        """Return the integration's media folder."""
        return integration_folder(self.hass)

    def _camera_name(self, camera_id: str) -> str:
        """Return the camera's name as the loaded entries know it, else its id."""
        for entry in self.hass.config_entries.async_entries(DOMAIN):
            if entry.state is ConfigEntryState.LOADED:
                camera = entry.runtime_data.cameras.get(camera_id)
                if camera is not None:
                    return str(camera.name)
        return camera_id

    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        """Return the URL of a snapshot or clip; a clip is made first when it is due."""
        relative = item.identifier
        suffix = PurePosixPath(relative).suffix
        if not valid_relative(relative) or suffix not in MEDIA_SUFFIXES:
            raise Unresolvable(**_error("no_such_media", relative))
        if PurePosixPath(relative).name == CLIP_NAME:
            await self._async_make_clip(str(PurePosixPath(relative).parent))
        if await self.hass.async_add_executor_job(existing_file, self.folder, relative) is None:
            raise Unresolvable(**_error("no_such_media", relative))
        return PlayMedia(media_url(relative), _MIME_TYPES[suffix])

    async def _async_make_clip(self, incident_relative: str) -> None:
        """Make or refresh an incident's clip when it has new snapshots."""
        lock = self._clip_locks.setdefault(incident_relative, asyncio.Lock())
        async with lock:
            incident = await self.hass.async_add_executor_job(
                list_incident, self.folder, incident_relative
            )
            if clip_due(incident):
                await async_make_incident_clip(self.hass, self.folder, incident)
        self._clip_locks.pop(incident_relative, None)

    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        """Return the cameras, a camera's days, a day's incidents or an incident's media."""
        parts = PurePosixPath(item.identifier).parts if item.identifier else ()
        if parts and not valid_relative(item.identifier):
            raise BrowseError(**_error("no_such_folder", item.identifier))
        if not parts:
            return await self._async_browse_cameras()
        if len(parts) == 1:
            return await self._async_browse_camera(parts[0])
        if len(parts) == 2 and is_day(parts[1]):
            return await self._async_browse_day(parts[0], parts[1])
        if len(parts) == 3 and is_day(parts[1]):
            return await self._async_browse_incident(item.identifier)
        raise BrowseError(**_error("no_such_folder", item.identifier))

    def _folder(
        self, identifier: str, title: str, children: list[BrowseMediaSource], child_class: str
    ) -> BrowseMediaSource:
        return BrowseMediaSource(
            domain=DOMAIN,
            identifier=identifier,
            media_class=MediaClass.DIRECTORY,
            media_content_type=MediaType.VIDEO,
            title=title,
            can_play=False,
            can_expand=True,
            children=children,
            children_media_class=child_class,
        )

    async def _async_browse_cameras(self) -> BrowseMediaSource:
        cameras = await self.hass.async_add_executor_job(list_cameras, self.folder)
        children = sorted(
            (
                self._folder(camera, self._camera_name(camera), [], MediaClass.DIRECTORY)
                for camera in cameras
            ),
            key=lambda child: child.title.casefold(),
        )
        return self._folder("", SOURCE_NAME, children, MediaClass.DIRECTORY)

    async def _async_browse_camera(self, camera: str) -> BrowseMediaSource:
        days = await self.hass.async_add_executor_job(list_days, self.folder, camera)
        children = [
            self._folder(f"{camera}/{day}", day, [], MediaClass.DIRECTORY) for day in days
        ]
        return self._folder(camera, self._camera_name(camera), children, MediaClass.DIRECTORY)

    async def _async_texts(self) -> dict[str, str]:
        """The folder titles' words, in the language of the server."""
        return await async_get_translations(
            self.hass, self.hass.config.language, "common", {DOMAIN}
        )

    async def _async_browse_day(self, camera: str, day: str) -> BrowseMediaSource:
        listing = await self.hass.async_add_executor_job(list_day, self.folder, camera, day)
        texts = await self._async_texts()
        children: list[tuple[float, BrowseMediaSource]] = [
            (
                incident.snapshots[0].mtime,
                self._folder(
                    incident.relative,
                    _incident_title(incident, texts),
                    [],
                    MediaClass.IMAGE,
                ),
            )
            for incident in listing.incidents
        ]
        children += [(snapshot.mtime, _snapshot(snapshot)) for snapshot in listing.snapshots]
        children.sort(key=lambda child: child[0])
        return self._folder(
            f"{camera}/{day}",
            f"{self._camera_name(camera)} {day}",
            [child for _mtime, child in children],
            MediaClass.DIRECTORY,
        )

    async def _async_browse_incident(self, relative: str) -> BrowseMediaSource:
        incident = await self.hass.async_add_executor_job(list_incident, self.folder, relative)
        if not incident.snapshots:
            raise BrowseError(**_error("no_such_incident", relative))
        texts = await self._async_texts()
        children = [_snapshot(snapshot) for snapshot in incident.snapshots]
        if len(incident.snapshots) > 1:
            children.insert(
                0,
                BrowseMediaSource(
                    domain=DOMAIN,
                    identifier=f"{relative}/{CLIP_NAME}",
                    media_class=MediaClass.VIDEO,
                    media_content_type="video/mp4",
                    title=_text(texts, "media_clip", count=str(len(incident.snapshots))),
                    can_play=True,
                    can_expand=False,
                    thumbnail=media_url(incident.snapshots[-1].relative),
                ),
            )
        return self._folder(
            relative, _incident_title(incident, texts), children, MediaClass.IMAGE
        )


def _text(texts: dict[str, str], key: str, **placeholders: str) -> str:
    return texts.get(f"component.{DOMAIN}.common.{key}", key).format(**placeholders)


def _incident_title(incident: Incident, texts: dict[str, str]) -> str:
    first = incident.snapshots[0].local_time.strftime("%H:%M:%S")
    count = str(len(incident.snapshots))
    return _text(texts, "media_incident", time=first, count=count)


def _snapshot(snapshot: MediaFile) -> BrowseMediaSource:
    return BrowseMediaSource(
        domain=DOMAIN,
        identifier=snapshot.relative,
        media_class=MediaClass.IMAGE,
        media_content_type="image/jpeg",
        title=snapshot.local_time.strftime("%H:%M:%S"),
        can_play=True,
        can_expand=False,
        thumbnail=media_url(snapshot.relative),
    )


class HomeSecurityAIMediaView(HomeAssistantView):
    """Serves the snapshots and clips to signed-in users (and signed URLs)."""

    url = MEDIA_URL + "/{location:.*}"
    name = f"api:{DOMAIN}:media"
    requires_auth = True

    def __init__(self, hass: HomeAssistant) -> None:
        """Serve the integration's media folder."""
        self.hass = hass

    async def get(self, request: web.Request, location: str) -> web.FileResponse:
        """Return one snapshot or clip."""
        path = await self.hass.async_add_executor_job(
            existing_file, integration_folder(self.hass), location
        )
        if path is None:
            raise web.HTTPNotFound
        content_type = _MIME_TYPES[PurePosixPath(location).suffix]
        return web.FileResponse(path, headers={"Content-Type": content_type})
