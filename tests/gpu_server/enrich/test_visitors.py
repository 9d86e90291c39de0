"""Visitors: a stranger recognised again over days, visits counted, colours kept short."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gpu_server.enrich.visitors import Person, Vector, VisitorBook

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def _face(seed: int, noise: float = 0.0) -> Vector:
    rng = np.random.default_rng(seed)
    vector = rng.standard_normal(128).astype(np.float32)
    vector /= np.linalg.norm(vector)
    if noise:
        vector += (np.random.default_rng(seed + 1000).standard_normal(128) * noise).astype(
            np.float32
        )
    return vector * 0.5  # dlib's embeddings lie about 0.6 apart for different people


def _colour(hue: int) -> Vector:
    histogram = np.zeros(32, np.float32)
    histogram[hue] = 1.0
    return histogram


def _book(data_dir: Path | None) -> VisitorBook:
    return VisitorBook(
        data_dir, face_distance=0.6, appearance_match=0.85, colour_match=0.75,
        colour_ttl_s=600.0, visit_gap_s=1800.0,
    )


def test_a_stranger_who_comes_back_on_later_days_is_linked(tmp_path: Path) -> None:
    book = _book(tmp_path)
    monday = 1_780_000_000_000
    (first,) = book.record("porch", [Person(face=_face(1))], monday)
    assert (first.known, first.visits, first.cue) == (False, 1, "face")
    # The same visit: frames of the next minutes count once.
    (again,) = book.record("porch", [Person(face=_face(1, 0.01))], monday + 60_000)
    assert (again.visitor_id, again.visits) == (first.visitor_id, 1)
    book.flush()
    # A restart in between: the book is read back from the data folder.
    later = _book(tmp_path)
    (tuesday,) = later.record("garden", [Person(face=_face(1, 0.02))], monday + DAY_MS)
    (wednesday,) = later.record("porch", [Person(face=_face(1, 0.02))], monday + 2 * DAY_MS)
    assert tuesday.visitor_id == wednesday.visitor_id == first.visitor_id
    assert wednesday.visits == 3
    assert wednesday.first_seen_ms == monday
    (other,) = later.record("porch", [Person(face=_face(2))], monday + 2 * DAY_MS)
    assert other.visitor_id != first.visitor_id


def test_enrolled_people_are_visitors_by_name(tmp_path: Path) -> None:
    book = _book(tmp_path)
    (anna,) = book.record("porch", [Person(name="Anna", face=_face(3))], 0)
    assert (anna.visitor_id, anna.name, anna.known) == ("known:Anna", "Anna", True)


def test_colours_tell_people_apart_on_one_camera_for_a_short_while(tmp_path: Path) -> None:
    book = _book(tmp_path)
    (red,) = book.record("porch", [Person(colour=_colour(0))], 0)
    (blue,) = book.record("porch", [Person(colour=_colour(9))], 60_000)
    assert red.visitor_id != blue.visitor_id
    (red_again,) = book.record("porch", [Person(colour=_colour(0))], 120_000)
    assert red_again.visitor_id == red.visitor_id
    # Another camera, or after the colours' time-to-live: clothes alone link nothing.
    (elsewhere,) = book.record("garden", [Person(colour=_colour(0))], 130_000)
    assert elsewhere.visitor_id != red.visitor_id
    (next_day,) = book.record("porch", [Person(colour=_colour(0))], DAY_MS)
    assert next_day.visitor_id != red.visitor_id
    book.flush()
    assert "colour" not in (tmp_path / "visitors.json").read_text()


def test_one_visitor_per_person_of_an_event(tmp_path: Path) -> None:
    book = _book(None)
    seen = book.record(
        "porch",
        [Person(face=_face(4)), Person(face=_face(4, 0.01)), Person(face=_face(5))],
        HOUR_MS,
    )
    assert len(seen) == 2


def test_an_unreadable_book_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "visitors.json").write_text("{broken")
    book = _book(tmp_path)
    (first,) = book.record("porch", [Person(face=_face(6))], 0)
    assert first.visits == 1
