"""Named zones per camera: polygons in normalised image coordinates, assigned to detections.

Coordinates are fractions of the image width and height (0..1), so a zone drawn once in Home
Assistant keeps its meaning when the camera's stream resolution changes.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gpu_server.context._storage import quarantine
from gpu_server.files import atomic_write
from gpu_server.vocabulary import (
    MAX_POINTS_PER_ZONE,
    MAX_ZONE_NAME_CHARS,
    MAX_ZONES_PER_CAMERA,
    ZoneKind,
)

_LOGGER = logging.getLogger(__name__)

ZONES_FILE = "zones.json"
# Validation context key for zones this server wrote itself.
TRUSTED = "trusted"
_FORMAT_VERSION = 1
# Edges shorter than this, or polygons with less area, are drawing mistakes (a double click).
_EPS = 1e-9
_MIN_AREA = 1e-6
# How close to an edge a point must be to count as "on the boundary".
_BOUNDARY_TOLERANCE = 1e-9

Point = tuple[float, float]
# Pixel box corners (x1, y1, x2, y2), as the detector reports them.
PixelBox = tuple[float, float, float, float]


def polygon_area(points: Sequence[Point]) -> float:
    """Signed shoelace area (positive for counter-clockwise in a y-up frame)."""
    total = 0.0
    count = len(points)
    for i in range(count):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % count]
        total += x1 * y2 - x2 * y1
    return total / 2.0


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point, tol: float = _BOUNDARY_TOLERANCE) -> bool:
    if abs(_cross(a, b, p)) > tol * max(1.0, math.dist(a, b)):
        return False
    return (
        min(a[0], b[0]) - tol <= p[0] <= max(a[0], b[0]) + tol
        and min(a[1], b[1]) - tol <= p[1] <= max(a[1], b[1]) + tol
    )


def _segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    d1 = _cross(c, d, a)
    d2 = _cross(c, d, b)
    d3 = _cross(a, b, c)
    d4 = _cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    # Touching or collinear overlap also makes the outline ambiguous.
    return (
        (d1 == 0 and _on_segment(a, c, d, 0.0))
        or (d2 == 0 and _on_segment(b, c, d, 0.0))
        or (d3 == 0 and _on_segment(c, a, b, 0.0))
        or (d4 == 0 and _on_segment(d, a, b, 0.0))
    )


def is_simple_polygon(points: Sequence[Point]) -> bool:
    """True when no two non-adjacent edges touch or cross.

    Every pair of edges is tested at once with numpy (the same arithmetic as
    `_segments_intersect`), so a 64-point zone costs microseconds, not milliseconds: a client
    sending many zones must not keep a core busy.
    """
    count = len(points)
    if count < 4:
        return True
    a = np.asarray(points, dtype=np.float64)
    b = np.roll(a, -1, axis=0)
    # Edge i runs a[i] -> b[i]; rows are edge i, columns edge j.
    ai, bi = a[:, None, :], b[:, None, :]
    cj, dj = a[None, :, :], b[None, :, :]

    def cross(o: npt.NDArray[np.float64], p: npt.NDArray[np.float64],
              q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return (p[..., 0] - o[..., 0]) * (q[..., 1] - o[..., 1]) - (p[..., 1] - o[..., 1]) * (
            q[..., 0] - o[..., 0]
        )

    def within(p: npt.NDArray[np.float64], s: npt.NDArray[np.float64],
               e: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        lo, hi = np.minimum(s, e), np.maximum(s, e)
        inside: npt.NDArray[np.bool_] = np.all((lo <= p) & (p <= hi), axis=-1)
        return inside

    d1, d2 = cross(cj, dj, ai), cross(cj, dj, bi)
    d3, d4 = cross(ai, bi, cj), cross(ai, bi, dj)
    crossing = (((d1 > 0) & (d2 < 0)) | ((d1 < 0) & (d2 > 0))) & (
        ((d3 > 0) & (d4 < 0)) | ((d3 < 0) & (d4 > 0))
    )
    touching = (
        ((d1 == 0) & within(ai, cj, dj))
        | ((d2 == 0) & within(bi, cj, dj))
        | ((d3 == 0) & within(cj, ai, bi))
        | ((d4 == 0) & within(dj, ai, bi))
    )
    # Only pairs i < j that do not share a vertex by construction.
    pairs = np.triu(np.ones((count, count), dtype=bool), k=2)
    pairs[0, count - 1] = False
    return not bool(np.any((crossing | touching) & pairs))


def point_in_polygon(x: float, y: float, points: Sequence[Point]) -> bool:
    """Ray casting; a point on an edge or vertex counts as inside."""
    count = len(points)
    for i in range(count):
        if _on_segment((x, y), points[i], points[(i + 1) % count]):
            return True
    inside = False
    j = count - 1
    for i in range(count):
        xi, yi = points[i]
        xj, yj = points[j]
        # Half-open rule on y, so a ray through a vertex is counted exactly once.
        if (yi > y) != (yj > y):
            x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
            if x < x_cross:
                inside = not inside
        j = i
    return inside


def _clip_to_box(points: Sequence[Point], box: tuple[float, float, float, float]) -> list[Point]:
    """Sutherland-Hodgman clip against an axis-aligned box.

    The clip window is convex, so the result's area is exact even for a concave zone (concave
    parts may leave zero-area slivers, which add nothing to the area).
    """
    x1, y1, x2, y2 = box
    planes: list[tuple[int, float, bool]] = [
        (0, x1, True),
        (0, x2, False),
        (1, y1, True),
        (1, y2, False),
    ]
    out: list[Point] = list(points)
    for axis, bound, keep_above in planes:
        if not out:
            break
        src, out = out, []

        def inside(p: Point, axis: int = axis, bound: float = bound, up: bool = keep_above) -> bool:
            return p[axis] >= bound if up else p[axis] <= bound

        prev = src[-1]
        for cur in src:
            cur_in, prev_in = inside(cur), inside(prev)
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                hit = (prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1]))
                out.append(hit)
            if cur_in:
                out.append(cur)
            prev = cur
    return out


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _trusted(info: ValidationInfo) -> bool:
    """Zones read back from this server's own file were checked when they were configured
    (against the limits of that time); checking again would make start-up time grow with what
    clients once sent."""
    return isinstance(info.context, dict) and info.context.get(TRUSTED) is True


class Zone(_Model):
    """One named area of a camera's view. The name is user text: treat it as data."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_ZONE_NAME_CHARS)]
    kind: ZoneKind = ZoneKind.OTHER
    points: tuple[Point, ...]

    @field_validator("points")
    @classmethod
    def _valid_polygon(cls, points: tuple[Point, ...], info: ValidationInfo) -> tuple[Point, ...]:
        if len(points) < 3:
            raise ValueError("a zone needs at least 3 points")
        trusted = _trusted(info)
        if len(points) > MAX_POINTS_PER_ZONE and not trusted:
            raise ValueError(f"a zone may have at most {MAX_POINTS_PER_ZONE} points")
        for x, y in points:
            finite = math.isfinite(x) and math.isfinite(y)
            if not finite or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"zone point ({x}, {y}) is outside the normalised range 0..1")
        # A closing point equal to the first is a common export habit; drop it.
        if math.dist(points[0], points[-1]) < _EPS and len(points) > 3:
            points = points[:-1]
        for i in range(len(points)):
            if math.dist(points[i], points[(i + 1) % len(points)]) < _EPS:
                raise ValueError("a zone has repeated consecutive points")
        if abs(polygon_area(points)) < _MIN_AREA:
            raise ValueError("a zone's polygon has (almost) no area")
        if not trusted and not is_simple_polygon(points):
            raise ValueError("a zone's outline crosses itself")
        return points

    @property
    def area(self) -> float:
        return abs(polygon_area(self.points))

    def contains(self, x: float, y: float) -> bool:
        return point_in_polygon(x, y, self.points)

    def overlap_fraction(self, box: tuple[float, float, float, float]) -> float:
        """Share of a normalised box's area that lies inside this zone (0..1)."""
        bx1, by1, bx2, by2 = box
        box_area = (bx2 - bx1) * (by2 - by1)
        if box_area <= 0.0:
            return 1.0 if self.contains(bx1, by1) else 0.0
        clipped = _clip_to_box(self.points, box)
        if len(clipped) < 3:
            return 0.0
        return min(1.0, abs(polygon_area(clipped)) / box_area)


@dataclass(frozen=True, slots=True)
class ZoneHit:
    name: str
    kind: ZoneKind
    # Whether the foot point (bottom-centre of the box) is inside the zone.
    contains_foot: bool
    # Share of the box's area inside the zone.
    overlap: float


@dataclass(frozen=True, slots=True)
class ZoneAssignment:
    foot: Point  # normalised
    hits: tuple[ZoneHit, ...]  # zones under the foot (smallest first), then by overlap

    @property
    def zones(self) -> tuple[ZoneHit, ...]:
        """Zones the object stands in (by its foot point)."""
        return tuple(hit for hit in self.hits if hit.contains_foot)

    @property
    def ignored(self) -> bool:
        """The object stands in an ignore zone (a road, a neighbour's yard)."""
        return any(hit.kind is ZoneKind.IGNORE for hit in self.zones)

    @property
    def primary(self) -> ZoneHit | None:
        return self.zones[0] if self.zones else None


def normalise_box(box: PixelBox, width: int, height: int) -> tuple[float, float, float, float]:
    if width <= 0 or height <= 0:
        raise ValueError("image width and height must be positive")
    x1, y1, x2, y2 = box
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))

    def clamp(value: float) -> float:
        return min(1.0, max(0.0, value))

    return clamp(x1 / width), clamp(y1 / height), clamp(x2 / width), clamp(y2 / height)


class ZoneMap(_Model):
    """The zones of one camera."""

    camera_id: Annotated[str, Field(min_length=1, max_length=128)]
    zones: tuple[Zone, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self, info: ValidationInfo) -> Self:
        if len(self.zones) > MAX_ZONES_PER_CAMERA and not _trusted(info):
            raise ValueError(f"a camera may have at most {MAX_ZONES_PER_CAMERA} zones")
        names = [zone.name for zone in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique per camera")
        return self

    def zones_for_box(self, box: PixelBox, width: int, height: int) -> ZoneAssignment:
        """Assign a detection box (pixels) to zones by its foot point, with overlap fractions.

        The foot point is the bottom-centre of the box: where a person or vehicle touches the
        ground, which is what a zone drawn on the ground plane describes.
        """
        nbox = normalise_box(box, width, height)
        foot = ((nbox[0] + nbox[2]) / 2.0, nbox[3])
        ranked: list[tuple[tuple[bool, float], ZoneHit]] = []
        for zone in self.zones:
            contains = zone.contains(*foot)
            overlap = zone.overlap_fraction(nbox)
            if contains or overlap > 0.0:
                # Zones under the foot come first, smallest (most specific: a porch inside a
                # yard) first; merely overlapped zones follow by overlap.
                key = (not contains, zone.area if contains else -overlap)
                ranked.append((key, ZoneHit(zone.name, zone.kind, contains, overlap)))
        ranked.sort(key=lambda item: item[0])
        return ZoneAssignment(foot=foot, hits=tuple(hit for _, hit in ranked))


class _ZonesFile(BaseModel):
    version: int = _FORMAT_VERSION
    cameras: dict[str, tuple[Zone, ...]] = Field(default_factory=dict)


class ZoneRegistry:
    """Thread-safe zone maps for all cameras, persisted as one JSON file in the data dir."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._path = data_dir / ZONES_FILE if data_dir is not None else None
        self._maps: dict[str, ZoneMap] = {}
        self._load()

    @property
    def path(self) -> Path | None:
        return self._path

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            parsed = _ZonesFile.model_validate_json(
                self._path.read_bytes(), context={TRUSTED: True}
            )
        except (OSError, ValidationError, ValueError) as err:
            moved = quarantine(self._path)
            _LOGGER.warning(
                "Zone file %s is unreadable (%s); starting with no zones (old file kept as %s)",
                self._path,
                type(err).__name__,
                moved,
            )
            return
        for camera_id, zones in parsed.cameras.items():
            self._maps[camera_id] = ZoneMap.model_validate(
                {"camera_id": camera_id, "zones": zones}, context={TRUSTED: True}
            )

    def _save_locked(self) -> None:
        if self._path is None:
            return
        payload = _ZonesFile(cameras={cid: zmap.zones for cid, zmap in sorted(self._maps.items())})
        # Compact, and encoded by pydantic's core: a file at every limit is written in
        # milliseconds, where indented json.dumps took over a second.
        atomic_write(self._path, payload.model_dump_json())

    def set(self, camera_id: str, zones: ZoneMap | Iterable[Zone | dict[str, Any]]) -> ZoneMap:
        """Replace a camera's zones (validated) and persist them."""
        if isinstance(zones, ZoneMap):
            zmap = ZoneMap(camera_id=camera_id, zones=zones.zones)
        else:
            zmap = ZoneMap.model_validate({"camera_id": camera_id, "zones": list(zones)})
        with self._lock:
            self._maps[camera_id] = zmap
            self._save_locked()
        return zmap

    def set_many(self, maps: Iterable[ZoneMap]) -> None:
        """Replace several cameras' zones (validated already) with one write of the file."""
        with self._lock:
            for zmap in maps:
                self._maps[zmap.camera_id] = zmap
            self._save_locked()

    def get(self, camera_id: str) -> ZoneMap:
        """A camera's zones; a camera without zones gets an empty map."""
        with self._lock:
            found = self._maps.get(camera_id)
        return found if found is not None else ZoneMap(camera_id=camera_id)

    def remove(self, camera_id: str) -> bool:
        with self._lock:
            existed = self._maps.pop(camera_id, None) is not None
            if existed:
                self._save_locked()
        return existed

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._maps)
