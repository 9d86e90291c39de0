"""Combines zones, the activity baseline, scene checks and other cameras into one context.

The analysis of a camera batch gets an `AnalysisContext`: where each detection is, whether the
activity is usual for this camera at this hour, whether the view itself was tampered with, and
what nearby cameras saw. `to_prompt_facts()` renders it as short plain sentences.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gpu_server.context._text import quote
from gpu_server.context.baseline import ActivityBaseline, AnomalyResult, group_counts
from gpu_server.context.cross_camera import CrossCameraLog, CrossCameraNote
from gpu_server.context.scene import SceneChange, SceneChangeKind, SceneMonitor
from gpu_server.context.zones import ZoneHit, ZoneRegistry, normalise_box
from gpu_server.vocabulary import LabelGroup


class BoxDetection(Protocol):
    """What the enricher needs from a detection (the pipeline's Detection fits)."""

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
    """One analysed frame of a batch: when it was taken, its size, and what was detected."""

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
    unusual_threshold: float = 0.6

    @property
    def tamper(self) -> bool:
        return self.scene is not None and self.scene.tamper

    @property
    def unusual(self) -> bool:
        return not self.anomaly.warming_up and self.anomaly.score >= self.unusual_threshold

    @property
    def relevant_detections(self) -> tuple[ZonedDetection, ...]:
        return tuple(d for d in self.detections if not d.ignored)

    def to_prompt_facts(self) -> list[str]:
        """Short plain sentences for the analysis prompt; user-given names stay quoted."""
        return list(self._facts())

    def _facts(self) -> Iterator[str]:
        local_start = self.start.astimezone(self.tz)
        local_end = self.end.astimezone(self.tz)
        span = f"{local_start:%A %H:%M:%S}"
        if local_end != local_start:
            span += f" to {local_end:%H:%M:%S}"
        yield f"Camera {quote(self.camera_name)}, {span} local time."
        if self.scene is not None:
            yield _scene_fact(self.scene)
        yield from self._detection_facts()
        yield _anomaly_fact(self.anomaly, self.unusual_threshold)
        for note in self.cross_camera:
            yield f"Other camera: {note.text()}."

    def _detection_facts(self) -> Iterator[str]:
        relevant = self.relevant_detections
        if not relevant:
            yield (
                "No objects detected."
                if not self.detections
                else ("No objects detected outside ignore zones.")
            )
        # Per label and zone, the most seen at once in one frame, so a person standing still
        # across ten frames is one person, not ten.
        per_frame: dict[tuple[str, str | None], dict[datetime, int]] = {}
        best: dict[tuple[str, str | None], float] = {}
        kinds: dict[str, str] = {}
        for det in relevant:
            primary = next((hit for hit in det.zones if hit.contains_foot), None)
            key = (det.label, primary.name if primary else None)
            if primary is not None:
                kinds[primary.name] = primary.kind.value
            frames = per_frame.setdefault(key, {})
            frames[det.when] = frames.get(det.when, 0) + 1
            best[key] = max(best.get(key, 0.0), det.confidence)
        for (label, zone), frames in per_frame.items():
            count = max(frames.values())
            what = label if count == 1 else f"{count} x {label}"
            where = f"in zone {quote(zone)} ({kinds[zone]})" if zone else "outside any zone"
            yield f"Detected {what} {where}, confidence up to {best[(label, zone)]:.2f}."
        ignored = len(self.detections) - len(relevant)
        if ignored:
            yield f"{ignored} detection(s) in ignore zones were left out."


def _scene_fact(scene: SceneChange) -> str:
    if scene.baseline_set:
        return "First frame seen from this camera; it is now the reference view."
    if scene.tamper and scene.kind is SceneChangeKind.COVERED:
        return (
            f"TAMPER ALERT: the camera view looks covered or blinded "
            f"(similarity to its usual view {scene.score:.2f})."
        )
    if scene.tamper:
        return (
            f"TAMPER ALERT: the camera view changed, it may have been moved or turned "
            f"(similarity to its usual view {scene.score:.2f})."
        )
    return f"Camera view matches its usual view (similarity {scene.score:.2f})."


def _anomaly_fact(anomaly: AnomalyResult, threshold: float) -> str:
    if anomaly.warming_up:
        return (
            f"Activity history for this hour is still being learned "
            f"({anomaly.samples} hour(s) seen so far)."
        )
    parts = [
        f"{anomaly.observed[group]} {group.value} now, usually {anomaly.expected[group]:.1f}"
        for group in LabelGroup
        if anomaly.observed[group] > 0 or anomaly.expected[group] >= 0.05
    ]
    detail = "; ".join(parts) if parts else "usually no activity, none now"
    verdict = "unusual" if anomaly.score >= threshold else "typical"
    return (
        f"Activity is {verdict} for this camera at this hour "
        f"(anomaly {anomaly.score:.2f} of 1): {detail}."
    )


class ContextEnricher:
    """Builds an `AnalysisContext` per camera batch and feeds the learning stores.

    Blocking (SSIM and file writes): call from a worker thread.
    """

    def __init__(
        self,
        zones: ZoneRegistry,
        baseline: ActivityBaseline,
        scene: SceneMonitor,
        cross_camera: CrossCameraLog,
        *,
        unusual_threshold: float = 0.6,
    ) -> None:
        self.zones = zones
        self.baseline = baseline
        self.scene = scene
        self.cross_camera = cross_camera
        self.unusual_threshold = unusual_threshold

    def enrich(
        self,
        camera_id: str,
        frames: Sequence[FrameObservation],
        *,
        scene_frame: npt.NDArray[np.generic] | None = None,
        camera_name: str | None = None,
        learn: bool = True,
    ) -> AnalysisContext:
        """Context for one batch. With `learn`, the batch also updates the baseline and log
        (after it was scored, so a batch is never compared with itself)."""
        if not frames:
            raise ValueError("a batch needs at least one frame")
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
        scene = self.scene.check(camera_id, scene_frame) if scene_frame is not None else None
        notes = tuple(self.cross_camera.summarize(camera_id, start, end))

        if learn:
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
            scene=scene,
            cross_camera=notes,
            unusual_threshold=self.unusual_threshold,
        )

    def flush(self) -> None:
        """Persist learned state (call on a timer and at shutdown)."""
        self.baseline.flush()
        self.scene.flush()
