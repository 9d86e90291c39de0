"""Per-camera windows with a fake clock, and which detections reach the prompt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from testlib.fakes import FakeClock

from gpu_server.core.detection import Detection
from gpu_server.events.builder import select_for_prompt
from gpu_server.events.windows import CameraWindows, WindowFrame, WindowSettings

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def frame(n: int, *confidences: float) -> WindowFrame:
    return WindowFrame(
        sha256=f"{n:064x}",
        captured_at=T0 + timedelta(seconds=n),
        width=100,
        height=100,
        detections=tuple(Detection("person", 0, c, 10, 10, 20, 20) for c in confidences),
    )


def windows(clock: FakeClock) -> CameraWindows:
    return CameraWindows(WindowSettings(window_s=90, idle_s=30), clock)


def test_one_open_window_per_camera_and_every_frame_joins_it() -> None:
    clock = FakeClock()
    w = windows(clock)
    first = w.add("a", frame(1))
    assert w.add("a", frame(2, 0.5)) == first
    assert w.add("b", frame(3)) != first
    assert w.open_count == 2


def test_idle_counts_from_the_last_detection() -> None:
    clock = FakeClock()
    w = windows(clock)
    w.add("a", frame(1, 0.5))
    clock.advance(20)
    w.add("a", frame(2))  # no detection: does not keep the window alive
    clock.advance(9.9)
    assert w.due() == []
    clock.advance(0.2)
    (closed,) = w.due()
    assert closed.reason == "idle"
    assert [f.sha256 for f in closed.frames] == [frame(1).sha256, frame(2).sha256]
    assert w.open_count == 0


def test_an_empty_window_goes_idle_from_when_it_opened() -> None:
    clock = FakeClock()
    w = windows(clock)
    w.add("a", frame(1))
    clock.advance(30)
    (closed,) = w.due()
    assert closed.reason == "idle"
    assert not any(frame.detections for frame in closed.frames)


def test_the_window_closes_a_busy_one() -> None:
    clock = FakeClock()
    w = windows(clock)
    for n in range(10):
        w.add("a", frame(n, 0.7))
        clock.advance(8.5)
    assert w.due() == []
    clock.advance(5)
    (closed,) = w.due()
    assert closed.reason == "window"
    assert len(closed.frames) == 10


def test_per_camera_windows_and_forced_close() -> None:
    clock = FakeClock()
    w = windows(clock)
    w.configure("fast", 5, None)
    assert w.settings_for("fast") == WindowSettings(5, 30)
    w.add("fast", frame(1, 0.5))
    w.add("slow", frame(2, 0.5))
    clock.advance(5)
    assert [b.camera_id for b in w.due()] == ["fast"]
    forced = w.close("slow")
    assert forced is not None
    assert forced.reason == "forced"
    assert w.close("slow") is None


def test_the_prompt_keeps_the_strongest_detections_and_every_frame() -> None:
    frames = [frame(1, 0.3, 0.9), frame(2, 0.3), frame(3, 0.8)]
    observations = select_for_prompt(frames, 2)
    assert len(observations) == 3  # every frame still counts for the span
    kept = [d.confidence for o in observations for d in o.detections]
    assert sorted(kept) == [0.8, 0.9]
    # Among equals the oldest goes first.
    observations = select_for_prompt(frames, 3)
    assert [len(o.detections) for o in observations] == [1, 1, 1]
    kept_times = [o.when for o in observations if any(d.confidence == 0.3 for d in o.detections)]
    assert kept_times == [frames[1].captured_at]


def test_a_full_window_closes_and_the_next_frame_opens_a_new_one() -> None:
    clock = FakeClock()
    w = CameraWindows(WindowSettings(window_s=90, idle_s=30), clock, max_detections=4)
    first = w.add("a", frame(1, 0.5, 0.6))
    assert w.add("a", frame(2)) == first  # frames without detections do not count
    assert w.add("a", frame(3, 0.7, 0.8)) == first  # reaches 4: closes
    assert w.full_count == 1
    assert w.open_count == 0
    second = w.add("a", frame(4, 0.9))
    assert second != first
    (closed,) = w.due()
    assert closed.reason == "full"
    assert closed.window_id == first
    assert [f.sha256 for f in closed.frames] == [frame(n).sha256 for n in (1, 2, 3)]
    assert w.full_count == 0
    still_open = w.close("a")
    assert still_open is not None
    assert still_open.window_id == second
