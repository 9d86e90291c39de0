"""Turns a closed window (or a fast-path / tamper frame) into a stored SecurityEvent.

A window without detections becomes NOTHING_TO_REPORT without the language model; it only
releases its frames (and still teaches the baseline that the hour was quiet). Anything else gets
its context (zones, baseline, scene, other cameras), a risk assessment from the language model
or the rules, and is appended to the outbox. Blocking work runs in threads; the risk analysis
queues the model's work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from gpu_server.context import (
    AnalysisContext,
    ContextBuilder,
    FrameObservation,
    SceneChange,
    SceneChangeKind,
    ZoneMap,
)
from gpu_server.core.clock import Clock, from_ms, hour_of_week, to_ms
from gpu_server.core.enrichment import EnrichmentResult
from gpu_server.enrich.pipeline import Enricher
from gpu_server.enrich.visitors import STRONG_CUES
from gpu_server.events.cameras import CameraDirectory
from gpu_server.events.dwell import DwellTracker, Sighting, person_sightings
from gpu_server.events.incidents import TAMPER_KIND, EndedIncident, IncidentTracker
from gpu_server.events.key_frame import key_frame_score
from gpu_server.events.model import (
    EventDetection,
    EventDwell,
    EventIncident,
    EventKind,
    SecurityEvent,
)
from gpu_server.events.outbox import Outbox
from gpu_server.events.progress import ProgressHub, ProgressNote
from gpu_server.events.windows import WindowFrame
from gpu_server.feedback import EventCase, FeedbackStore
from gpu_server.feedback.context import finding_of, with_feedback
from gpu_server.llm.inputs import (
    AnalysisInput,
    BaselineInput,
    CameraActivity,
    DetectionInput,
    DwellInput,
    PersonInput,
    PoseInput,
    ReturningVisitor,
    SamePersonInput,
    UntrustedText,
    ZoneInput,
)
from gpu_server.llm.schema import Assessment
from gpu_server.risk.analysis import RiskAnalysis
from gpu_server.risk.rules import assess_by_detector_only, assess_with_rules
from gpu_server.vocabulary import RISK_ZONE_KIND, RiskLevel, is_security_finding, label_group

_LOGGER = logging.getLogger(__name__)

_APPEND_RETRY_MAX_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    camera_id: str
    window_id: str
    frames: tuple[WindowFrame, ...]
    fast_path: bool = False
    scene: SceneChange | None = None  # set for a tamper frame

    @property
    def tamper(self) -> bool:
        return self.scene is not None and self.scene.tamper

    @property
    def needs_analysis(self) -> bool:
        """A tampered camera, or a finding: a person, vehicle or animal. Other objects (a cup,
        a chair) are context for a finding, never an event on their own."""
        return self.tamper or any(
            is_security_finding(det.label) for frame in self.frames for det in frame.detections
        )


def key_frame(frames: Sequence[WindowFrame]) -> bytes | None:
    """The annotated picture of the window's most confident finding, where one was kept."""
    kept = [frame for frame in frames if frame.key_frame is not None]
    if not kept:
        return None
    best = max(kept, key=lambda frame: key_frame_score(frame.detections))
    return best.key_frame


def select_for_prompt(
    frames: Sequence[WindowFrame], limit: int
) -> list[FrameObservation]:
    """Every frame as an observation, with at most `limit` detections in all.

    The lowest-confidence detections go first, the oldest first among equals; the frames stay,
    so the window's time span and coverage do not change.
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
    context: AnalysisContext,
    zone_map: ZoneMap,
    prompt_version: str | None,
    sure_confidence: float = 0.9,
    dwell: Sequence[EventDwell] = (),
) -> AnalysisInput:
    """The language model's view of a window, from the enriched context and the zones where a
    person has been loitering."""
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
        seen_at_once={group.value: count for group, count in context.counts.items() if count},
        zones=zones,
        baseline=baseline,
        other_cameras=others,
        scene_changed=context.tamper,
        prompt_version=prompt_version or None,
        detector_sure_confidence=sure_confidence,
        dwell=tuple(
            DwellInput(zone=item.zone, seconds=max(0.0, item.seconds)) for item in dwell
        ),
    )


def since(first: datetime, now: datetime) -> str:
    """When a returning visitor was first seen, as a household says it: 'earlier today',
    'yesterday', 'Monday' within the week, else the date."""
    days = (now.date() - first.date()).days
    if days <= 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days < 7:
        return f"{first:%A}"
    return f"{first:%B} {first.day}"


def with_enrichment(
    analysis: AnalysisInput,
    enriched: EnrichmentResult,
    camera_name: Callable[[str], str] = str,
) -> AnalysisInput:
    """The analysis with what enrichment found: who was recognised, who was seen on another
    camera before, who is lying, crouching or climbing, and the text read off vehicles as
    untrusted text (the prompt sanitizes and flags it; the rules weigh the flag)."""
    same = tuple(
        SamePersonInput(
            camera_name=(camera_name(item.camera_id) or item.camera_id)[:200],
            seconds_ago=max(0.0, item.seconds_ago),
            cue=item.cue,
        )
        for item in enriched.reidentified
    )
    people = tuple(
        PersonInput(name=person.name, distance=max(person.distance, 0.0))
        for person in enriched.people
    )
    poses = tuple(
        PoseInput.model_validate({"person": pose.person, "flags": pose.flags})
        for pose in enriched.poses
        if pose.flags
    )
    texts = tuple(UntrustedText(source="ocr_plate", text=plate.raw) for plate in enriched.plates)
    returning = tuple(
        ReturningVisitor(
            visits=visitor.visits,
            since=since(
                datetime.fromtimestamp(visitor.first_seen_ms / 1000, analysis.local_time.tzinfo),
                analysis.local_time,
            ),
        )
        for visitor in enriched.visitors
        if not visitor.known and visitor.visits >= 2
    )
    known = tuple(
        dict.fromkeys(plate.known_label for plate in enriched.plates if plate.known_label)
    )
    return analysis.model_copy(
        update={
            "people": people,
            "untrusted_texts": analysis.untrusted_texts + texts,
            "known_vehicles": known,
            "same_person": same,
            "poses": poses,
            "returning": returning,
        }
    )


def event_detections(frames: Sequence[WindowFrame], zone_map: ZoneMap) -> list[EventDetection]:
    out: list[EventDetection] = []
    for frame in frames:
        for det in frame.detections:
            assignment = zone_map.zones_for_box(
                (det.x1, det.y1, det.x2, det.y2), frame.width, frame.height
            )
            out.append(
                EventDetection(
                    detection=det,
                    frame_sha256=frame.sha256,
                    zones=tuple(hit.name for hit in assignment.hits if hit.contains_foot),
                )
            )
    return out


def _scene_change(job: AnalysisJob) -> SceneChangeKind:
    return job.scene.kind if job.scene is not None and job.tamper else SceneChangeKind.NONE


def _all_detections(frames: Sequence[WindowFrame]) -> tuple[EventDetection, ...]:
    return tuple(
        EventDetection(detection=det, frame_sha256=frame.sha256)
        for frame in frames
        for det in frame.detections
    )


def _assessed(assessment: Assessment) -> dict[str, Any]:
    """The event fields an assessment fills."""
    return {
        "kind": EventKind.SECURITY,
        "risk_score": assessment.risk_score,
        "risk_level": assessment.risk_level,
        "summary": assessment.summary,
        "reasoning": assessment.reasoning,
        "recommended_action": assessment.recommended_action,
        "scene_description": assessment.scene_description,
        "fallback": assessment.fallback,
        "fallback_reason": assessment.fallback_reason or "",
        "failsafe": assessment.failsafe,
        "model": assessment.model,
        "audit_notes": assessment.audit_notes,
        "audit_rubric": assessment.audit_rubric,
    }


class EventBuilder:
    def __init__(
        self,
        *,
        context_builder: ContextBuilder,
        risk: RiskAnalysis,
        outbox: Outbox,
        hub: ProgressHub,
        cameras: CameraDirectory,
        clock: Clock,
        max_detections: int,
        incidents: IncidentTracker,
        feedback: FeedbackStore,
        sure_confidence: float = 0.9,
        enricher: Enricher | None = None,
        dwell: DwellTracker | None = None,
    ) -> None:
        self._dwell = dwell
        self._feedback = feedback
        self._sure_confidence = sure_confidence
        self._enricher = enricher
        self._context_builder = context_builder
        self._incidents = incidents
        self._risk = risk
        self._outbox = outbox
        self._hub = hub
        self._cameras = cameras
        self._clock = clock
        self._max_detections = max_detections
        self._running = 0
        self._created = 0

    @property
    def running(self) -> int:
        """Analyses under way."""
        return self._running

    @property
    def created(self) -> int:
        """Events stored since the start."""
        return self._created

    async def process(self, job: AnalysisJob) -> SecurityEvent:
        """Analyze a job and store its event; returns the event with its sequence."""
        self._running += 1
        try:
            try:
                event = await self._build(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The frames are acknowledged already: an event must still cover them.
                _LOGGER.exception(
                    "analyzing window %s of %s failed; storing a fallback event",
                    job.window_id[:8], job.camera_id,
                )
                event = self._fallback_event(job, exc)
            if event.kind is EventKind.SECURITY:
                event = self._in_incident(job, event)
            stored = await self._store(event)
            if stored.kind is EventKind.SECURITY:
                await self._remember_case(stored)
            return stored
        finally:
            self._running -= 1

    async def _remember_case(self, event: SecurityEvent) -> None:
        """Keep what the event was about, for the household's verdict on it later."""
        local = datetime.fromtimestamp(
            event.ended_at_ms / 1000, tz=self._context_builder.baseline.timezone(event.camera_id)
        )
        findings = {
            finding_of(item.detection.label, item.zones[0] if item.zones else None)
            for item in event.detections
        }
        case = EventCase(
            event_id=event.event_id,
            camera_id=event.camera_id,
            hour_of_week=hour_of_week(local),
            findings=tuple(sorted(findings)),
            summary=event.summary,
        )
        try:
            await self._feedback.record(case)
        except Exception:
            # The event is stored and goes out; only a later verdict on it is lost.
            _LOGGER.exception("could not keep event %s for feedback", event.event_id[:8])

    def _in_incident(self, job: AnalysisJob, event: SecurityEvent) -> SecurityEvent:
        kinds = {label_group(det.detection.label).value for det in event.detections}
        if job.tamper:
            kinds.add(TAMPER_KIND)
        stamp = self._incidents.stamp(
            job.camera_id,
            kinds,
            event.risk_level,
            fast_path=job.fast_path,
            same_person_on=[item.camera_id for item in event.reidentified],
            started_at=from_ms(event.started_at_ms),
            # Only a face or an appearance tells strangers apart; clothes' colours do not.
            strangers=[
                item.visitor_id
                for item in event.visitors
                if not item.known and item.cue in STRONG_CUES
            ],
            known_only=bool(event.visitors) and all(item.known for item in event.visitors),
        )
        incident = EventIncident(
            incident_id=stamp.incident_id,
            update=stamp.update,
            camera_ids=stamp.cameras,
            started_at_ms=to_ms(stamp.started_at),
            alert=stamp.alert,
            cooldown_remaining_s=stamp.cooldown_remaining_s,
            cooldowns=tuple(sorted(stamp.cooldowns.items())),
        )
        return dataclasses.replace(event, incident=incident)

    async def store_incident_end(self, ended: EndedIncident) -> SecurityEvent:
        """Store the event that says an incident is over (it covers no frames)."""
        event = SecurityEvent(
            event_id=uuid.uuid4().hex,
            camera_id=ended.cameras[0],
            kind=EventKind.INCIDENT_ENDED,
            started_at_ms=to_ms(ended.started_at),
            ended_at_ms=to_ms(ended.ended_at),
            frame_sha256s=(),
            summary=f"The incident on {', '.join(ended.cameras)} is over.",
            created_at_ms=to_ms(self._clock.wall()),
            incident=EventIncident(
                incident_id=ended.incident_id,
                update=True,
                camera_ids=ended.cameras,
                started_at_ms=to_ms(ended.started_at),
                alert=False,
            ),
        )
        return await self._store(event)

    def _fallback_event(self, job: AnalysisJob, error: BaseException) -> SecurityEvent:
        """An event that covers the job's frames when building the real one failed.

        Scored by the rules on the bare detections (no zones, baseline or other cameras) when
        there is something to assess. When even the rules fail, a confident person or vehicle
        (or a tampered camera) still pages by the detector alone; anything else becomes
        NOTHING_TO_REPORT, marked as a fallback.
        """
        reason = f"analysis failed: {type(error).__name__}: {error}"[:200]
        frames = job.frames
        times = [frame.captured_at for frame in frames] or [self._clock.wall()]
        start, end = min(times), max(times)
        fields: dict[str, Any] = {
            "kind": EventKind.NOTHING_TO_REPORT,
            "risk_level": RiskLevel.LOW,
            "summary": "The analysis failed; these frames were not assessed.",
            "fallback": True,
            "fallback_reason": reason,
        }
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
                    detector_sure_confidence=self._sure_confidence,
                )
                assessment = assess_with_rules(analysis, reason)
            except Exception:
                _LOGGER.exception("the rules could not assess a failed window either")
                paging = assess_by_detector_only(
                    [(det.label, det.confidence) for frame in frames for det in frame.detections],
                    tamper=job.tamper,
                    sure_confidence=self._sure_confidence,
                    reason=reason,
                )
                if paging is not None:
                    fields.update(_assessed(paging))
                    fields["detections"] = _all_detections(frames)
            else:
                fields.update(_assessed(assessment))
                fields["fallback"] = True
                fields["fallback_reason"] = assessment.fallback_reason or reason
                fields["detections"] = _all_detections(frames)
        return SecurityEvent(
            event_id=uuid.uuid4().hex,
            camera_id=job.camera_id,
            started_at_ms=to_ms(start),
            ended_at_ms=to_ms(end),
            frame_sha256s=tuple(dict.fromkeys(frame.sha256 for frame in frames)),
            fast_path=job.fast_path,
            scene_change=_scene_change(job),
            created_at_ms=to_ms(self._clock.wall()),
            **fields,
        )

    async def _build(self, job: AnalysisJob) -> SecurityEvent:
        if not job.frames:
            raise ValueError("a job needs at least one frame")
        camera = self._cameras.get(job.camera_id)
        name = camera.display_name if camera is not None and camera.display_name else None
        prompt_version = camera.prompt_version if camera is not None else ""
        observations = select_for_prompt(job.frames, self._max_detections)
        zone_map = self._context_builder.zones.get(job.camera_id)

        def build_context() -> tuple[AnalysisContext, list[EventDetection], list[Sighting]]:
            context = self._context_builder.build(job.camera_id, observations, camera_name=name)
            sightings = person_sightings(job.frames, zone_map) if self._dwell is not None else []
            return context, event_detections(job.frames, zone_map), sightings

        context, detections, sightings = await asyncio.to_thread(build_context)
        # Fed here on the loop (the tracker is not thread-safe), in whichever order the
        # analyses of a camera get here: the stays add up either way.
        dwell = (
            self._dwell.loitering(job.camera_id, sightings) if self._dwell is not None else ()
        )
        if job.scene is not None:
            context = dataclasses.replace(context, scene=job.scene)
        common: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "camera_id": job.camera_id,
            "started_at_ms": to_ms(context.start),
            "ended_at_ms": to_ms(context.end),
            "frame_sha256s": tuple(dict.fromkeys(frame.sha256 for frame in job.frames)),
            "fast_path": job.fast_path,
            "anomaly_score": 0.0 if context.anomaly.warming_up else context.anomaly.score,
            "scene_change": _scene_change(job),
        }
        if not job.needs_analysis:
            return SecurityEvent(
                kind=EventKind.NOTHING_TO_REPORT,
                risk_level=RiskLevel.LOW,
                summary="Nothing to report.",
                created_at_ms=to_ms(self._clock.wall()),
                **common,
            )

        analysis = with_feedback(
            analysis_input(context, zone_map, prompt_version, self._sure_confidence, dwell),
            self._feedback.calibration,
        )
        enriched = EnrichmentResult()
        crops = [crop for frame in job.frames for crop in frame.crops]
        if self._enricher is not None and crops:
            enriched = await self._enricher.enrich(
                crops, camera_id=job.camera_id, now_ms=to_ms(self._clock.wall())
            )
            analysis = with_enrichment(analysis, enriched, self._cameras.display_name)
        assessment = await self._assess(job, analysis)
        return SecurityEvent(
            **common,
            **_assessed(assessment),
            people=enriched.people,
            plates=enriched.plates,
            reidentified=enriched.reidentified,
            poses=enriched.poses,
            visitors=enriched.visitors,
            dwell=dwell,
            enrichment_notes=enriched.notes,
            prompt_version=(
                assessment.prompt_version or self._risk.prompt_version_for(analysis)
            ),
            detections=tuple(detections),
            zones=tuple(
                dict.fromkeys(
                    zone for det in context.relevant_detections for zone in det.zone_names
                )
            ),
            created_at_ms=to_ms(self._clock.wall()),
        )

    async def _assess(self, job: AnalysisJob, analysis: AnalysisInput) -> Assessment:
        loop = asyncio.get_running_loop()

        def on_token(text: str) -> None:
            # Called from the model's worker thread.
            if self._hub.subscribers:
                note = ProgressNote(job.camera_id, job.window_id, text)
                loop.call_soon_threadsafe(self._hub.publish, note)

        # The risk analysis queues model work itself, urgent jobs first.
        return await self._risk.assess(
            analysis,
            urgent=job.fast_path or job.tamper,
            on_token=on_token,
            image=key_frame(job.frames),
        )

    async def _store(self, event: SecurityEvent) -> SecurityEvent:
        # The frames are acknowledged to Home Assistant already: keep trying rather than drop.
        delay = 0.5
        while True:
            try:
                stored = await self._outbox.append(event)
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
                self._created += 1
                return stored
