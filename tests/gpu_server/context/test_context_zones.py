"""Zones: polygon maths, box assignment and persistence."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from gpu_server.context import Zone, ZoneMap, ZoneRegistry, point_in_polygon
from gpu_server.vocabulary import ZoneKind

SQUARE = ((0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8))
# A "U": the notch between the arms (x 0.4..0.6, y 0.1..0.6) is outside.
U_SHAPE = (
    (0.1, 0.1),
    (0.4, 0.1),
    (0.4, 0.6),
    (0.6, 0.6),
    (0.6, 0.1),
    (0.9, 0.1),
    (0.9, 0.9),
    (0.1, 0.9),
)


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((0.5, 0.5), True),
        ((0.1, 0.5), False),
        ((0.9, 0.9), False),
        ((0.2, 0.5), True),  # on the left edge
        ((0.8, 0.8), True),  # on a vertex
        ((0.5, 0.2), True),  # on the top edge
        ((0.80001, 0.5), False),
    ],
)
def test_point_in_square_with_boundary(point: tuple[float, float], inside: bool) -> None:
    assert point_in_polygon(*point, SQUARE) is inside


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((0.25, 0.3), True),  # left arm
        ((0.75, 0.3), True),  # right arm
        ((0.5, 0.3), False),  # the notch
        ((0.5, 0.8), True),  # the base
        ((0.5, 0.6), True),  # the notch's bottom edge
        ((0.4, 0.35), True),  # the notch's side edge
        ((0.5, 0.1), False),  # level with the arm tops, but in the notch's mouth
        ((0.05, 0.6), False),  # ray passes through the vertex row at y=0.6
    ],
)
def test_point_in_concave_polygon(point: tuple[float, float], inside: bool) -> None:
    assert point_in_polygon(*point, U_SHAPE) is inside


def test_ray_through_vertices_counts_once() -> None:
    diamond = ((0.5, 0.1), (0.9, 0.5), (0.5, 0.9), (0.1, 0.5))
    assert point_in_polygon(0.3, 0.5, diamond)  # ray along y=0.5 hits the vertex (0.9, 0.5)
    assert not point_in_polygon(0.05, 0.5, diamond)


@pytest.mark.parametrize(
    "points",
    [
        ((0.1, 0.1), (0.5, 0.5)),  # too few
        ((0.1, 0.1), (1.2, 0.1), (0.5, 0.5)),  # out of range
        ((0.1, 0.1), (0.5, 0.5), (0.9, 0.9)),  # collinear: no area
        ((0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)),  # bow-tie: crosses itself
        ((0.1, 0.1), (0.1, 0.1), (0.9, 0.1), (0.5, 0.5)),  # repeated point
        ((float("nan"), 0.1), (0.9, 0.1), (0.5, 0.5)),
    ],
)
def test_invalid_polygons_are_rejected(points: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValidationError):
        Zone(name="z", kind=ZoneKind.YARD, points=points)


def test_closing_point_is_dropped_and_names_must_be_unique() -> None:
    zone = Zone(name="yard", points=(*SQUARE, SQUARE[0]))
    assert zone.points == SQUARE
    with pytest.raises(ValidationError):
        ZoneMap(camera_id="cam", zones=(zone, zone))


def _map() -> ZoneMap:
    return ZoneMap(
        camera_id="front",
        zones=(
            Zone(
                name="Driveway",
                kind=ZoneKind.DRIVEWAY,
                points=((0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)),
            ),
            Zone(
                name="Street",
                kind=ZoneKind.IGNORE,
                points=((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)),
            ),
            Zone(name="Porch", kind=ZoneKind.ENTRY, points=U_SHAPE),
        ),
    )


def test_box_is_assigned_by_its_foot_point() -> None:
    zmap = _map()
    # 1000x500 image; box standing on the driveway (foot at x=0.2, y=0.9), head above it.
    result = zmap.zones_for_box((150, 100, 250, 450), 1000, 500)
    assert result.foot == pytest.approx((0.2, 0.9))
    assert result.primary is not None
    assert result.primary.name == "Driveway"
    assert {hit.name for hit in result.zones} == {"Driveway", "Porch"}
    assert not result.ignored
    driveway = next(hit for hit in result.hits if hit.name == "Driveway")
    # Box spans y 0.2..0.9 in normalised units; the driveway covers y >= 0.5: 0.4 / 0.7.
    assert driveway.overlap == pytest.approx(0.4 / 0.7)


def test_box_in_ignore_zone_is_flagged() -> None:
    result = _map().zones_for_box((700, 300, 800, 480), 1000, 500)
    assert result.ignored
    assert result.primary is not None
    assert result.primary.kind is ZoneKind.IGNORE


def test_box_overlapping_without_foot_inside_is_reported_but_not_a_zone() -> None:
    # Foot in the U's notch (outside), box overlapping both arms.
    result = _map().zones_for_box((300, 50, 700, 150), 1000, 500)
    assert result.zones == ()
    porch = next(hit for hit in result.hits if hit.name == "Porch")
    assert not porch.contains_foot
    # Box x 0.3..0.7, y 0.1..0.3: arms cover x 0.3..0.4 and 0.6..0.7 -> half the box.
    assert porch.overlap == pytest.approx(0.5)


def test_resolution_change_keeps_assignment() -> None:
    zmap = _map()
    small = zmap.zones_for_box((15, 10, 25, 45), 100, 50)
    large = zmap.zones_for_box((384, 216, 640, 972), 2560, 1080)
    assert [h.name for h in small.zones] == [h.name for h in large.zones] == ["Driveway", "Porch"]


def test_registry_round_trip(tmp_path: Path) -> None:
    registry = ZoneRegistry(tmp_path)
    registry.set("front", _map())
    registry.set(
        "back", [{"name": "Gate", "kind": "perimeter", "points": [[0, 0], [1, 0], [1, 1]]}]
    )
    reloaded = ZoneRegistry(tmp_path)
    assert reloaded.cameras() == ["back", "front"]
    assert reloaded.get("front") == _map()
    assert reloaded.get("back").zones[0].kind is ZoneKind.PERIMETER
    assert reloaded.get("unknown").zones == ()
    assert reloaded.remove("back")
    assert ZoneRegistry(tmp_path).cameras() == ["front"]
    assert not list(tmp_path.glob("*.tmp"))


def test_registry_set_validates_before_storing(tmp_path: Path) -> None:
    registry = ZoneRegistry(tmp_path)
    with pytest.raises(ValidationError):
        registry.set("front", [{"name": "bad", "points": [[0, 0], [1, 1]]}])
    assert registry.cameras() == []


def test_registry_survives_a_corrupt_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "zones.json").write_text("{not json", encoding="utf-8")
    registry = ZoneRegistry(tmp_path)
    assert registry.cameras() == []
    assert "unreadable" in caplog.text
    assert (tmp_path / "zones.json.corrupt").exists()
    registry.set("front", _map())
    assert json.loads((tmp_path / "zones.json").read_text(encoding="utf-8"))["cameras"]["front"]


def test_registry_is_thread_safe(tmp_path: Path) -> None:
    registry = ZoneRegistry(tmp_path)

    def writer(index: int) -> None:
        for _ in range(5):
            registry.set(f"cam{index}", _map())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ZoneRegistry(tmp_path).cameras() == ["cam0", "cam1", "cam2", "cam3"]


def _simple_by_pairs(points: list[tuple[float, float]]) -> bool:
    """The plain definition, one pair of edges at a time: no two non-adjacent edges meet."""

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def within(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
        return (
            min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])
        )

    count = len(points)
    edges = [(points[i], points[(i + 1) % count]) for i in range(count)]
    for i in range(count):
        for j in range(i + 2, count):
            if i == 0 and j == count - 1:
                continue
            (a, b), (c, d) = edges[i], edges[j]
            d1, d2, d3, d4 = cross(c, d, a), cross(c, d, b), cross(a, b, c), cross(a, b, d)
            if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
                return False
            if (
                (d1 == 0 and within(a, c, d))
                or (d2 == 0 and within(b, c, d))
                or (d3 == 0 and within(c, a, b))
                or (d4 == 0 and within(d, a, b))
            ):
                return False
    return True


def test_the_vectorised_outline_check_agrees_with_the_plain_definition() -> None:
    import random

    from gpu_server.context.zones import is_simple_polygon

    rng = random.Random(7)
    simple = 0
    for trial in range(3000):
        count = rng.randint(3, 12)
        if trial % 3 == 0:
            # On a coarse grid, so touching and collinear edges come up often.
            points = [(rng.randint(0, 4) / 4, rng.randint(0, 4) / 4) for _ in range(count)]
        else:
            points = [(rng.random(), rng.random()) for _ in range(count)]
        expected = _simple_by_pairs(points)
        simple += expected
        assert is_simple_polygon(points) == expected, points
    assert 100 < simple < 2900  # both answers were exercised
