"""Protobuf <-> domain: every conversion between the contract's messages and the sidecar's types.

The outbox stores each event as the contract's `SecurityEvent` bytes (`ProtobufEventCodec`),
so the databases written before the domain types existed read back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, TypeVar

from google.protobuf.message import DecodeError, Message

from gpu_server._generated import events_pb2, frames_pb2
from gpu_server.context import SceneChangeKind
from gpu_server.core.detection import Detection
from gpu_server.core.enrichment import (
    PersonPose,
    PersonSighting,
    PlateReading,
    Reidentified,
    VisitorSighting,
)
from gpu_server.enrich.gallery import KnownPerson
from gpu_server.errors import InvalidSettingsError
from gpu_server.events.model import (
    CameraRequest,
    EventDetection,
    EventDwell,
    EventIncident,
    EventKind,
    SecurityEvent,
    ZoneRequest,
)
from gpu_server.feedback import Verdict
from gpu_server.feedback.store import WHAT_MAX_CHARS
from gpu_server.llm.schema import AuditRubric
from gpu_server.vocabulary import RiskLevel

_RISK_LEVEL: Final = {
    RiskLevel.LOW: events_pb2.RISK_LEVEL_LOW,
    RiskLevel.MEDIUM: events_pb2.RISK_LEVEL_MEDIUM,
    RiskLevel.HIGH: events_pb2.RISK_LEVEL_HIGH,
    RiskLevel.CRITICAL: events_pb2.RISK_LEVEL_CRITICAL,
}
_EVENT_KIND: Final = {
    EventKind.SECURITY: events_pb2.EVENT_KIND_SECURITY,
    EventKind.NOTHING_TO_REPORT: events_pb2.EVENT_KIND_NOTHING_TO_REPORT,
    EventKind.INCIDENT_ENDED: events_pb2.EVENT_KIND_INCIDENT_ENDED,
}
_SCENE_KIND: Final = {
    SceneChangeKind.NONE: events_pb2.SCENE_CHANGE_KIND_NONE,
    SceneChangeKind.COVERED: events_pb2.SCENE_CHANGE_KIND_COVERED,
    SceneChangeKind.MOVED: events_pb2.SCENE_CHANGE_KIND_MOVED,
}
_RISK_LEVEL_BACK: Final = {value: key for key, value in _RISK_LEVEL.items()}
_EVENT_KIND_BACK: Final = {value: key for key, value in _EVENT_KIND.items()}
_SCENE_KIND_BACK: Final = {value: key for key, value in _SCENE_KIND.items()}

M = TypeVar("M", bound=Message)


# -- request bytes -----------------------------------------------------------------------


class Unparseable:
    """Bytes that are not the message a call expects; the call refuses them (INVALID_ARGUMENT).

    gRPC parses a request before its handler runs and would answer a parse error itself, with
    UNKNOWN and a logged traceback; parsing into this instead lets the handler answer.
    """

    __slots__ = ("reason",)

    def __init__(self, type_name: str) -> None:
        self.reason = f"request is not a valid {type_name}"


def request_parser(message_type: type[M]) -> Callable[[bytes], M | Unparseable]:
    """A gRPC request deserializer that never raises: a `message_type`, or `Unparseable`."""
    unparseable = Unparseable(message_type.DESCRIPTOR.name)

    def parse(data: bytes) -> M | Unparseable:
        try:
            return message_type.FromString(data)
        except DecodeError:
            return unparseable

    return parse


# -- detections ----------------------------------------------------------------------------


def detection_to_pb(det: Detection) -> frames_pb2.Detection:
    return frames_pb2.Detection(
        label=det.label,
        class_id=det.class_id,
        confidence=det.confidence,
        box=frames_pb2.Box(x1=det.x1, y1=det.y1, x2=det.x2, y2=det.y2),
    )


def detection_from_pb(message: frames_pb2.Detection) -> Detection:
    box = message.box
    return Detection(
        label=message.label,
        class_id=message.class_id,
        confidence=message.confidence,
        x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2,
    )


# -- events --------------------------------------------------------------------------------


def _incident_to_pb(incident: EventIncident) -> events_pb2.Incident:
    return events_pb2.Incident(
        incident_id=incident.incident_id,
        update=incident.update,
        camera_ids=list(incident.camera_ids),
        started_at_ms=incident.started_at_ms,
        alert=incident.alert,
        cooldown_remaining_s=incident.cooldown_remaining_s,
        cooldowns=dict(incident.cooldowns),
    )


def _incident_from_pb(message: events_pb2.Incident) -> EventIncident:
    return EventIncident(
        incident_id=message.incident_id,
        update=message.update,
        camera_ids=tuple(message.camera_ids),
        started_at_ms=message.started_at_ms,
        alert=message.alert,
        cooldown_remaining_s=message.cooldown_remaining_s,
        cooldowns=tuple(sorted(message.cooldowns.items())),
    )


def _person_to_pb(person: PersonSighting) -> events_pb2.PersonSighting:
    x1, y1, x2, y2 = person.box
    return events_pb2.PersonSighting(
        face_id=person.face_id,
        name=person.name or "",
        unknown=person.unknown,
        distance=person.distance,
        frame_sha256=person.frame_sha256,
        box=frames_pb2.Box(x1=x1, y1=y1, x2=x2, y2=y2),
    )


def _person_from_pb(message: events_pb2.PersonSighting) -> PersonSighting:
    box = message.box
    return PersonSighting(
        face_id=message.face_id,
        name=None if message.unknown else message.name,
        distance=message.distance,
        frame_sha256=message.frame_sha256,
        box=(box.x1, box.y1, box.x2, box.y2),
    )


def _pose_to_pb(pose: PersonPose) -> events_pb2.PersonPose:
    x1, y1, x2, y2 = pose.box
    return events_pb2.PersonPose(
        person=pose.person,
        frame_sha256=pose.frame_sha256,
        box=frames_pb2.Box(x1=x1, y1=y1, x2=x2, y2=y2),
        flags=list(pose.flags),
        confidence=pose.confidence,
    )


def _pose_from_pb(message: events_pb2.PersonPose) -> PersonPose:
    box = message.box
    return PersonPose(
        person=message.person,
        frame_sha256=message.frame_sha256,
        box=(box.x1, box.y1, box.x2, box.y2),
        flags=tuple(message.flags),
        confidence=message.confidence,
    )


def _plate_to_pb(plate: PlateReading) -> events_pb2.PlateReading:
    # Only the cleaned text is stored: the raw OCR text never leaves the analysis.
    return events_pb2.PlateReading(
        text=plate.text,
        normalized=plate.normalized,
        confidence=plate.confidence,
        known=plate.known_label is not None,
        known_label=plate.known_label or "",
        suspicious=plate.suspicious,
        frame_sha256=plate.frame_sha256,
    )


def _plate_from_pb(message: events_pb2.PlateReading) -> PlateReading:
    return PlateReading(
        raw=message.text,
        text=message.text,
        normalized=message.normalized,
        confidence=message.confidence,
        known_label=message.known_label if message.known else None,
        suspicious=message.suspicious,
        frame_sha256=message.frame_sha256,
    )


def known_person_to_pb(person: KnownPerson) -> events_pb2.KnownPerson:
    return events_pb2.KnownPerson(
        name=person.name, embeddings=person.embeddings, updated_at_ms=person.updated_at_ms
    )


def event_to_pb(event: SecurityEvent) -> events_pb2.SecurityEvent:
    message = events_pb2.SecurityEvent(
        sequence=event.sequence,
        event_id=event.event_id,
        camera_id=event.camera_id,
        kind=_EVENT_KIND[event.kind],
        started_at_ms=event.started_at_ms,
        ended_at_ms=event.ended_at_ms,
        risk_score=event.risk_score,
        risk_level=_RISK_LEVEL[event.risk_level],
        summary=event.summary,
        reasoning=event.reasoning,
        recommended_action=event.recommended_action,
        scene_description=event.scene_description,
        failsafe=event.failsafe,
        detections=[
            events_pb2.EventDetection(
                detection=detection_to_pb(item.detection),
                frame_sha256=item.frame_sha256,
                zones=list(item.zones),
            )
            for item in event.detections
        ],
        zones=list(event.zones),
        frame_sha256s=list(event.frame_sha256s),
        fast_path=event.fast_path,
        fallback=event.fallback,
        fallback_reason=event.fallback_reason,
        model=event.model,
        prompt_version=event.prompt_version,
        scene_change=_SCENE_KIND[event.scene_change],
        anomaly_score=event.anomaly_score,
        created_at_ms=event.created_at_ms,
        audit_notes=list(event.audit_notes),
        people=[_person_to_pb(person) for person in event.people],
        plates=[_plate_to_pb(plate) for plate in event.plates],
        reidentified=[
            events_pb2.Reidentification(
                camera_id=item.camera_id,
                seconds_ago=item.seconds_ago,
                cue=item.cue,
                similarity=item.similarity,
            )
            for item in event.reidentified
        ],
        poses=[_pose_to_pb(pose) for pose in event.poses],
        visitors=[
            events_pb2.Visitor(
                visitor_id=item.visitor_id,
                name=item.name or "",
                cue=item.cue,
                visits=item.visits,
                first_seen_ms=item.first_seen_ms,
            )
            for item in event.visitors
        ],
        dwell=[events_pb2.Dwell(zone=item.zone, seconds=item.seconds) for item in event.dwell],
        enrichment_notes=list(event.enrichment_notes),
    )
    if event.incident is not None:
        message.incident.CopyFrom(_incident_to_pb(event.incident))
    if (rubric := event.audit_rubric) is not None:
        message.audit_rubric.CopyFrom(
            events_pb2.AuditRubric(
                context_used=rubric.context_used,
                coherent=rubric.coherent,
                justified=rubric.justified,
                actionable=rubric.actionable,
                score=rubric.score,
            )
        )
    return message


def _rubric_from_pb(message: events_pb2.AuditRubric) -> AuditRubric:
    return AuditRubric(
        context_used=message.context_used,
        coherent=message.coherent,
        justified=message.justified,
        actionable=message.actionable,
    )


def event_from_pb(message: events_pb2.SecurityEvent) -> SecurityEvent:
    return SecurityEvent(
        sequence=message.sequence,
        event_id=message.event_id,
        camera_id=message.camera_id,
        kind=_EVENT_KIND_BACK.get(message.kind, EventKind.SECURITY),
        started_at_ms=message.started_at_ms,
        ended_at_ms=message.ended_at_ms,
        risk_score=message.risk_score,
        risk_level=_RISK_LEVEL_BACK.get(message.risk_level, RiskLevel.LOW),
        summary=message.summary,
        reasoning=message.reasoning,
        recommended_action=message.recommended_action,
        scene_description=message.scene_description,
        failsafe=message.failsafe,
        detections=tuple(
            EventDetection(
                detection=detection_from_pb(item.detection),
                frame_sha256=item.frame_sha256,
                zones=tuple(item.zones),
            )
            for item in message.detections
        ),
        zones=tuple(message.zones),
        frame_sha256s=tuple(message.frame_sha256s),
        fast_path=message.fast_path,
        fallback=message.fallback,
        fallback_reason=message.fallback_reason,
        model=message.model,
        prompt_version=message.prompt_version,
        scene_change=_SCENE_KIND_BACK.get(message.scene_change, SceneChangeKind.NONE),
        anomaly_score=message.anomaly_score,
        created_at_ms=message.created_at_ms,
        incident=_incident_from_pb(message.incident) if message.HasField("incident") else None,
        audit_notes=tuple(message.audit_notes),
        people=tuple(_person_from_pb(person) for person in message.people),
        plates=tuple(_plate_from_pb(plate) for plate in message.plates),
        reidentified=tuple(
            Reidentified(item.camera_id, item.seconds_ago, item.cue, item.similarity)
            for item in message.reidentified
        ),
        poses=tuple(_pose_from_pb(pose) for pose in message.poses),
        visitors=tuple(
            VisitorSighting(
                item.visitor_id, item.name or None, item.cue, item.visits, item.first_seen_ms
            )
            for item in message.visitors
        ),
        dwell=tuple(EventDwell(item.zone, item.seconds) for item in message.dwell),
        enrichment_notes=tuple(message.enrichment_notes),
        audit_rubric=(
            _rubric_from_pb(message.audit_rubric) if message.HasField("audit_rubric") else None
        ),
    )


class ProtobufEventCodec:
    """How the outbox stores an event: the contract's `SecurityEvent` bytes."""

    def encode(self, event: SecurityEvent) -> bytes:
        payload: bytes = event_to_pb(event).SerializeToString()
        return payload

    def decode(self, payload: bytes) -> SecurityEvent:
        return event_from_pb(events_pb2.SecurityEvent.FromString(payload))


# -- configuration -------------------------------------------------------------------------


def camera_requests_from_pb(
    settings: Iterable[events_pb2.CameraSettings],
) -> list[CameraRequest]:
    return [
        CameraRequest(
            camera_id=item.camera_id,
            display_name=item.display_name,
            batch_window_s=item.batch_window_s,
            idle_timeout_s=item.idle_timeout_s,
            prompt_version=item.prompt_version,
            time_zone=item.time_zone,
            zones=tuple(
                ZoneRequest(
                    name=zone.name,
                    kind=zone.kind,
                    points=tuple((point.x, point.y) for point in zone.points),
                )
                for zone in item.zones
            ),
        )
        for item in settings
    ]


_VERDICTS: Final = {
    events_pb2.FEEDBACK_VERDICT_FALSE_ALARM: Verdict.FALSE_ALARM,
    events_pb2.FEEDBACK_VERDICT_CORRECT: Verdict.CORRECT,
}


def feedback_from_pb(
    request: events_pb2.FeedbackRequest,
) -> tuple[str, Verdict, RiskLevel | None, str]:
    """The event, verdict, level it should have had (or None) and the household's words."""
    if not request.event_id:
        raise InvalidSettingsError("Feedback needs an event_id")
    verdict = _VERDICTS.get(request.verdict)
    if verdict is None:
        raise InvalidSettingsError("Feedback needs a verdict: false alarm or correct")
    if len(request.what) > WHAT_MAX_CHARS:
        raise InvalidSettingsError(f"Feedback's what is longer than {WHAT_MAX_CHARS} characters")
    return request.event_id, verdict, _RISK_LEVEL_BACK.get(request.actual_level), request.what

