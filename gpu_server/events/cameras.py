"""Camera settings from Configure, persisted as JSON in the data dir so a restart keeps them.

Zones are stored by the ZoneRegistry itself and time zones by the activity baseline; this file
keeps the rest (name, windows, prompt version, time zone) and is the record of what was asked.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpu_server.files import atomic_write

_LOGGER = logging.getLogger(__name__)

CAMERAS_FILE: Final = "cameras.json"


class CameraSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    camera_id: str
    display_name: str = ""
    # 0 keeps the server default.
    batch_window_s: int = Field(default=0, ge=0)
    idle_timeout_s: int = Field(default=0, ge=0)
    prompt_version: str = ""
    time_zone: str = ""


class _File(BaseModel):
    version: int = 1
    cameras: dict[str, CameraSettings] = Field(default_factory=dict)


class CameraDirectory:
    """Thread-safe; writes are atomic (temp file + rename)."""

    def __init__(self, data_dir: Path | None) -> None:
        self._path = data_dir / CAMERAS_FILE if data_dir is not None else None
        self._lock = threading.Lock()
        self._cameras: dict[str, CameraSettings] = {}
        self._load()

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            parsed = _File.model_validate_json(self._path.read_bytes())
        except (OSError, ValidationError, ValueError) as err:
            _LOGGER.warning("Camera settings %s unreadable (%s); starting without", self._path, err)
            return
        self._cameras = dict(parsed.cameras)

    def get(self, camera_id: str) -> CameraSettings | None:
        with self._lock:
            return self._cameras.get(camera_id)

    def all(self) -> list[CameraSettings]:
        with self._lock:
            return list(self._cameras.values())

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._cameras)

    def display_name(self, camera_id: str) -> str:
        found = self.get(camera_id)
        return found.display_name if found is not None and found.display_name else camera_id

    def update(self, settings: list[CameraSettings]) -> None:
        with self._lock:
            for item in settings:
                self._cameras[item.camera_id] = item
            if self._path is None:
                return
            payload = _File(cameras=dict(sorted(self._cameras.items())))
            text = json.dumps(payload.model_dump(mode="json"), indent=2)
            atomic_write(self._path, text)
