"""Zones and per-camera settings sent to the sidecar with Configure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .client import CameraSettings, Zone
from .const import CONF_BATCH_WINDOW, CONF_IDLE_TIMEOUT, CONF_ZONES
from .vocabulary import (
    MAX_DISPLAY_NAME_CHARS,
    MAX_POINTS_PER_ZONE,
    MAX_TIME_ZONE_CHARS,
    MAX_ZONE_NAME_CHARS,
    MAX_ZONES_PER_CAMERA,
    ZONE_KINDS,
)


class InvalidZones(ValueError):  # noqa: N818
    """Zones that cannot be used; `key` is the translation key of the problem."""

    def __init__(self, key: str, detail: str) -> None:
        """Remember the translation key and what exactly is wrong."""
        super().__init__(detail)
        self.key = key
        self.detail = detail


def _point(raw: Any, zone: str) -> list[float]:
    if isinstance(raw, Mapping):
        raw = [raw.get("x"), raw.get("y")]
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise InvalidZones("invalid_point", f"zone {zone}: a point is not [x, y]")
    point: list[float] = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidZones("invalid_point", f"zone {zone}: {value!r} is not a number")
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise InvalidZones("point_out_of_range", f"zone {zone}: {value} is not within 0..1")
        point.append(float(value))
    return point


def validate_zones(raw: Any) -> list[dict[str, Any]]:
    """Check zones given as [{name, kind, points: [[x, y], ...]}]; return them normalised."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidZones("invalid_zones", "zones must be a list")
    if len(raw) > MAX_ZONES_PER_CAMERA:
        raise InvalidZones("invalid_zones", f"more than {MAX_ZONES_PER_CAMERA} zones")
    zones: list[dict[str, Any]] = []
    names: set[str] = set()
    for item in raw:
        if not isinstance(item, Mapping):
            raise InvalidZones("invalid_zones", "a zone is not a mapping")
        name = str(item.get("name", "")).strip()
        if not name or len(name) > MAX_ZONE_NAME_CHARS:
            raise InvalidZones("invalid_zone_name", f"zone name {name!r}")
        if name in names:
            raise InvalidZones("duplicate_zone", f"zone {name} appears twice")
        names.add(name)
        kind = str(item.get("kind", "other")).strip().lower()
        if kind not in ZONE_KINDS:
            raise InvalidZones("invalid_zone_kind", f"zone {name}: kind {kind!r}")
        points = item.get("points")
        if not isinstance(points, list) or not 3 <= len(points) <= MAX_POINTS_PER_ZONE:
            raise InvalidZones(
                "too_few_points", f"zone {name}: needs 3 to {MAX_POINTS_PER_ZONE} points"
            )
        zones.append({"name": name, "kind": kind, "points": [_point(p, name) for p in points]})
    return zones


def validate_zone_map(raw: Any) -> dict[str, list[dict[str, Any]]]:
    """Check a mapping of camera id to zones (the options' form)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidZones("invalid_zones", "expected camera ids mapped to lists of zones")
    return {str(camera_id): validate_zones(zones) for camera_id, zones in raw.items()}


def camera_settings(
    options: Mapping[str, Any],
    cameras: Iterable[tuple[str, str]],
    time_zone: str,
) -> list[CameraSettings]:
    """Return the Configure settings of every (camera id, display name)."""
    zone_map: Mapping[str, list[dict[str, Any]]] = options.get(CONF_ZONES, {})
    return [
        CameraSettings(
            camera_id=camera_id,
            # Longer names are cut, not refused: the camera keeps its settings.
            display_name=name[:MAX_DISPLAY_NAME_CHARS],
            zones=tuple(
                Zone(
                    name=zone["name"],
                    kind=zone["kind"],
                    points=tuple((float(x), float(y)) for x, y in zone["points"]),
                )
                for zone in zone_map.get(camera_id, [])
            ),
            batch_window_s=int(options.get(CONF_BATCH_WINDOW, 0)),
            idle_timeout_s=int(options.get(CONF_IDLE_TIMEOUT, 0)),
            time_zone=time_zone if len(time_zone) <= MAX_TIME_ZONE_CHARS else "",
        )
        for camera_id, name in cameras
    ]
