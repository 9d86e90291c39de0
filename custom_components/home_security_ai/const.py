"""Constants for the Home Security AI integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "home_security_ai"

DEFAULT_PORT: Final = 50051

# Entry data: the sidecar's certificate (PEM), pinned when the entry uses TLS; absent without TLS.
CONF_TLS_CERTIFICATE: Final = "tls_certificate"

CONF_CAMERAS: Final = "cameras"
CONF_SNAPSHOT_INTERVAL: Final = "snapshot_interval"
CONF_MOTION_SENSORS: Final = "motion_sensors"
CONF_UPLOAD_FOLDERS: Final = "upload_folders"
# Seconds a camera's batch of frames stays open, and closes after the last detection;
# 0 keeps the sidecar's defaults.
CONF_BATCH_WINDOW: Final = "batch_window"
CONF_IDLE_TIMEOUT: Final = "idle_timeout"
# Camera id -> [{name, kind, points: [[x, y], ...]}] in 0..1 of the image.
CONF_ZONES: Final = "zones"
CONF_THREAT_MINUTES: Final = "threat_minutes"

DEFAULT_SNAPSHOT_INTERVAL: Final = 30
MAX_SNAPSHOT_INTERVAL: Final = 86_400
DEFAULT_THREAT_MINUTES: Final = 5

# Fired on the bus for every stored security event, with the whole event.
EVENT_SECURITY: Final = "home_security_ai_security_event"
EVENT_INCIDENT_ENDED: Final = "home_security_ai_incident_ended"
# Annotated snapshots of events go to <media>/home_security_ai/<camera id>/<event id>.jpg.
SNAPSHOT_FOLDER: Final = "home_security_ai"

# Snapshots and clips older than this many days are deleted once a day (media/media_retention.py).
CONF_MEDIA_RETENTION_DAYS: Final = "media_retention_days"
DEFAULT_MEDIA_RETENTION_DAYS: Final = 30
MAX_MEDIA_RETENTION_DAYS: Final = 3650
# Whether removing the entry leaves its snapshots and clips in the media folder.
CONF_KEEP_MEDIA_ON_REMOVAL: Final = "keep_media_on_removal"
MEDIA_OPTIONS: Final = frozenset({CONF_MEDIA_RETENTION_DAYS, CONF_KEEP_MEDIA_ON_REMOVAL})
MEDIA_CLEANUP_INTERVAL: Final = timedelta(days=1)
# New snapshots and clips are counted for the media sensor at most this often (seconds).
MEDIA_RECOUNT_COOLDOWN: Final = 60.0

STATUS_UPDATE_INTERVAL: Final = timedelta(seconds=30)
# A language model that keeps failing this long gets a repair issue (one that cannot load at all
# gets it at once): the rules still assess events meanwhile, with less insight.
LANGUAGE_MODEL_ISSUE_AFTER: Final = timedelta(minutes=10)
# Upload folders are watched by file-system events; a full re-scan this often is the safety
# net for changes no event reports (network shares, a folder created after the watch began).
UPLOAD_RESCAN_INTERVAL: Final = timedelta(minutes=5)
# After a change, wait this long before scanning: it gathers a burst of events into one scan.
UPLOAD_CHANGE_DELAY: Final = 1.0
# A dropped file is sent once its size and mtime held still across two scans and it
# is at least this old (the uploader has finished writing it).
UPLOAD_SETTLE_SECONDS: Final = 0.5
UPLOAD_MAX_FILE_BYTES: Final = 24 * 1024 * 1024
UPLOAD_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png"})
# Uploaded videos are sampled to frames (sources/video_frames.py); only their start is decoded,
# so the byte limit is far above an image's.
UPLOAD_VIDEO_EXTENSIONS: Final = frozenset({".mp4", ".mkv", ".avi", ".mov"})
UPLOAD_MAX_VIDEO_BYTES: Final = 2 * 1024**3

# Frames wait in a spool on disk until an event covers them.
SPOOL_MAX_BYTES: Final = 512 * 1024 * 1024
SPOOL_MAX_AGE: Final = timedelta(days=2)
SPOOL_EXPIRE_INTERVAL: Final = timedelta(minutes=10)
# Upload folders stop adding frames while the spool is fuller than this share.
SPOOL_HIGH_WATER: Final = 0.9
# Frames sent on the stream but not acked yet; more wait in the spool.
MAX_IN_FLIGHT_FRAMES: Final = 32
# Images of frames just spooled are kept in memory up to this many bytes, so that their first
# send does not read them back from disk.
SEND_CACHE_BYTES: Final = 32 * 1024 * 1024
# A frame the sidecar refused because its event outbox is full is sent again after this long.
BACKPRESSURE_RETRY_SECONDS: Final = 5.0
# A frame the sidecar failed on (REJECT_REASON_INTERNAL, an unknown ack) is sent again after
# BACKPRESSURE_RETRY_SECONDS, doubling per attempt up to this long.
RETRY_MAX_SECONDS: Final = 300.0
# The largest encoded frame sent: the sidecar's default frame limit, below the 32 MiB gRPC
# message limit. A bigger frame is refused before it is spooled (it would end the stream).
MAX_FRAME_BYTES: Final = 24 * 1024 * 1024
# A camera's entities show its newest analyzed frame at most once per this many seconds: at
# 20 frames/s each would otherwise write its state (and the recorder store it) 20 times a second.
CAMERA_UPDATE_INTERVAL: Final = 1.0
# The status of the server device is refreshed at most once per this many seconds of acks.
STATUS_REFRESH_DELAY: Final = 1.0
RECONNECT_BACKOFF_INITIAL: Final = 1.0
RECONNECT_BACKOFF_MAX: Final = 30.0

CAMERA_ID_MAX_LENGTH: Final = 64

STORAGE_VERSION: Final = 1


def signal_new_camera(entry_id: str) -> str:
    """Dispatcher signal sent with a camera id when a new camera appears."""
    return f"{DOMAIN}_{entry_id}_new_camera"


def signal_camera_updated(entry_id: str, camera_id: str) -> str:
    """Dispatcher signal sent when a camera has a new analyzed frame."""
    return f"{DOMAIN}_{entry_id}_camera_{camera_id}"


def signal_connection(entry_id: str) -> str:
    """Dispatcher signal sent when a stream to the sidecar connects or drops."""
    return f"{DOMAIN}_{entry_id}_connection"


def signal_spool_updated(entry_id: str) -> str:
    """Dispatcher signal sent when the frame spool changes."""
    return f"{DOMAIN}_{entry_id}_spool"


def signal_media_updated(entry_id: str) -> str:
    """Dispatcher signal sent when the media clean-up has counted the snapshots and clips."""
    return f"{DOMAIN}_{entry_id}_media"


def signal_event(entry_id: str, camera_id: str) -> str:
    """Dispatcher signal sent with a stored security event of a camera."""
    return f"{DOMAIN}_{entry_id}_event_{camera_id}"


# ---- Alerts: presence, escalation, quiet hours, minimum levels (alerts/alerting.py) --------------

# Person entities whose absence raises the stakes: nobody of them home escalates events.
CONF_PRESENCE_PERSONS: Final = "presence_persons"
# Raise the level one step when armed away or nobody is home.
CONF_ESCALATE: Final = "escalate"
# Quiet hours: the weekdays a window starts on (mon..sun) and its local start and end times.
CONF_QUIET_DAYS: Final = "quiet_days"
CONF_QUIET_START: Final = "quiet_start"
CONF_QUIET_END: Final = "quiet_end"
# More quiet-hours windows: [{"days": [...], "start": "HH:MM:SS", "end": "HH:MM:SS"}, ...].
CONF_QUIET_WINDOWS: Final = "quiet_windows"
# Camera id -> the lowest risk level that alerts; camera id -> the lowest risk score.
CONF_MIN_LEVELS: Final = "min_alert_levels"
CONF_MIN_SCORES: Final = "min_alert_scores"
# The household: enrolled name -> {"cameras": [camera ids, none: all], "start"/"end": local
# "HH:MM" (none: always)}. Events whose only people are household members do not alert.
CONF_HOUSEHOLD: Final = "household"
# These apply to the next event; changing them needs no reload.
ALERT_OPTIONS: Final = frozenset(
    {
        CONF_PRESENCE_PERSONS,
        CONF_ESCALATE,
        CONF_QUIET_DAYS,
        CONF_QUIET_START,
        CONF_QUIET_END,
        CONF_QUIET_WINDOWS,
        CONF_MIN_LEVELS,
        CONF_MIN_SCORES,
        CONF_HOUSEHOLD,
    }
)

# The analysis switch's attribute: when a pause for a while ends by itself (ISO 8601, UTC).
ATTR_RESUME_AT: Final = "resume_at"
