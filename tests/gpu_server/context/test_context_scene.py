"""Scene-change detection on real photos and synthetic frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gpu_server.context import SceneChangeKind, SceneConfig, SceneMonitor, ssim
from gpu_server.context.scene import to_grey_small

Image = npt.NDArray[np.uint8]


def _shift(image: Image, fraction: float) -> Image:
    height, width = image.shape[:2]
    matrix = np.array([[1, 0, width * fraction], [0, 1, 0]], dtype=np.float32)
    return np.asarray(cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT))


def _rotate(image: Image, degrees: float) -> Image:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT))


def _checked(reference: Image, frame: Image, config: SceneConfig | None = None) -> SceneMonitor:
    monitor = SceneMonitor(config=config)
    first = monitor.check("cam", reference)
    assert first.baseline_set
    assert not first.changed
    return monitor


def test_ssim_of_identical_images_is_one(bus: Image) -> None:
    small = to_grey_small(bus, 160)
    assert small.shape[1] == 160
    assert ssim(small, small) == pytest.approx(1.0)
    assert ssim(small, 255.0 - small) < 0.0  # inverted structure correlates negatively


def test_identical_frame_is_no_change(bus: Image) -> None:
    result = _checked(bus, bus).check("cam", bus.copy())
    assert result.score == pytest.approx(1.0, abs=1e-6)
    assert not result.changed
    assert result.kind is SceneChangeKind.NONE
    assert not result.tamper


@pytest.mark.parametrize(
    "drift",
    [
        lambda img: cv2.convertScaleAbs(img, alpha=1.0, beta=15),  # brighter
        lambda img: cv2.convertScaleAbs(img, alpha=0.85, beta=0),  # dimmer
        lambda img: np.clip(img + np.random.default_rng(1).normal(0, 6, img.shape), 0, 255).astype(
            np.uint8
        ),  # sensor noise
    ],
    ids=["brighter", "dimmer", "noise"],
)
def test_small_lighting_drift_is_no_change(bus: Image, drift: object) -> None:
    assert callable(drift)
    result = _checked(bus, bus).check("cam", drift(bus))
    assert not result.changed
    assert result.score > 0.8


@pytest.mark.parametrize(
    "cover",
    [
        np.zeros_like,
        lambda img: np.full_like(img, 245),  # blinded by a torch
        lambda img: (
            np.full_like(img, 90)
            + np.random.default_rng(2).integers(0, 4, img.shape, dtype=np.uint8)
        ),
        lambda img: cv2.GaussianBlur(img, (0, 0), 25),  # hand or cloth over the lens
    ],
    ids=["black", "white", "grey-noise", "blurred"],
)
def test_covered_frame(bus: Image, cover: object) -> None:
    assert callable(cover)
    result = _checked(bus, bus).check("cam", cover(bus))
    assert result.changed
    assert result.kind is SceneChangeKind.COVERED
    assert result.tamper


@pytest.mark.parametrize(
    "move",
    [
        lambda img: _shift(img, 0.15),
        lambda img: _shift(img, -0.08),
        lambda img: _rotate(img, 20),
    ],
    ids=["pan-right", "pan-left", "rotated"],
)
def test_moved_camera(bus: Image, move: object) -> None:
    assert callable(move)
    result = _checked(bus, bus).check("cam", move(bus))
    assert result.changed
    assert result.kind is SceneChangeKind.MOVED
    assert result.changed_fraction > 0.5


def test_a_different_scene_is_moved(bus: Image, zidane: Image) -> None:
    height, width = bus.shape[:2]
    result = _checked(zidane, zidane).check("cam", cv2.resize(bus, zidane.shape[1::-1]))
    assert result.kind is SceneChangeKind.MOVED
    # And the other way round, with a different resolution but the same aspect.
    monitor = _checked(bus, bus)
    other = cv2.resize(zidane, (width // 2, height // 2))
    assert monitor.check("cam", other).kind is SceneChangeKind.MOVED


def test_an_object_filling_part_of_the_view_is_not_tamper(bus: Image, zidane: Image) -> None:
    height, width = bus.shape[:2]
    frame = bus.copy()
    frame[height // 2 :, : width // 3] = cv2.resize(zidane, (width // 3, height - height // 2))
    result = _checked(bus, bus).check("cam", frame)
    assert not result.changed
    assert 0.05 < result.changed_fraction < 0.5


def test_uniform_scene_is_not_reported_as_covered() -> None:
    wall = np.full((120, 160, 3), 60, dtype=np.uint8)
    result = _checked(wall, wall).check("cam", wall)
    assert not result.changed


def test_reference_adapts_slowly_to_gradual_lighting(bus: Image) -> None:
    monitor = _checked(bus, bus, SceneConfig(adapt_rate=0.2))
    # Dusk: 60 levels darker in small steps; each step stays "no change".
    for step in range(1, 13):
        frame = cv2.convertScaleAbs(bus, alpha=1.0, beta=-5 * step)
        assert not monitor.check("cam", frame).changed
    dark = cv2.convertScaleAbs(bus, alpha=1.0, beta=-60)
    adapted = monitor.check("cam", dark).score
    fresh = _checked(bus, bus).check("cam", dark).score
    assert adapted > fresh


def test_persistent_new_view_is_adopted_when_configured(bus: Image) -> None:
    monitor = _checked(bus, bus, SceneConfig(adopt_after=3))
    moved = _shift(bus, 0.2)
    results = [monitor.check("cam", moved) for _ in range(3)]
    assert all(r.kind is SceneChangeKind.MOVED for r in results)
    assert [r.adopted for r in results] == [False, False, True]
    assert not monitor.check("cam", moved).changed


def test_reset_and_persistence(tmp_path: Path, bus: Image, zidane: Image) -> None:
    monitor = SceneMonitor(tmp_path)
    assert monitor.check("front", bus).baseline_set
    assert len(list((tmp_path / "scene").glob("*.npy"))) == 1

    restarted = SceneMonitor(tmp_path)
    assert restarted.has_reference("front")
    again = restarted.check("front", bus)
    assert not again.baseline_set
    assert not again.changed

    restarted.reset("front", zidane)
    assert SceneMonitor(tmp_path).check("front", zidane).score == pytest.approx(1.0, abs=1e-6)
    restarted.reset("front")
    assert not SceneMonitor(tmp_path).has_reference("front")
    assert restarted.check("front", bus).baseline_set


def test_adapted_reference_is_flushed(tmp_path: Path, bus: Image) -> None:
    monitor = SceneMonitor(tmp_path, SceneConfig(adapt_rate=0.5))
    monitor.check("front", bus)
    brighter = cv2.convertScaleAbs(bus, alpha=1.0, beta=20)
    monitor.check("front", brighter)
    monitor.flush()
    stored = np.load(next((tmp_path / "scene").glob("*.npy")))
    expected = 0.5 * to_grey_small(bus, 160) + 0.5 * to_grey_small(brighter, 160)
    assert np.allclose(stored, expected, atol=0.01)


def test_corrupt_reference_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bus: Image
) -> None:
    (tmp_path / "scene").mkdir()
    (tmp_path / "scene" / "front.npy").write_bytes(b"garbage")
    monitor = SceneMonitor(tmp_path)
    assert monitor.check("front", bus).baseline_set
    assert "unreadable" in caplog.text


def test_unsafe_camera_ids_stay_inside_the_data_dir(tmp_path: Path, bus: Image) -> None:
    monitor = SceneMonitor(tmp_path / "data")
    monitor.check("../../escape", bus)
    files = list((tmp_path / "data" / "scene").glob("*.npy"))
    assert len(files) == 1
    assert not list(tmp_path.glob("*.npy"))


def test_grey_and_float_frames_are_accepted(bus: Image) -> None:
    grey = cv2.cvtColor(bus, cv2.COLOR_BGR2GRAY)
    monitor = _checked(bus, bus)
    assert not monitor.check("cam", grey).changed
    assert not monitor.check("cam", bus.astype(np.float32) / 255.0).changed
    # A thumbnail of a few pixels says nothing about the view: no comparison, no new reference.
    tiny = monitor.check("cam", np.zeros((4, 4), dtype=np.uint8))
    assert (tiny.changed, tiny.baseline_set) == (False, False)
    assert not monitor.check("cam", bus).changed


def _noisy(image: Image, seed: int) -> Image:
    noise = np.random.default_rng(seed).normal(0, 8, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def test_a_re_aimed_camera_gives_one_tamper_then_quiet(bus: Image) -> None:
    monitor = _checked(bus, bus, SceneConfig(adopt_after=6, adopt_after_s=0))
    moved = _shift(bus, 0.2)
    results = [monitor.check("cam", _noisy(moved, seed)) for seed in range(50)]
    assert [r.tamper for r in results].count(True) == 1
    assert results[0].tamper
    assert results[0].kind is SceneChangeKind.MOVED
    assert all(r.ongoing for r in results[1:6])
    assert [r.adopted for r in results].index(True) == 5
    # Adopted: the new view is the usual one now.
    assert not any(r.changed for r in results[6:])


def test_a_new_view_is_adopted_after_its_time(bus: Image) -> None:
    monitor = _checked(bus, bus, SceneConfig(adopt_after=0, adopt_after_s=60))
    moved = _shift(bus, 0.2)
    first, held, late = (monitor.check("cam", moved, now=t) for t in (1000.0, 1030.0, 1061.0))
    assert first.tamper
    assert not first.adopted
    assert held.ongoing
    assert not held.tamper
    assert not held.adopted
    assert late.adopted
    assert not late.tamper
    assert not monitor.check("cam", moved, now=1062.0).changed


def test_adoption_can_be_turned_off(bus: Image) -> None:
    monitor = _checked(bus, bus, SceneConfig(adopt_after=0, adopt_after_s=0))
    moved = _shift(bus, 0.2)
    results = [monitor.check("cam", moved, now=float(t * 3600)) for t in range(10)]
    assert all(r.changed for r in results)
    assert not any(r.adopted for r in results)
    assert [r.tamper for r in results] == [True] + [False] * 9


def test_a_covered_camera_is_one_episode_until_it_clears(bus: Image) -> None:
    monitor = _checked(bus, bus)
    black = np.zeros_like(bus)
    covered = [monitor.check("cam", black) for _ in range(6)]
    assert [r.tamper for r in covered] == [True] + [False] * 5
    assert all(r.kind is SceneChangeKind.COVERED and r.changed for r in covered)
    assert not any(r.adopted for r in covered)  # a covered lens never becomes the usual view
    assert not monitor.check("cam", bus).changed
    assert monitor.check("cam", black).tamper  # covered again: a new episode


def test_a_second_new_view_is_a_second_tamper(bus: Image, zidane: Image) -> None:
    monitor = _checked(bus, bus)
    assert monitor.check("cam", _shift(bus, 0.2)).tamper
    assert monitor.check("cam", cv2.resize(zidane, bus.shape[1::-1])).tamper


@pytest.mark.parametrize(
    "night",
    [
        lambda img: cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
        lambda img: cv2.convertScaleAbs(
            cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), alpha=0.35
        ),
        lambda img: cv2.convertScaleAbs(img, alpha=0.3, beta=10),
    ],
    ids=["grey", "grey-darker", "darker"],
)
def test_infrared_day_night_switch_is_not_tamper(bus: Image, night: object) -> None:
    assert callable(night)
    monitor = _checked(bus, bus)
    result = monitor.check("cam", night(bus))
    assert not result.changed
    assert not result.tamper
    # And back to colour in the morning.
    assert not monitor.check("cam", bus).changed


def test_adopt_latest_makes_the_current_view_usual_at_once(bus: Image) -> None:
    monitor = SceneMonitor()
    assert not monitor.adopt_latest("cam")  # nothing seen yet
    monitor.check("cam", bus)
    moved = _shift(bus, 0.2)
    assert monitor.check("cam", moved).tamper
    assert monitor.adopt_latest("cam")
    assert not monitor.check("cam", moved).changed
