"""Posture flags from constructed landmark sets: each flag, none for a standing person, none when
the landmarks that decide it are not visible."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gpu_server.enrich.posture import PoseFlag, posture_flags

Points = npt.NDArray[np.float32]

# A person standing upright, facing the camera, about 210 px tall (y runs down); the torso
# (shoulder midpoint to hip midpoint) is 70 px.
STANDING: dict[int, tuple[float, float]] = {
    0: (100, 20),  # nose
    1: (97, 15), 2: (95, 15), 3: (93, 15), 4: (103, 15), 5: (105, 15), 6: (107, 15),  # eyes
    7: (90, 18), 8: (110, 18),  # ears
    9: (97, 28), 10: (103, 28),  # mouth
    11: (115, 50), 12: (85, 50),  # shoulders
    13: (120, 80), 14: (80, 80),  # elbows
    15: (120, 110), 16: (80, 110),  # wrists
    17: (121, 115), 18: (79, 115), 19: (120, 116), 20: (80, 116), 21: (118, 113), 22: (82, 113),
    23: (110, 120), 24: (90, 120),  # hips
    25: (110, 160), 26: (90, 160),  # knees
    27: (110, 200), 28: (90, 200),  # ankles
    29: (110, 205), 30: (90, 205), 31: (115, 208), 32: (85, 208),  # heels, toes
}


def body(
    changes: dict[int, tuple[float, float]] | None = None, hidden: tuple[int, ...] = ()
) -> tuple[Points, npt.NDArray[np.float32]]:
    points = dict(STANDING) | (changes or {})
    array = np.asarray([points[index] for index in range(33)], dtype=np.float32)
    visibility = np.full(33, 0.95, dtype=np.float32)
    visibility[list(hidden)] = 0.2
    return array, visibility


def turned(points: Points, degrees: float) -> Points:
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.asarray(points @ rotation.T, dtype=np.float32)


CROUCHING = {
    11: (115, 95), 12: (85, 95), 13: (125, 120), 14: (75, 120), 15: (128, 150), 16: (72, 150),
    **{index: (x, y + 45) for index, (x, y) in STANDING.items() if index <= 10},
    23: (110, 165), 24: (90, 165),  # hips down, level with the knees
    25: (130, 160), 26: (70, 160),  # knees forward and out
    27: (112, 200), 28: (88, 200),  # ankles under the hips
}


def test_a_standing_person_has_no_flag() -> None:
    assert posture_flags(*body()) == ()


def test_arms_spread_wide_is_not_lying() -> None:
    arms = {13: (150, 50), 14: (50, 50), 15: (185, 50), 16: (15, 50)}
    assert posture_flags(*body(arms)) == ()


def test_a_person_turned_on_the_side_is_lying() -> None:
    points, visibility = body()
    for degrees in (90, -90, 75):
        assert posture_flags(turned(points, degrees), visibility) == (PoseFlag.LYING,)
    # Bending forward at 45 degrees is not lying.
    assert PoseFlag.LYING not in posture_flags(turned(points, 45), visibility)


def test_lying_from_the_extent_when_the_torso_is_hidden() -> None:
    points, visibility = body(hidden=(11, 12))
    assert posture_flags(turned(points, 90), visibility) == (PoseFlag.LYING,)


def test_crouching() -> None:
    assert posture_flags(*body(CROUCHING)) == (PoseFlag.CROUCHING,)


def test_no_crouching_without_the_ankles() -> None:
    assert posture_flags(*body(CROUCHING, hidden=(27, 28))) == ()


def test_sitting_upright_on_a_chair_is_not_crouching() -> None:
    # Hips at knee height, shins vertical: the knees bend to 90 degrees, not less.
    chair = dict(CROUCHING) | {25: (130, 165), 26: (70, 165), 27: (130, 205), 28: (70, 205)}
    assert posture_flags(*body(chair)) == ()


def test_climbing_with_a_hand_over_the_head_and_a_knee_raised() -> None:
    climbing = {15: (120, 0), 13: (125, 30), 25: (125, 118), 27: (130, 150)}
    assert posture_flags(*body(climbing)) == (PoseFlag.CLIMBING,)
    # The same hand up with both feet on the ground: no flag.
    assert posture_flags(*body({15: (120, 0), 13: (125, 30)})) == ()


def test_climbing_with_hands_up_and_the_feet_at_different_heights() -> None:
    climbing = {15: (118, 30), 16: (82, 30), 27: (110, 160), 25: (110, 140)}
    assert posture_flags(*body(climbing)) == (PoseFlag.CLIMBING,)


def test_no_flag_when_nothing_decides_it() -> None:
    points, visibility = body()
    assert posture_flags(points, np.zeros_like(visibility)) == ()
    assert posture_flags(turned(points, 90), np.zeros_like(visibility)) == ()
