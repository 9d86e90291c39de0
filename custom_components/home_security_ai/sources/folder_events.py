"""File-system events from upload folders, so a new upload is seen without re-scanning."""

from __future__ import annotations

import logging
from collections.abc import Callable

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

_LOGGER = logging.getLogger(__name__)

# Opening and reading a file (as the watcher itself does) must not count as a change.
_CHANGES = frozenset(
    {
        EVENT_TYPE_CREATED,
        EVENT_TYPE_MODIFIED,
        EVENT_TYPE_MOVED,
        EVENT_TYPE_DELETED,
        EVENT_TYPE_CLOSED,
    }
)


class _Handler(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _CHANGES:
            self._on_change()


class FolderEvents:
    """Calls `on_change` (from a worker thread) whenever something changes under the roots.

    All methods block: run them in the executor.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        """Remember whom to tell; `watch` starts watching."""
        self._handler = _Handler(on_change)
        self._observer: BaseObserver | None = None
        self._watched: set[str] = set()

    def watch(self, roots: list[str]) -> None:
        """Watch every root not watched yet; a root that cannot be watched is tried next time."""
        if self._observer is None:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        for root in roots:
            if root in self._watched:
                continue
            try:
                self._observer.schedule(self._handler, root, recursive=True)
            except OSError as err:
                _LOGGER.debug("Cannot watch %s for changes: %s", root, err)
                continue
            self._watched.add(root)

    def stop(self) -> None:
        """Stop watching and wait for the watching threads to end."""
        if self._observer is None:
            return
        self._observer.stop()
        self._observer.join()
        self._observer = None
        self._watched.clear()
