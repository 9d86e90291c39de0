"""Builds one context from the zones, the activity baseline, the scene check and other cameras.

The analysis of a camera window gets an `AnalysisContext`: where each detection is, whether the
activity is usual for this camera at this hour, whether the view itself was tampered with, and
what nearby cameras saw. The prompt is written from it by `events/builder.py` and `llm/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

from gpu_server.context.baseline import ActivityBaseline, AnomalyResult, group_counts
from gpu_server.context.cross_camera import CrossCameraLog, CrossCameraNote
from gpu_server.context.scene import SceneChange
from gpu_server.context.zones import ZoneHit, ZoneRegistry, normalise_box
from gpu_server.vocabulary import LabelGroup


class BoxDetection(Protocol):
    """What the context builder needs from a detection (`ingest.detect.Detection` fits)."""

    @property
    def label(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def x1(self) -> float: ...
    @property
    def y1(self) -> float: ...
    @property
    def x2(self) -> float: ...
    @property
    def y2(self) -> float: ...


@dataclass(frozen=True, slots=True)
class FrameObservation:
    """One analyzed frame of a window: when it was taken, its size, and what was detected."""

    when: datetime
    width: int
    height: int
    detections: Sequence[BoxDetection] = ()


@dataclass(frozen=True, slots=True)
class ZonedDetection:
    label: str
    confidence: float
    when: datetime
    box: tuple[float, float, float, float]  # normalised 0..1
    zones: tuple[ZoneHit, ...]  # zones the foot point is in, then others the box overlaps
    ignored: bool  # stands in an ignore zone: left out of counts and summaries

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(hit.name for hit in self.zones if hit.contains_foot)


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    camera_id: str
    camera_name: str
    start: datetime
    end: datetime
    tz: tzinfo
    detections: tuple[ZonedDetection, ...]
    # Peak simultaneous objects per label group in any one frame (ignore zones excluded).
    counts: dict[LabelGroup, int]
    anomaly: AnomalyResult
    scene: SceneChange | None = None
    cross_camera: tuple[CrossCameraNote, ...] = ()

    @property
    def tamper(self) -> bool:
        return self.scene is not None and self.scene.tamper

    @property
    def relevant_detections(self) -> tuple[ZonedDetection, ...]:
        return tuple(d for d in self.detections if not d.ignored)


class ContextBuilder:
    """Builds an `AnalysisContext` per camera window and feeds the learning stores.

    Blocking (SSIM and file writes): call from a worker thread.
    """

    def __init__(
        self,
        zones: ZoneRegistry,
        baseline: ActivityBaseline,
        cross_camera: CrossCameraLog,
    ) -> None:
        self.zones = zones
        self.baseline = baseline
        self.cross_camera = cross_camera

    def build(
        self,
        camera_id: str,
        frames: Sequence[FrameObservation],
        *,
        camera_name: str | None = None,
    ) -> AnalysisContext:
        """Context for one window. The window also updates the baseline and the log of other
        cameras (after it was scored, so a window is never compared with itself). The scene
        check runs per frame at intake; the scheduler adds its outcome to the context."""
        if not frames:
            raise ValueError("a window needs at least one frame")
        for frame in frames:
            if frame.when.tzinfo is None or frame.when.utcoffset() is None:
                raise ValueError("frame timestamps must be timezone-aware")
        if camera_name:
            self.cross_camera.set_camera_name(camera_id, camera_name)
        ordered = sorted(frames, key=lambda f: f.when)
        start, end = ordered[0].when, ordered[-1].when
        zone_map = self.zones.get(camera_id)

        detections: list[ZonedDetection] = []
        counts = dict.fromkeys(LabelGroup, 0)
        last_seen: datetime | None = None
        for frame in ordered:
            frame_labels: list[str] = []
            for det in frame.detections:
                box = (det.x1, det.y1, det.x2, det.y2)
                assignment = zone_map.zones_for_box(box, frame.width, frame.height)
                detections.append(
                    ZonedDetection(
                        label=det.label,
                        confidence=float(det.confidence),
                        when=frame.when,
                        box=normalise_box(box, frame.width, frame.height),
                        zones=assignment.hits,
                        ignored=assignment.ignored,
                    )
                )
                if not assignment.ignored:
                    frame_labels.append(det.label)
            for group, value in group_counts(frame_labels).items():
                counts[group] = max(counts[group], value)
            if frame_labels:
                last_seen = frame.when

        anomaly = self.baseline.anomaly_score(camera_id, end, counts)
        notes = tuple(self.cross_camera.summarize(camera_id, start, end))

        self.baseline.record(camera_id, end, counts)
        relevant = [d for d in detections if not d.ignored]
        if relevant and last_seen is not None:
            self.cross_camera.add(
                camera_id,
                last_seen,
                dict.fromkeys(d.label for d in relevant),
                [name for d in relevant for name in d.zone_names],
            )

        return AnalysisContext(
            camera_id=camera_id,
            camera_name=camera_name or camera_id,
            start=start,
            end=end,
            tz=self.baseline.timezone(camera_id),
            detections=tuple(detections),
            counts=counts,
            anomaly=anomaly,
            cross_camera=notes,
        )

    def flush(self) -> None:
        """Persist learned state (call on a timer and at shutdown)."""
        self.baseline.flush()
