"""The media source platform: Home Assistant looks it up under this name; media/ holds it."""

from __future__ import annotations

from .media.source import async_get_media_source

__all__ = ["async_get_media_source"]
