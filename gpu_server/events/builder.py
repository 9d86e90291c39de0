"""Turns a closed batch (or a fast-path / tamper frame) into a stored SecurityEvent.

An empty batch becomes NOTHING_TO_REPORT without the LLM; it only releases its frames (and
still teaches the baseline that the hour was quiet). Anything else gets its context (zones,
baseline, scene, other cameras), a risk assessment from the LLM or the rules, and is appended to
the outbox. Blocking work runs in threads; the risk analysis queues the model's work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.context import (
    AnalysisContext,
    ContextEnricher,
    FrameObservation,
    SceneChange,
    SceneChangeKind,
    ZoneMap,
)
from gpu_server.events.cameras import CameraDirectory
from gpu_server.events.clock import Clock, to_ms
from gpu_server.events.outbox import Outbox
from gpu_server.events.progress import ProgressHub, ProgressNote
from gpu_server.events.windows import BatchFrame
from gpu_server.ingest.detect import Detection
from gpu_server.llm.inputs import (
    AnalysisInput,
    BaselineInput,
    CameraActivity,
    DetectionInput,
    ZoneInput,
)
from gpu_server.llm.schema import Assessment
from gpu_server.risk.analysis import RiskAnalysis
from gpu_server.risk.rules import assess_with_rules
from gpu_server.vocabulary import RISK_ZONE_KIND, RiskLevel

_LOGGER = logging.getLogger(__name__)

_RISK_LEVEL: Final = {
    RiskLevel.LOW: events_pb2.RISK_LEVEL_LOW,
    RiskLevel.MEDIUM: events_pb2.RISK_LEVEL_MEDIUM,
    RiskLevel.HIGH: events_pb2.RISK_LEVEL_HIGH,
    RiskLevel.CRITICAL: events_pb2.RISK_LEVEL_CRITICAL,
}
_SCENE_KIND: Final = {
    SceneChangeKind.NONE: events_pb2.SCENE_CHANGE_KIND_NONE,
    SceneChangeKind.COVERED: events_pb2.SCENE_CHANGE_KIND_COVERED,
    SceneChangeKind.MOVED: events_pb2.SCENE_CHANGE_KIND_MOVED,
}
_APPEND_RETRY_MAX_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    camera_id: str
    batch_id: str
    frames: tuple[BatchFrame, ...]
    fast_path: bool = False
    scene: SceneChange | None = None  # set for a tamper frame

    @property
    def tamper(self) -> bool:
        return self.scene is not None and self.scene.tamper

    @property
    def needs_analysis(self) -> bool:
        return self.tamper or any(frame.detections for frame in self.frames)


def select_for_prompt(
    frames: Sequence[BatchFrame], limit: int
) -> list[FrameObservation]:
    """Every frame as an observation, with at most `limit` detections in all.

    The lowest-confidence detections go first, the oldest first among equals; the frames stay,
    so the batch's time span and coverage do not change.
    """
    ranked = [
        (det.confidence, frame.captured_at, index, pos)
        for index, frame in enumerate(frames)
        for pos, det in enumerate(frame.detections)
    ]
    dropped: set[tuple[int, int]] = set()
    if len(ranked) > limit:
        ranked.sort()
        dropped = {(index, pos) for _, _, index, pos in ranked[: len(ranked) - limit]}
    return [
        FrameObservation(
            when=frame.captured_at,
            width=frame.width,
            height=frame.height,
            detections=[
                det for pos, det in enumerate(frame.detections) if (index, pos) not in dropped
            ],
        )
        for index, frame in enumerate(frames)
    ]


def analysis_input(
    context: AnalysisContext, zone_map: ZoneMap, prompt_version: str | None
) -> AnalysisInput:
    """The LLM's view of a batch, from the enriched context."""
    detections = tuple(
        DetectionInput(
            label=det.label[:64] or "object",
            confidence=min(max(det.confidence, 0.0), 1.0),
            zone=det.zone_names[0] if det.zone_names else None,
        )
        for det in context.relevant_detections
    )
    zones = tuple(
        ZoneInput(name=zone.name, kind=RISK_ZONE_KIND[zone.kind])
        for zone in zone_map.zones
        if zone.kind in RISK_ZONE_KIND
    )
    anomaly = context.anomaly
    baseline = BaselineInput(
        anomaly_score=0.0 if anomaly.warming_up else min(max(anomaly.score, 0.0), 1.0),
        expected_events_this_hour=max(0.0, sum(anomaly.expected.values())),
    )
    others = tuple(
        CameraActivity(
            camera_name=note.camera_name[:200] or note.camera_id,
            minutes_ago=max(0.0, note.seconds_before / 60.0),
            labels=tuple(note.labels),
        )
        for note in context.cross_camera
    )
    return AnalysisInput(
        camera_id=context.camera_id,
        camera_name=context.camera_name[:200],
        start=context.start,
        end=context.end,
        local_time=context.end.astimezone(context.tz),
        detections=detections,
        zones=zones,
        baseline=baseline,
        other_cameras=others,
        scene_changed=context.tamper,
        prompt_version=prompt_version or None,
    )


def _detection_pb(det: Detection) -> frames_pb2.Detection:
    return frames_pb2.Detection(
        label=det.label,
        class_id=det.class_id,
        confidence=det.confidence,
        box=frames_pb2.Box(x1=det.x1, y1=det.y1, x2=det.x2, y2=det.y2),
    )


def event_detections(
    frames: Sequence[BatchFrame], zone_map: ZoneMap
) -> list[events_pb2.EventDetection]:
    out: list[events_pb2.EventDetection] = []
    for frame in frames:
        for det in frame.detections:
            assignment = zone_map.zones_for_box(
                (det.x1, det.y1, det.x2, det.y2), frame.width, frame.height
            )
            out.append(
                events_pb2.EventDetection(
                    detection=_detection_pb(det),
                    frame_sha256=frame.sha256,
                    zones=[hit.name for hit in assignment.hits if hit.contains_foot],
                )
            )
    return out


class EventProcessor:
    def __init__(
        self,
        *,
        enricher: ContextEnricher,
        risk: RiskAnalysis,
        outbox: Outbox,
        hub: ProgressHub,
        cameras: CameraDirectory,
        clock: Clock,
        max_detections: int,
    ) -> None:
        self._enricher = enricher
        self._risk = risk
        self._outbox = outbox
        self._hub = hub
        self._cameras = cameras
        self._clock = clock
        self._max_detections = max_detections
        self.running = 0
        self.created = 0

    async def process(self, job: AnalysisJob) -> events_pb2.SecurityEvent:
        """Analyse a job and store its event; returns the event with its sequence."""
        self.running += 1
        try:
            try:
                event = await self._build(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The frames are acknowledged already: an event must still cover them.
                _LOGGER.exception(
                    "analysing batch %s of %s failed; storing a fallback event",
                    job.batch_id[:8], job.camera_id,
                )
                event = self._fallback_event(job, exc)
            return await self._store(event)
        finally:
            self.running -= 1

    def _fallback_event(self, job: AnalysisJob, error: BaseException) -> events_pb2.SecurityEvent:
        """An event that covers the job's frames when building the real one failed.

        Scored by the rules on the bare detections (no zones, baseline or other cameras) when
        there is something to assess; NOTHING_TO_REPORT, marked as a fallback, otherwise or
        when even that fails.
        """
        reason = f"analysis failed: {type(error).__name__}: {error}"[:200]
        frames = job.frames
        times = [frame.captured_at for frame in frames] or [self._clock.wall()]
        start, end = min(times), max(times)
        event = events_pb2.SecurityEvent(
            event_id=uuid.uuid4().hex,
            camera_id=job.camera_id,
            started_at_ms=to_ms(start),
            ended_at_ms=to_ms(end),
            frame_sha256s=list(dict.fromkeys(frame.sha256 for frame in frames)),
            fast_path=job.fast_path,
            fallback=True,
            fallback_reason=reason,
            risk_level=events_pb2.RISK_LEVEL_LOW,
            kind=events_pb2.EVENT_KIND_NOTHING_TO_REPORT,
            summary="The analysis failed; these frames were not assessed.",
            scene_change=(
                _SCENE_KIND[job.scene.kind]
                if job.scene is not None and job.tamper
                else events_pb2.SCENE_CHANGE_KIND_NONE
            ),
        )
        if job.needs_analysis:
            try:
                detections = [det for frame in frames for det in frame.detections]
                analysis = AnalysisInput(
                    camera_id=job.camera_id,
                    camera_name=job.camera_id,
                    start=start,
                    end=end,
                    local_time=end,
                    detections=tuple(
                        DetectionInput(
                            label=det.label[:64] or "object",
                            confidence=min(max(det.confidence, 0.0), 1.0),
                        )
                        for det in detections
                    ),
                    zones=(),
                    baseline=BaselineInput(anomaly_score=0.0),
                    other_cameras=(),
                    scene_changed=job.tamper,
                )
                assessment = assess_with_rules(analysis, reason)
            except Exception:
                _LOGGER.exception("the rules could not assess a failed batch either")
            else:
                event.kind = events_pb2.EVENT_KIND_SECURITY
                event.risk_score = assessment.risk_score
                event.risk_level = _RISK_LEVEL[assessment.risk_level]
                event.summary = assessment.summary
                event.reasoning = assessment.reasoning
                event.recommended_action = assessment.recommended_action
                event.fallback_reason = assessment.fallback_reason or reason
                event.model = assessment.model
                event.detections.extend(
                    events_pb2.EventDetection(
                        detection=_detection_pb(det), frame_sha256=frame.sha256
                    )
                    for frame in frames
                    for det in frame.detections
                )
        event.created_at_ms = to_ms(self._clock.wall())
        return event

    async def _build(self, job: AnalysisJob) -> events_pb2.SecurityEvent:
        if not job.frames:
            raise ValueError("a job needs at least one frame")
        camera = self._cameras.get(job.camera_id)
        name = camera.display_name if camera is not None and camera.display_name else None
        prompt_version = camera.prompt_version if camera is not None else ""
        observations = select_for_prompt(job.frames, self._max_detections)
        zone_map = self._enricher.zones.get(job.camera_id)

        def enrich() -> tuple[AnalysisContext, list[events_pb2.EventDetection]]:
            context = self._enricher.enrich(job.camera_id, observations, camera_name=name)
            return context, event_detections(job.frames, zone_map)

        context, detections = await asyncio.to_thread(enrich)
        if job.scene is not None:
            context = dataclasses.replace(context, scene=job.scene)
        event = events_pb2.SecurityEvent(
            event_id=uuid.uuid4().hex,
            camera_id=job.camera_id,
            started_at_ms=to_ms(context.start),
            ended_at_ms=to_ms(context.end),
            frame_sha256s=list(dict.fromkeys(frame.sha256 for frame in job.frames)),
            fast_path=job.fast_path,
            anomaly_score=0.0 if context.anomaly.warming_up else context.anomaly.score,
            scene_change=(
                _SCENE_KIND[job.scene.kind]
                if job.scene is not None and job.tamper
                else events_pb2.SCENE_CHANGE_KIND_NONE
            ),
        )
        if not job.needs_analysis:
            event.kind = events_pb2.EVENT_KIND_NOTHING_TO_REPORT
            event.risk_level = events_pb2.RISK_LEVEL_LOW
            event.summary = "Nothing to report."
            event.created_at_ms = to_ms(self._clock.wall())
            return event

        analysis = analysis_input(context, zone_map, prompt_version)
        assessment = await self._assess(job, analysis)
        event.kind = events_pb2.EVENT_KIND_SECURITY
        event.risk_score = assessment.risk_score
        event.risk_level = _RISK_LEVEL[assessment.risk_level]
        event.summary = assessment.summary
        event.reasoning = assessment.reasoning
        event.recommended_action = assessment.recommended_action
        event.fallback = assessment.fallback
        event.fallback_reason = assessment.fallback_reason or ""
        event.model = assessment.model
        event.prompt_version = assessment.prompt_version or self._risk.prompt_version_for(analysis)
        event.detections.extend(detections)
        event.zones.extend(
            dict.fromkeys(zone for det in context.relevant_detections for zone in det.zone_names)
        )
        event.created_at_ms = to_ms(self._clock.wall())
        return event

    async def _assess(self, job: AnalysisJob, analysis: AnalysisInput) -> Assessment:
        loop = asyncio.get_running_loop()

        def on_token(text: str) -> None:
            # Called from the model's worker thread.
            if self._hub.subscribers:
                note = ProgressNote(job.camera_id, job.batch_id, text)
                loop.call_soon_threadsafe(self._hub.publish, note)

        # The risk analysis queues model work itself, urgent jobs first.
        return await self._risk.assess(
            analysis, urgent=job.fast_path or job.tamper, on_token=on_token
        )

    async def _store(self, event: events_pb2.SecurityEvent) -> events_pb2.SecurityEvent:
        # The frames are acknowledged to Home Assistant already: keep trying rather than drop.
        delay = 0.5
        while True:
            try:
                await self._outbox.append(event)
            except Exception:
                if self._outbox.closed:
                    # Shut down already: the frames stay with the client, which resends them.
                    _LOGGER.warning(
                        "event for %s not stored: the outbox is closed", event.camera_id
                    )
                    raise
                _LOGGER.exception("Could not store an event; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _APPEND_RETRY_MAX_S)
            else:
                self.created += 1
                return event

