"""The data of a security event as the bus event and the event entity carry it: plain JSON
types, the same fields for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.util import dt as dt_util

from ..client import SecurityEvent
from ..vocabulary import risk_level_name


def iso_time(ms: int) -> str | None:
    """Return a time in milliseconds since the epoch as ISO 8601 (None for 0: not set)."""
    return dt_util.utc_from_timestamp(ms / 1000).isoformat() if ms else None


def event_payload(
    entry_id: str, event: SecurityEvent, snapshot: Path | None, media_root: Path
) -> dict[str, Any]:
    """Return the bus event's data: the whole event in plain JSON types."""
    media_id: str | None = None
    if snapshot is not None:
        relative = snapshot.relative_to(media_root).as_posix()
        media_id = f"media-source://media_source/local/{relative}"
    return {
        "entry_id": entry_id,
        "sequence": event.sequence,
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "kind": event.kind.name.lower(),
        "started_at": iso_time(event.started_at_ms),
        "ended_at": iso_time(event.ended_at_ms),
        "created_at": iso_time(event.created_at_ms),
        "risk_score": event.risk_score,
        "risk_level": risk_level_name(event),
        "summary": event.summary,
        "reasoning": event.reasoning,
        "recommended_action": event.recommended_action,
        "scene_description": event.scene_description,
        "failsafe": event.failsafe,
        "detections": [
            {
                "label": det.detection.label,
                "confidence": round(det.detection.confidence, 4),
                "box": [
                    det.detection.box.x1,
                    det.detection.box.y1,
                    det.detection.box.x2,
                    det.detection.box.y2,
                ],
                "frame_sha256": det.frame_sha256,
                "zones": list(det.zones),
            }
            for det in event.detections
        ],
        "zones": list(event.zones),
        "frame_sha256s": list(event.frame_sha256s),
        "fast_path": event.fast_path,
        "fallback": event.fallback,
        "fallback_reason": event.fallback_reason,
        "model": event.model,
        "prompt_version": event.prompt_version,
        "scene_change": event.scene_change.name.lower(),
        "anomaly_score": round(event.anomaly_score, 4),
        **audit_payload(event),
        "snapshot_path": str(snapshot) if snapshot is not None else None,
        "media_content_id": media_id,
        **incident_payload(event),
        **enrichment_payload(event),
        **dwell_payload(event),
    }


def dwell_payload(event: SecurityEvent) -> dict[str, Any]:
    """Loitering: the zones where a person has stayed longer than the sidecar's loitering time,
    with the seconds so far, and whether there is any."""
    return {
        "dwell": [{"zone": item.zone, "seconds": item.seconds} for item in event.dwell],
        "loitering": bool(event.dwell),
    }


def enrichment_payload(event: SecurityEvent) -> dict[str, Any]:
    """Who was seen and which plates were read: names, "unknown person", cleaned plate text.

    `face_ids` (in the order of `people`) let a person be enrolled from this event. `poses` holds
    the posture flags of the event's people, each once ("crouching", "climbing", "lying").
    """
    return {
        "people": [person.name or "unknown person" for person in event.people],
        "unknown_person": any(person.unknown for person in event.people),
        "face_ids": [person.face_id for person in event.people],
        "plates": [plate.text for plate in event.plates],
        "known_vehicles": [plate.known_label for plate in event.plates if plate.known],
        # People seen on other cameras shortly before: camera, seconds ago, face or colours.
        "seen_before": [
            {"camera_id": item.camera_id, "seconds_ago": item.seconds_ago, "cue": item.cue}
            for item in event.reidentified
        ],
        "poses": list(dict.fromkeys(flag for pose in event.poses for flag in pose.flags)),
        # Each person as a visitor: a stranger who came back shows their visits and since when.
        "visitors": [
            {
                "visitor_id": item.visitor_id,
                "name": item.name,
                "cue": item.cue,
                "visits": item.visits,
                "first_seen": iso_time(item.first_seen_ms),
            }
            for item in event.visitors
        ],
        "enrichment_notes": list(event.enrichment_notes),
    }


def audit_payload(event: SecurityEvent) -> dict[str, Any]:
    """The audit of the event's text: what it did not back, and its 1-5 rubric."""
    rubric = event.audit_rubric
    return {
        "audit_notes": list(event.audit_notes),
        "audit_score": rubric.score if rubric is not None else None,
        "audit_rubric": (
            {
                "context_used": rubric.context_used,
                "coherent": rubric.coherent,
                "justified": rubric.justified,
                "actionable": rubric.actionable,
            }
            if rubric is not None
            else None
        ),
    }


def incident_payload(event: SecurityEvent) -> dict[str, Any]:
    """The incident fields of a bus event: which incident, first event or update, page or not."""
    incident = event.incident
    if incident is None:
        return {"incident_id": None, "incident_update": False, "alert": True}
    cooldown_until = None
    if incident.cooldown_remaining_s > 0 and event.created_at_ms:
        cooldown_until = iso_time(event.created_at_ms + round(incident.cooldown_remaining_s * 1000))
    return {
        "incident_id": incident.incident_id,
        "incident_update": incident.update,
        "incident_cameras": list(incident.camera_ids),
        "incident_started_at": iso_time(incident.started_at_ms),
        "alert": incident.alert,
        "cooldown_until": cooldown_until,
    }
