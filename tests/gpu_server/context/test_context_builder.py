"""The enricher end to end: zones, baseline, scene and other cameras in one context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gpu_server.context import (
    ActivityBaseline,
    ContextBuilder,
    CrossCameraLog,
    FrameObservation,
    Zone,
    ZoneRegistry,
)
from gpu_server.vocabulary import LabelGroup, ZoneKind

Image = npt.NDArray[np.uint8]
# A Tuesday, 03:00 UTC.
NIGHT = datetime(2025, 3, 4, 3, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Det:
    label: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _enricher(tmp_path: Path, clock: FakeClock) -> ContextBuilder:
    zones = ZoneRegistry(tmp_path)
    zones.set(
        "front",
        [
            Zone(
                name="Porch",
                kind=ZoneKind.ENTRY,
                points=((0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)),
            ),
            Zone(
                name="Road",
                kind=ZoneKind.IGNORE,
                points=((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)),
            ),
        ],
    )
    return ContextBuilder(
        zones,
        ActivityBaseline(tmp_path, default_tz=UTC),
        CrossCameraLog(timedelta(minutes=5), clock=clock),
    )


def _quiet_nights(enricher: ContextBuilder, weeks: int) -> None:
    # Past weeks: the front camera sees nobody at 03:00, and the hour closes at 04:00.
    for week in range(weeks, 0, -1):
        when = NIGHT - timedelta(weeks=week)
        enricher.build("front", [FrameObservation(when, 1000, 500)])
        enricher.build("front", [FrameObservation(when + timedelta(hours=1), 1000, 500)])


def test_window_context(tmp_path: Path) -> None:
    clock = FakeClock(NIGHT)
    enricher = _enricher(tmp_path, clock)
    _quiet_nights(enricher, weeks=3)
    enricher.cross_camera.add("drive", NIGHT - timedelta(seconds=40), ["person"], ["Driveway"])

    frames = [
        FrameObservation(
            NIGHT + timedelta(seconds=s),
            1000,
            500,
            [
                Det("person", 0.9, 100, 100, 200, 450),  # on the porch
                Det("car", 0.8, 700, 300, 900, 480),  # on the road: ignored
            ],
        )
        for s in (0, 2, 4)
    ]
    context = enricher.build("front", frames, camera_name="Front door")

    assert context.start == NIGHT
    assert context.end == NIGHT + timedelta(seconds=4)
    assert len(context.detections) == 6
    assert [d.zone_names for d in context.relevant_detections] == [("Porch",)] * 3
    assert context.counts[LabelGroup.PERSON] == 1  # one person, seen in three frames
    assert context.counts[LabelGroup.VEHICLE] == 0  # the road is ignored
    assert not context.anomaly.warming_up
    assert context.anomaly.score >= 0.6  # a person where nights are quiet
    assert context.anomaly.expected[LabelGroup.PERSON] == 0.0
    assert context.scene is None  # the scene check runs at intake, not here
    assert not context.tamper
    (other,) = context.cross_camera
    assert (other.camera_id, other.zones) == ("drive", ("Driveway",))
    assert other.seconds_before == pytest.approx(40)

    # The batch went into the log for the other cameras.
    (note,) = enricher.cross_camera.summarize("drive", NIGHT + timedelta(seconds=10))
    assert note.camera_name == "Front door"
    assert note.zones == ("Porch",)


def test_learned_state_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock(NIGHT)
    enricher = _enricher(tmp_path, clock)
    _quiet_nights(enricher, weeks=3)
    frame = FrameObservation(NIGHT, 1000, 500, [Det("person", 0.7, 100, 100, 200, 450)])
    first = enricher.build("front", [frame])
    assert len(enricher.cross_camera) == 1
    enricher.flush()

    restarted = _enricher(tmp_path, clock)
    again = restarted.build("front", [frame])
    assert again.anomaly == first.anomaly
    assert not again.anomaly.warming_up


def test_empty_batches_and_naive_times_are_rejected(tmp_path: Path) -> None:
    enricher = _enricher(tmp_path, FakeClock(NIGHT))
    with pytest.raises(ValueError, match="at least one frame"):
        enricher.build("front", [])
    with pytest.raises(ValueError, match="timezone-aware"):
        enricher.build("front", [FrameObservation(datetime(2025, 1, 1), 10, 10)])


def test_the_detector_detection_fits_the_protocol(tmp_path: Path) -> None:
    detect = pytest.importorskip("gpu_server.ingest.detect")
    det = detect.Detection("person", 0, 0.9, 100.0, 100.0, 200.0, 450.0)
    context = _enricher(tmp_path, FakeClock(NIGHT)).build(
        "front", [FrameObservation(NIGHT, 1000, 500, [det])]
    )
    assert context.relevant_detections[0].zone_names == ("Porch",)
