"""Context for the risk analysis: zones, usual activity, camera tampering and nearby cameras."""

from gpu_server.config import SceneConfig
from gpu_server.context.baseline import (
    ActivityBaseline,
    AnomalyResult,
    GroupAnomaly,
    group_counts,
    hour_of_week,
    local_timezone,
)
from gpu_server.context.builder import (
    AnalysisContext,
    BoxDetection,
    ContextBuilder,
    FrameObservation,
    ZonedDetection,
)
from gpu_server.context.cross_camera import ActivityEvent, CrossCameraLog, CrossCameraNote
from gpu_server.context.scene import SceneChange, SceneChangeKind, SceneMonitor, ssim, ssim_map
from gpu_server.context.zones import (
    Zone,
    ZoneAssignment,
    ZoneHit,
    ZoneMap,
    ZoneRegistry,
    point_in_polygon,
)

__all__ = [
    "ActivityBaseline",
    "ActivityEvent",
    "AnalysisContext",
    "AnomalyResult",
    "BoxDetection",
    "ContextBuilder",
    "CrossCameraLog",
    "CrossCameraNote",
    "FrameObservation",
    "GroupAnomaly",
    "SceneChange",
    "SceneChangeKind",
    "SceneConfig",
    "SceneMonitor",
    "Zone",
    "ZoneAssignment",
    "ZoneHit",
    "ZoneMap",
    "ZoneRegistry",
    "ZonedDetection",
    "group_counts",
    "hour_of_week",
    "local_timezone",
    "point_in_polygon",
    "ssim",
    "ssim_map",
]
