"""Constants for the Home Security AI integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "home_security_ai"

DEFAULT_PORT: Final = 50051

CONF_CAMERAS: Final = "cameras"
CONF_SNAPSHOT_INTERVAL: Final = "snapshot_interval"
CONF_MOTION_SENSORS: Final = "motion_sensors"
CONF_UPLOAD_FOLDERS: Final = "upload_folders"

DEFAULT_SNAPSHOT_INTERVAL: Final = 30
MAX_SNAPSHOT_INTERVAL: Final = 86_400

STATUS_UPDATE_INTERVAL: Final = timedelta(seconds=30)
UPLOAD_POLL_INTERVAL: Final = timedelta(seconds=2)
# A dropped file is sent once its size and mtime held still across two polls and it
# is at least this old (the uploader has finished writing it).
UPLOAD_SETTLE_SECONDS: Final = 0.5
UPLOAD_MAX_FILE_BYTES: Final = 24 * 1024 * 1024
UPLOAD_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png"})

# Frames waiting for an ack, kept in memory and resent after a reconnect.
MAX_PENDING_FRAMES: Final = 256
RECONNECT_BACKOFF_INITIAL: Final = 1.0
RECONNECT_BACKOFF_MAX: Final = 30.0

CAMERA_ID_MAX_LENGTH: Final = 64

STORAGE_VERSION: Final = 1


def signal_new_camera(entry_id: str) -> str:
    """Dispatcher signal sent with a camera id when a new camera appears."""
    return f"{DOMAIN}_{entry_id}_new_camera"


def signal_camera_updated(entry_id: str, camera_id: str) -> str:
    """Dispatcher signal sent when a camera has a new analysed frame."""
    return f"{DOMAIN}_{entry_id}_camera_{camera_id}"


def signal_connection(entry_id: str) -> str:
    """Dispatcher signal sent when the frame stream connects or drops."""
    return f"{DOMAIN}_{entry_id}_connection"
