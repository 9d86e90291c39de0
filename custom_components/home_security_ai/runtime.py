"""What a loaded config entry holds: its parts, built once by `__init__.py`.

Only the top-level modules (set-up, platforms, actions) read it; the parts in the
sub-packages are handed what they use, so none of them imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from homeassistant.config_entries import ConfigEntry

from .alerts.arming import Arming
from .cameras import Cameras
from .client import HomeSecurityAIClient
from .coordinator import HomeSecurityAIStatusCoordinator
from .delivery.connection import ConnectionSupervisor
from .delivery.frame_stream import FrameStream
from .delivery.spool import FrameSpool
from .events.event_stream import EventStream
from .history.store import EventHistory
from .media.media_retention import MediaRetention
from .sources.camera_entities import CameraEntitySource
from .sources.uploads import UploadFolderWatcher

# A `type` statement would need Python 3.12; the package also targets 3.11 tooling.
HomeSecurityAIConfigEntry: TypeAlias = ConfigEntry["HomeSecurityAIData"]


@dataclass(kw_only=True)
class HomeSecurityAIData:
    """Everything one config entry holds while it is loaded."""

    client: HomeSecurityAIClient
    coordinator: HomeSecurityAIStatusCoordinator
    connection: ConnectionSupervisor
    cameras: Cameras
    spool: FrameSpool
    frames: FrameStream
    events: EventStream
    camera_source: CameraEntitySource
    upload_watcher: UploadFolderWatcher
    arming: Arming
    media: MediaRetention
    history: EventHistory
    # Registry id of the sidecar's device, the parent of every camera device.
    server_device_id: str = ""
    # The options the running entry was set up with (zones change without a reload).
    applied_options: dict[str, Any] = field(default_factory=dict)
