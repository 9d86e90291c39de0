"""Posture flags from body landmarks: lying, crouching, climbing. Plain geometry, no model.

Only landmarks the pose model calls visible count, and a flag is only raised when the landmarks
it needs are there: a person whose legs are out of view is never called crouching. Lengths are
measured in torso lengths (shoulder midpoint to hip midpoint), so the thresholds hold for any
distance to the camera. Image y runs down.
"""

from __future__ import annotations

import enum
import math
from typing import Final

import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float32]  # (33, 2), x and y in pixels

# MediaPipe's body landmark indices (33 of them).
NOSE: Final = 0
HEAD: Final = tuple(range(11))  # nose, eyes, ears, mouth
SHOULDERS: Final = (11, 12)
WRISTS: Final = (15, 16)
HIPS: Final = (23, 24)
KNEES: Final = (25, 26)
ANKLES: Final = (27, 28)
LEGS: Final = ((23, 25, 27), (24, 26, 28))  # hip, knee, ankle of the left and the right leg

VISIBLE: Final = 0.5
# Lying: the torso within 30 degrees of horizontal (a person bending forward to pick something
# up stays steeper than that from the side)...
LYING_TORSO_DEG: Final = 30.0
# ...or, with the torso not clearly upright, the visible body at least 1.8 times as wide as tall
# (a standing person with the arms spread is about as wide as tall).
LYING_EXTENT: Final = 1.8
LYING_EXTENT_MAX_TORSO_DEG: Final = 45.0
LYING_EXTENT_MIN_POINTS: Final = 8
# Crouching and climbing need an upright torso: within 40 degrees of vertical.
UPRIGHT_TORSO_DEG: Final = 50.0
# Crouching: a knee bent to 80 degrees or less (about 90 when sitting on a chair, 160-180
# standing) with the hips come down to within 0.35 torso lengths above that knee.
CROUCH_KNEE_DEG: Final = 80.0
CROUCH_HIP_ABOVE_KNEE: Final = 0.35
# Climbing: a hand above the top of the head with one knee raised to hip height (the thigh
# horizontal or higher; walking lifts it to about 0.6 torso lengths below the hip)...
KNEE_RAISED_BELOW_HIP: Final = 0.15
# ...or both hands above the shoulders with the feet at heights at least half a torso length
# apart (one foot on a step, a ledge or a fence rail).
HANDS_ABOVE_SHOULDERS: Final = 0.2
FEET_APART: Final = 0.5


class PoseFlag(enum.StrEnum):
    LYING = "lying"
    CROUCHING = "crouching"
    CLIMBING = "climbing"


def _mid(points: Points, seen: npt.NDArray[np.bool_], indices: tuple[int, ...]) -> Points | None:
    """The mean of the visible ones of `indices`, or None when none is visible."""
    chosen = [index for index in indices if seen[index]]
    if not chosen:
        return None
    return np.asarray(points[chosen].mean(axis=0), dtype=np.float32)


def _angle(a: Points, b: Points, c: Points) -> float:
    """The angle at b between b->a and b->c, in degrees."""
    u, v = a - b, c - b
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    if norm == 0.0:
        return 180.0
    cosine = float(np.dot(u, v)) / norm
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def posture_flags(points: Points, visibility: npt.NDArray[np.float32]) -> tuple[PoseFlag, ...]:
    """The flags that the visible landmarks clearly show; none when they do not decide it."""
    seen = visibility >= VISIBLE
    shoulder = _mid(points, seen, SHOULDERS)
    hip = _mid(points, seen, HIPS)
    torso_deg: float | None = None  # the torso's angle above the horizontal, 0..90
    torso = 0.0
    if shoulder is not None and hip is not None:
        dx, dy = float(shoulder[0] - hip[0]), float(shoulder[1] - hip[1])
        torso = math.hypot(dx, dy)
        if torso >= 1.0:
            torso_deg = math.degrees(math.atan2(abs(dy), abs(dx)))
    if torso_deg is not None and torso_deg < LYING_TORSO_DEG:
        return (PoseFlag.LYING,)
    visible = points[seen]
    if (torso_deg is None or torso_deg < LYING_EXTENT_MAX_TORSO_DEG) and len(
        visible
    ) >= LYING_EXTENT_MIN_POINTS:
        width, height = np.ptp(visible, axis=0)
        if width >= LYING_EXTENT * max(float(height), 1.0):
            return (PoseFlag.LYING,)
    # Crouching and climbing: only for an upright torso, shoulders above the hips.
    if torso_deg is None or torso_deg < UPRIGHT_TORSO_DEG or shoulder is None or hip is None:
        return ()
    if shoulder[1] >= hip[1]:
        return ()
    flags: list[PoseFlag] = []
    if _crouching(points, seen, torso):
        flags.append(PoseFlag.CROUCHING)
    if _climbing(points, seen, torso, shoulder):
        flags.append(PoseFlag.CLIMBING)
    return tuple(flags)


def _crouching(points: Points, seen: npt.NDArray[np.bool_], torso: float) -> bool:
    for hip, knee, ankle in LEGS:
        if not (seen[hip] and seen[knee] and seen[ankle]):
            continue
        bent = _angle(points[hip], points[knee], points[ankle]) <= CROUCH_KNEE_DEG
        hips_down = points[knee][1] - points[hip][1] <= CROUCH_HIP_ABOVE_KNEE * torso
        if bent and hips_down:
            return True
    return False


def _climbing(
    points: Points, seen: npt.NDArray[np.bool_], torso: float, shoulder: Points
) -> bool:
    wrists = [points[index] for index in WRISTS if seen[index]]
    head = [points[index] for index in HEAD if seen[index]]
    if head and wrists:
        top = min(float(point[1]) for point in head)
        hand_over_head = any(float(wrist[1]) < top for wrist in wrists)
        knee_raised = any(
            seen[hip] and seen[knee]
            and points[knee][1] - points[hip][1] <= KNEE_RAISED_BELOW_HIP * torso
            for hip, knee, _ in LEGS
        )
        if hand_over_head and knee_raised:
            return True
    hands_up = len(wrists) == len(WRISTS) and all(
        shoulder[1] - wrist[1] >= HANDS_ABOVE_SHOULDERS * torso for wrist in wrists
    )
    if hands_up and all(seen[index] for index in ANKLES):
        left, right = (float(points[index][1]) for index in ANKLES)
        return abs(left - right) >= FEET_APART * torso
    return False
