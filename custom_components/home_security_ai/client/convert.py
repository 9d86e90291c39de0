"""Protobuf messages to and from the client's plain types (models.py): the only place that
reads or builds them, so that nothing outside the client knows the wire format.

The contract renamed the event batch a window: its new fields are read first, and the
deprecated ones they replace when they are empty (a sidecar that predates them).
"""

from __future__ import annotations

from typing import Final, TypeVar

from ._generated import events_pb2, frames_pb2, status_pb2
from .models import (
    AckStatus,
    AnalyzeNowResult,
    AuditRubric,
    Box,
    CameraFeedback,
    CameraSettings,
    Detection,
    DetectorStatus,
    Dwell,
    EnrichmentStatus,
    EventDetection,
    EventKind,
    EventsStatus,
    FeedbackResult,
    FeedbackVerdict,
    FrameAck,
    FrameCounters,
    FrameIn,
    FrameTimings,
    GpuDevice,
    GpuStatus,
    Incident,
    KnownPerson,
    LanguageModelState,
    LanguageModelStatus,
    LatencyStats,
    LoadedModel,
    ModelZooStatus,
    PersonPose,
    PersonSighting,
    PlateReading,
    Reidentification,
    RejectReason,
    RiskLevel,
    SceneChangeKind,
    SecurityEvent,
    ServerStatus,
    Visitor,
)

_E = TypeVar("_E", AckStatus, RejectReason, EventKind, RiskLevel, SceneChangeKind)


def _enum(kind: type[_E], value: int, default: _E) -> _E:
    """Convert a wire value to an enum, tolerating values added later."""
    try:
        return kind(value)
    except ValueError:
        return default


# Frames


def frame_to_proto(frame: FrameIn) -> frames_pb2.Frame:
    """A frame to send on SubmitFrames."""
    return frames_pb2.Frame(
        camera_id=frame.camera_id,
        captured_at_ms=frame.captured_at_ms,
        source=frames_pb2.FrameSource.Name(int(frame.source)),
        source_ref=frame.source_ref,
        content_sha256=frame.content_sha256,
        image=frame.image,
        client_ref=frame.client_ref,
    )


def _box_from_proto(box: frames_pb2.Box) -> Box:
    return Box(x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2)


def _detection_from_proto(det: frames_pb2.Detection) -> Detection:
    return Detection(
        label=det.label,
        class_id=det.class_id,
        confidence=det.confidence,
        box=_box_from_proto(det.box),
    )


def ack_from_proto(ack: frames_pb2.FrameAck) -> FrameAck:
    """A frame's ack from SubmitFrames."""
    return FrameAck(
        client_ref=ack.client_ref,
        camera_id=ack.camera_id,
        content_sha256=ack.content_sha256,
        status=_enum(AckStatus, ack.status, AckStatus.UNSPECIFIED),
        status_code=ack.status_code,
        reject_reason=_enum(RejectReason, ack.reject_reason, RejectReason.UNSPECIFIED),
        message=ack.message,
        image_width=ack.image_width,
        image_height=ack.image_height,
        detections=tuple(_detection_from_proto(det) for det in ack.detections),
        detector=ack.detector,
        timings=FrameTimings(
            decode_ms=ack.timings.decode_ms,
            queue_ms=ack.timings.queue_ms,
            inference_ms=ack.timings.inference_ms,
            total_ms=ack.timings.total_ms,
        ),
        covered_sequence=ack.covered_sequence,
    )


# Events


def _rubric_from_proto(event: events_pb2.SecurityEvent) -> AuditRubric | None:
    if not event.HasField("audit_rubric"):
        return None
    rubric = event.audit_rubric
    return AuditRubric(
        context_used=rubric.context_used,
        coherent=rubric.coherent,
        justified=rubric.justified,
        actionable=rubric.actionable,
        score=round(rubric.score, 2),
    )


def _incident_from_proto(event: events_pb2.SecurityEvent) -> Incident | None:
    if not event.HasField("incident"):
        return None
    incident = event.incident
    return Incident(
        incident_id=incident.incident_id,
        update=incident.update,
        camera_ids=tuple(incident.camera_ids),
        started_at_ms=incident.started_at_ms,
        alert=incident.alert,
        cooldown_remaining_s=incident.cooldown_remaining_s,
        cooldowns=tuple(sorted(incident.cooldowns.items())),
    )


def _event_detection_from_proto(det: events_pb2.EventDetection) -> EventDetection:
    return EventDetection(
        detection=_detection_from_proto(det.detection),
        frame_sha256=det.frame_sha256,
        zones=tuple(det.zones),
    )


def _person_from_proto(person: events_pb2.PersonSighting) -> PersonSighting:
    return PersonSighting(
        face_id=person.face_id,
        name=person.name,
        unknown=person.unknown,
        distance=person.distance,
        frame_sha256=person.frame_sha256,
        box=_box_from_proto(person.box) if person.HasField("box") else None,
    )


def _pose_from_proto(pose: events_pb2.PersonPose) -> PersonPose:
    return PersonPose(
        person=pose.person,
        flags=tuple(pose.flags),
        confidence=round(pose.confidence, 3),
        frame_sha256=pose.frame_sha256,
        box=_box_from_proto(pose.box) if pose.HasField("box") else None,
    )


def _plate_from_proto(plate: events_pb2.PlateReading) -> PlateReading:
    return PlateReading(
        text=plate.text,
        normalized=plate.normalized,
        confidence=plate.confidence,
        known=plate.known,
        known_label=plate.known_label,
        suspicious=plate.suspicious,
        frame_sha256=plate.frame_sha256,
    )


def _reidentification_from_proto(item: events_pb2.Reidentification) -> Reidentification:
    return Reidentification(
        camera_id=item.camera_id,
        seconds_ago=round(item.seconds_ago, 1),
        cue=item.cue,
        similarity=round(item.similarity, 3),
    )


def _visitor_from_proto(item: events_pb2.Visitor) -> Visitor:
    return Visitor(
        visitor_id=item.visitor_id,
        name=item.name or None,
        cue=item.cue,
        visits=item.visits,
        first_seen_ms=item.first_seen_ms,
    )


def _dwell_from_proto(item: events_pb2.Dwell) -> Dwell:
    return Dwell(zone=item.zone, seconds=round(item.seconds, 1))


def event_from_proto(event: events_pb2.SecurityEvent) -> SecurityEvent:
    """An event from SubscribeEvents."""
    return SecurityEvent(
        sequence=event.sequence,
        event_id=event.event_id,
        camera_id=event.camera_id,
        kind=_enum(EventKind, event.kind, EventKind.UNSPECIFIED),
        started_at_ms=event.started_at_ms,
        ended_at_ms=event.ended_at_ms,
        risk_score=event.risk_score,
        risk_level=_enum(RiskLevel, event.risk_level, RiskLevel.UNSPECIFIED),
        summary=event.summary,
        reasoning=event.reasoning,
        recommended_action=event.recommended_action,
        scene_description=event.scene_description,
        failsafe=event.failsafe,
        detections=tuple(_event_detection_from_proto(det) for det in event.detections),
        zones=tuple(event.zones),
        frame_sha256s=tuple(event.frame_sha256s),
        fast_path=event.fast_path,
        fallback=event.fallback,
        fallback_reason=event.fallback_reason,
        model=event.model,
        prompt_version=event.prompt_version,
        scene_change=_enum(SceneChangeKind, event.scene_change, SceneChangeKind.NONE),
        incident=_incident_from_proto(event),
        audit_notes=tuple(event.audit_notes),
        audit_rubric=_rubric_from_proto(event),
        people=tuple(_person_from_proto(person) for person in event.people),
        plates=tuple(_plate_from_proto(plate) for plate in event.plates),
        reidentified=tuple(_reidentification_from_proto(item) for item in event.reidentified),
        poses=tuple(_pose_from_proto(pose) for pose in event.poses),
        visitors=tuple(_visitor_from_proto(item) for item in event.visitors),
        dwell=tuple(_dwell_from_proto(item) for item in event.dwell),
        enrichment_notes=tuple(event.enrichment_notes),
        anomaly_score=event.anomaly_score,
        created_at_ms=event.created_at_ms,
    )


def settings_to_proto(settings: CameraSettings) -> events_pb2.CameraSettings:
    """A camera's settings for Configure."""
    return events_pb2.CameraSettings(
        camera_id=settings.camera_id,
        display_name=settings.display_name,
        zones=[
            events_pb2.Zone(
                name=zone.name,
                kind=zone.kind,
                points=[events_pb2.Point(x=x, y=y) for x, y in zone.points],
            )
            for zone in settings.zones
        ],
        batch_window_s=settings.batch_window_s,
        idle_timeout_s=settings.idle_timeout_s,
        prompt_version=settings.prompt_version,
        time_zone=settings.time_zone,
    )


def analyze_now_from_proto(response: events_pb2.AnalyzeNowResponse) -> AnalyzeNowResult:
    """AnalyzeNow's answer."""
    return AnalyzeNowResult(
        closed=response.closed, batch_id=response.window_id or response.batch_id
    )


def feedback_to_proto(
    event_id: str, verdict: FeedbackVerdict, actual_level: RiskLevel, what: str
) -> events_pb2.FeedbackRequest:
    """The household's verdict on an event, for Feedback."""
    return events_pb2.FeedbackRequest(
        event_id=event_id,
        verdict=events_pb2.FeedbackVerdict.Name(int(verdict)),
        actual_level=events_pb2.RiskLevel.Name(int(actual_level)),
        what=what,
    )


def feedback_result_from_proto(response: events_pb2.FeedbackResponse) -> FeedbackResult:
    """Feedback's answer."""
    return FeedbackResult(
        camera_id=response.camera_id,
        false_alarms=response.false_alarms,
        calibrated=response.calibrated,
    )


def known_person_from_proto(person: events_pb2.KnownPerson) -> KnownPerson:
    """A known person from EnrollPerson or ListPeople."""
    return KnownPerson(
        name=person.name, embeddings=person.embeddings, updated_at_ms=person.updated_at_ms
    )


# Status, part by part


def _detector_from_proto(det: status_pb2.DetectorStatus) -> DetectorStatus:
    return DetectorStatus(
        name=det.name,
        backend=det.backend,
        device=det.device,
        weights=det.weights,
        fallback=det.fallback,
        fallback_reason=det.fallback_reason,
    )


def _latency_from_proto(stats: status_pb2.LatencyStats) -> LatencyStats:
    return LatencyStats(
        count=stats.count,
        mean_ms=stats.mean_ms,
        p50_ms=stats.p50_ms,
        p95_ms=stats.p95_ms,
        max_ms=stats.max_ms,
    )


def _gpu_device_from_proto(dev: status_pb2.GpuDevice) -> GpuDevice:
    return GpuDevice(
        index=dev.index,
        name=dev.name,
        utilization_percent=dev.utilization_percent,
        memory_used_bytes=dev.memory_used_bytes,
        memory_total_bytes=dev.memory_total_bytes,
        temperature_celsius=dev.temperature_celsius,
    )


def _gpu_from_proto(gpu: status_pb2.GpuStatus) -> GpuStatus:
    return GpuStatus(
        available=gpu.available,
        reason=gpu.reason,
        driver_version=gpu.driver_version,
        devices=tuple(_gpu_device_from_proto(dev) for dev in gpu.devices),
    )


def _frame_counters_from_proto(frames: status_pb2.FrameCounters) -> FrameCounters:
    return FrameCounters(
        accepted=frames.accepted, duplicate=frames.duplicate, rejected=frames.rejected
    )


def _events_from_proto(events: status_pb2.EventsStatus) -> EventsStatus:
    return EventsStatus(
        open_batches=events.open_windows or events.open_batches,
        outbox_depth=events.outbox_depth,
        outbox_max_events=events.outbox_max_events,
        last_sequence=events.last_sequence,
        llm_model=events.llm_model,
        llm_unavailable_reason=events.llm_unavailable_reason,
        analyses_running=events.analyses_running,
        events_created=events.events_created,
        outbox_id=events.outbox_id,
        outbox_refused_frames=events.outbox_refused_frames,
    )


_MODEL_STATES: Final = {
    status_pb2.LANGUAGE_MODEL_STATE_OFF: LanguageModelState.OFF,
    status_pb2.LANGUAGE_MODEL_STATE_LOADING: LanguageModelState.LOADING,
    status_pb2.LANGUAGE_MODEL_STATE_READY: LanguageModelState.READY,
    status_pb2.LANGUAGE_MODEL_STATE_RESTARTING: LanguageModelState.RESTARTING,
    status_pb2.LANGUAGE_MODEL_STATE_CIRCUIT_OPEN: LanguageModelState.CIRCUIT_OPEN,
    status_pb2.LANGUAGE_MODEL_STATE_UNREACHABLE: LanguageModelState.UNREACHABLE,
    status_pb2.LANGUAGE_MODEL_STATE_FAILED: LanguageModelState.FAILED,
}


def _language_model_from_proto(status: status_pb2.ServerStatus) -> LanguageModelStatus:
    if not status.HasField("language_model"):
        return LanguageModelStatus()  # a sidecar too old to report it
    model = status.language_model
    return LanguageModelStatus(
        state=_MODEL_STATES.get(model.state, LanguageModelState.UNKNOWN),
        backend=model.backend,
        model=model.model,
        endpoint=model.endpoint,
        reason=model.reason,
        restarts=model.restarts,
        consecutive_failures=model.consecutive_failures,
        queue_depth=model.queue_depth,
        queue_capacity=model.queue_capacity,
        analyses=model.analyses,
        fallbacks=model.fallbacks,
        retry_in_s=model.retry_in_s,
        authority=model.authority,
        authority_reason=model.authority_reason,
        replaced=model.replaced,
    )


def _loaded_model_from_proto(model: status_pb2.LoadedModel) -> LoadedModel:
    return LoadedModel(
        key=model.key,
        task=model.task,
        memory_bytes=model.memory_bytes,
        users=model.users,
        idle_s=model.idle_s,
    )


def _model_zoo_from_proto(zoo: status_pb2.ModelZooStatus) -> ModelZooStatus:
    return ModelZooStatus(
        budget_bytes=zoo.budget_bytes,
        used_bytes=zoo.used_bytes,
        registered=zoo.registered,
        loaded=tuple(_loaded_model_from_proto(model) for model in zoo.loaded),
    )


def _enrichment_from_proto(enrichment: status_pb2.EnrichmentStatus) -> EnrichmentStatus:
    return EnrichmentStatus(
        faces_available=enrichment.faces_available,
        faces_reason=enrichment.faces_reason,
        plates_available=enrichment.plates_available,
        plates_reason=enrichment.plates_reason,
        pose_available=enrichment.pose_available,
        pose_reason=enrichment.pose_reason,
        known_people=enrichment.known_people,
        known_plates=enrichment.known_plates,
        batches=enrichment.windows_enriched or enrichment.batches,
    )


def _camera_feedback_from_proto(item: status_pb2.CameraFeedback) -> CameraFeedback:
    return CameraFeedback(
        false_alarms=item.false_alarms,
        confirmed=item.confirmed,
        calibrated_cases=item.calibrated_cases,
    )


def status_from_proto(status: status_pb2.ServerStatus) -> ServerStatus:
    """GetStatus's answer."""
    return ServerStatus(
        server_id=status.server_id,
        version=status.version,
        uptime_s=status.uptime_s,
        detector=_detector_from_proto(status.detector),
        queue_depth=status.queue_depth,
        stage_latency={
            stage: _latency_from_proto(stats) for stage, stats in status.stage_latency.items()
        },
        gpu=_gpu_from_proto(status.gpu),
        frames=_frame_counters_from_proto(status.frames),
        events=_events_from_proto(status.events),
        language_model=_language_model_from_proto(status),
        model_zoo=_model_zoo_from_proto(status.model_zoo),
        enrichment=_enrichment_from_proto(status.enrichment),
        feedback={item.camera_id: _camera_feedback_from_proto(item) for item in status.feedback},
    )
