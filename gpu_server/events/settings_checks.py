"""Configure's camera settings checked and turned into what the sidecar keeps.

Sizes and counts come first, so a request made to be expensive (thousands of cameras, megabyte
names, windows that never close) is refused for the price of reading a few lengths; zones and
time zones are parsed only then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gpu_server.context import ZoneMap
from gpu_server.core.camera_ids import camera_id_problem
from gpu_server.errors import InvalidSettingsError
from gpu_server.events.cameras import CameraSettings
from gpu_server.events.model import CameraRequest
from gpu_server.vocabulary import (
    MAX_BATCH_SECONDS,
    MAX_CAMERAS,
    MAX_DISPLAY_NAME_CHARS,
    MAX_POINTS_PER_ZONE,
    MAX_PROMPT_VERSION_CHARS,
    MAX_TIME_ZONE_CHARS,
    MAX_ZONE_NAME_CHARS,
    MAX_ZONES_PER_CAMERA,
)


def check_camera_count(
    settings: Sequence[CameraRequest], known: Iterable[str]
) -> None:
    """At most MAX_CAMERAS cameras per call and configured in all."""
    if len(settings) > MAX_CAMERAS:
        raise InvalidSettingsError(
            f"{len(settings)} cameras in one call; at most {MAX_CAMERAS} are allowed"
        )
    total = len({*known, *(item.camera_id for item in settings)})
    if total > MAX_CAMERAS:
        raise InvalidSettingsError(
            f"this would configure {total} cameras; at most {MAX_CAMERAS} are allowed"
        )


def _check_text(camera: str, field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidSettingsError(
            f"camera {camera!r}: {field} has {len(value)} characters; at most {limit} allowed"
        )


def check_camera_fields(item: CameraRequest) -> None:
    """Id, text lengths, windows and zone and point counts of one camera."""
    camera_id = item.camera_id
    problem = camera_id_problem(camera_id)
    if problem is not None:
        raise InvalidSettingsError(problem)
    _check_text(camera_id, "display_name", item.display_name, MAX_DISPLAY_NAME_CHARS)
    _check_text(camera_id, "time_zone", item.time_zone, MAX_TIME_ZONE_CHARS)
    _check_text(camera_id, "prompt_version", item.prompt_version, MAX_PROMPT_VERSION_CHARS)
    for field, seconds in (
        ("batch_window_s", item.batch_window_s),
        ("idle_timeout_s", item.idle_timeout_s),
    ):
        if seconds > MAX_BATCH_SECONDS:
            raise InvalidSettingsError(
                f"camera {camera_id!r}: {field} {seconds} is over {MAX_BATCH_SECONDS} s "
                "(0 keeps the server's default)"
            )
    if len(item.zones) > MAX_ZONES_PER_CAMERA:
        raise InvalidSettingsError(
            f"camera {camera_id!r}: {len(item.zones)} zones; at most {MAX_ZONES_PER_CAMERA}"
        )
    for zone in item.zones:
        _check_text(camera_id, "a zone name", zone.name, MAX_ZONE_NAME_CHARS)
        if len(zone.points) > MAX_POINTS_PER_ZONE:
            raise InvalidSettingsError(
                f"camera {camera_id!r}: zone {zone.name!r} has {len(zone.points)} points; "
                f"at most {MAX_POINTS_PER_ZONE}"
            )


def validate_cameras(
    settings: Sequence[CameraRequest], known_versions: Sequence[str]
) -> list[tuple[CameraSettings, ZoneMap]]:
    """Every camera checked (fields, prompt version, zones, time zone) and ready to keep;
    raises InvalidSettingsError, naming the camera, at the first one that is not."""
    prepared: list[tuple[CameraSettings, ZoneMap]] = []
    for item in settings:
        check_camera_fields(item)
        camera_id = item.camera_id
        if item.prompt_version and item.prompt_version not in known_versions:
            raise InvalidSettingsError(
                f"camera {camera_id!r}: unknown prompt version {item.prompt_version[:40]!r}; "
                f"known versions: {', '.join(known_versions)}"
            )
        try:
            zone_map = ZoneMap.model_validate(
                {
                    "camera_id": camera_id,
                    "zones": [
                        {
                            "name": zone.name,
                            "kind": zone.kind or "other",
                            "points": list(zone.points),
                        }
                        for zone in item.zones
                    ],
                }
            )
            if item.time_zone:
                ZoneInfo(item.time_zone)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise InvalidSettingsError(f"camera {camera_id!r}: {exc}") from exc
        prepared.append(
            (
                CameraSettings(
                    camera_id=camera_id,
                    display_name=item.display_name,
                    batch_window_s=item.batch_window_s,
                    idle_timeout_s=item.idle_timeout_s,
                    prompt_version=item.prompt_version,
                    time_zone=item.time_zone,
                ),
                zone_map,
            )
        )
    return prepared
