"""Diagnostics for Home Security AI."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST, CONF_TOKEN
from homeassistant.core import HomeAssistant

from .client import certificate_fingerprint
from .const import CONF_TLS_CERTIFICATE, CONF_UPLOAD_FOLDERS
from .runtime import HomeSecurityAIConfigEntry

# "endpoint": the address of a remote language-model service the sidecar uses.
TO_REDACT = {CONF_HOST, CONF_TOKEN, CONF_UPLOAD_FOLDERS, "endpoint"}
REDACTED = "**REDACTED**"


def _scrub(text: str | None, host: str) -> str | None:
    """Return an error text without the sidecar's address in it."""
    if not text or not host:
        return text
    return text.replace(host, REDACTED)


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HomeSecurityAIConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    data = entry.runtime_data
    frames = data.frames
    connection = data.connection
    status = data.coordinator.data
    host = str(entry.data.get(CONF_HOST, ""))
    spool = data.spool.as_dict()
    spool["last_error"] = _scrub(spool.get("last_error"), host)
    entry_data = dict(async_redact_data(entry.data, TO_REDACT))
    # The pinned certificate is public but long: its fingerprint identifies it.
    if (cert_pem := entry_data.pop(CONF_TLS_CERTIFICATE, None)) is not None:
        entry_data["tls_fingerprint"] = certificate_fingerprint(cert_pem)
    return {
        "entry": {
            "data": entry_data,
            "options": async_redact_data(entry.options, TO_REDACT),
        },
        "status": async_redact_data(asdict(status), TO_REDACT) if status is not None else None,
        "connection": {
            "connected": connection.connected,
            "last_error": _scrub(connection.last_error, host),
            "pending_frames": frames.pending_count,
            "upload_files_sent": data.upload_watcher.files_sent,
            "upload_folders": len(data.upload_watcher.roots),
        },
        "counters": asdict(frames.counters),
        "arming": {
            "mode": data.arming.mode.value,
            "paused_cameras": data.arming.paused_cameras,
        },
        "spool": spool,
        "events": {
            "connected": connection.is_connected(data.events.name),
            "last_error": _scrub(connection.link(data.events.name).last_error, host),
            "last_sequence": data.events.last_sequence,
            "received": data.events.events_received,
            "security": data.events.security_events,
            "skipped": data.events.events_skipped,
        },
        "cameras": {
            camera.camera_id: {
                "frames_sent": camera.frames_sent,
                "frames_accepted": camera.frames_accepted,
                "frames_duplicate": camera.frames_duplicate,
                "frames_rejected": camera.frames_rejected,
                "frames_dropped": camera.frames_dropped,
                "last_reject_reason": camera.last_reject_reason,
                "objects": camera.label_counts,
                "image_size": [camera.image_width, camera.image_height],
                "detector": camera.detector,
                "last_captured": camera.last_captured.isoformat() if camera.last_captured else None,
                # The key predates the American spelling of the code; kept for continuity.
                "last_analysed": camera.last_analyzed.isoformat() if camera.last_analyzed else None,
                "events_today": camera.events_today,
                "last_event_id": camera.last_event.event_id if camera.last_event else None,
                "last_risk_score": camera.last_event.risk_score if camera.last_event else None,
            }
            for camera in data.cameras.states()
        },
    }
