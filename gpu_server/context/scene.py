"""Scene-change (tamper) detection: compares each frame with a per-camera reference view.

A camera that is suddenly covered, spray-painted or turned away is itself a security event, so
this runs on every analyzed frame. Frames are reduced to a small grey image and compared with
SSIM (structural similarity, Gaussian-weighted windows) after each is normalised to the same
brightness and contrast, so an infrared camera switching to night mode (colour to grey, darker
exposure) is the same view. The reference adapts slowly while the scene is stable, so dusk and
passing clouds do not look like tampering.

A change is reported once: the frames that follow while the camera stays covered, or stays
pointed at the same new view, continue that tamper episode instead of starting new ones. A new
view that holds for `adopt_after` frames or `adopt_after_s` seconds becomes the reference, and
the camera is quiet again.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from gpu_server.config import SceneConfig
from gpu_server.context._storage import camera_file_stem, quarantine
from gpu_server.files import atomic_write

_LOGGER = logging.getLogger(__name__)

SCENE_DIR = "scene"
FloatImage = npt.NDArray[np.float32]

# SSIM stabilising constants for 8-bit dynamic range (Wang et al. 2004: K1=0.01, K2=0.03).
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2
# Frames smaller than this on a side are too small to compare views.
MIN_SIDE: Final = 8


class SceneChangeKind(StrEnum):
    NONE = "none"
    COVERED = "covered"  # lens blocked or blinded: nearly uniform or detail lost
    MOVED = "moved"  # a different view with normal texture: turned, knocked or replaced


@dataclass(frozen=True, slots=True)
class SceneChange:
    score: float  # mean SSIM against the reference, -1..1 (1 = identical)
    changed: bool
    kind: SceneChangeKind
    # Share of the image whose local SSIM is low: whole-view changes are near 1.
    changed_fraction: float = 0.0
    # True for the first frame of a camera (or after a reset): it became the reference.
    baseline_set: bool = False
    # True when a persistent new view was adopted as the reference on this frame.
    adopted: bool = False
    # True when this changed frame continues a tamper episode an earlier frame started.
    ongoing: bool = False

    @property
    def tamper(self) -> bool:
        """A camera newly covered or moved: a security event in itself, reported once."""
        return self.changed and self.kind is not SceneChangeKind.NONE and not self.ongoing


def to_grey_small(frame: npt.NDArray[np.generic], width: int) -> FloatImage:
    """BGR/BGRA/grey image of any dtype -> small float32 grey image on a 0..255 scale."""
    image = np.asarray(frame)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        if image.dtype != np.uint8:
            image = _to_uint8(image)
        image = cv2.cvtColor(image, code)
    elif image.ndim != 2:
        raise ValueError(f"expected an H x W or H x W x C image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = _to_uint8(image)
    height, src_width = image.shape
    if height < MIN_SIDE or src_width < MIN_SIDE:
        raise ValueError("frame is too small for scene comparison")
    out_width = min(width, src_width)
    out_height = max(8, round(height * out_width / src_width))
    small = cv2.resize(image, (out_width, out_height), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.float32)


def _to_uint8(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    data = np.asarray(image, dtype=np.float64)
    if data.size and np.nanmax(data) <= 1.0:
        data = data * 255.0  # float images in 0..1
    return np.clip(np.nan_to_num(data), 0, 255).astype(np.uint8)


def ssim_map(a: FloatImage, b: FloatImage, sigma: float = 1.5) -> FloatImage:
    """Per-pixel SSIM of two same-sized grey float images, cropped to fully-covered windows."""
    if a.shape != b.shape:
        raise ValueError("SSIM needs images of the same size")
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    radius = max(1, int(3.5 * sigma + 0.5))
    ksize = (2 * radius + 1, 2 * radius + 1)

    def blur(img: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(cv2.GaussianBlur(img, ksize, sigma, borderType=cv2.BORDER_REFLECT))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + _C1) * (2.0 * cov + _C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2)
    full = numerator / denominator
    # Border windows see reflected pixels; leave them out when the image is large enough.
    if full.shape[0] > 2 * radius + 4 and full.shape[1] > 2 * radius + 4:
        full = full[radius:-radius, radius:-radius]
    return full.astype(np.float32)


def ssim(a: FloatImage, b: FloatImage, sigma: float = 1.5) -> float:
    return float(np.mean(ssim_map(a, b, sigma)))


# Contrast every compared image is scaled to (grey levels of standard deviation).
_NORMAL_STD: Final = 50.0


def normalised(image: FloatImage) -> FloatImage:
    """The image at mean grey 128 and a fixed contrast: exposure and gain no longer matter."""
    std = float(np.std(image))
    if std < 1e-3:
        return np.full_like(image, 128.0)
    scaled = (image - float(np.mean(image))) * (_NORMAL_STD / std) + 128.0
    return np.asarray(scaled, dtype=np.float32)


def _detail(image: FloatImage) -> float:
    """Fine-detail energy (variance of the Laplacian): drops when the lens is blocked."""
    return float(np.var(cv2.Laplacian(image, cv2.CV_32F)))


def _read_reference(path: Path) -> FloatImage:
    reference = np.load(path, allow_pickle=False)
    if reference.ndim != 2 or min(reference.shape) < 8:
        raise ValueError("reference frame has an unexpected shape")
    reference = np.asarray(reference, dtype=np.float32)
    if not np.all(np.isfinite(reference)):
        raise ValueError("reference frame holds non-finite values")
    return reference


@dataclass(slots=True)
class _CameraState:
    reference: FloatImage
    adaptations: int = 0
    dirty: bool = False
    # The changed view seen since the episode began, how many frames showed it, since when.
    candidate: FloatImage | None = None
    candidate_count: int = 0
    candidate_since: float = 0.0
    # The kind of the open tamper episode; NONE when the view is the usual one.
    episode: SceneChangeKind = SceneChangeKind.NONE
    latest: FloatImage | None = None


class SceneMonitor:
    """Keeps a reference view per camera and classifies each new frame against it.

    Thread-safe; the work per frame is a resize and a few filters on a 160 px image (a couple of
    milliseconds), so one lock for all cameras is fine. Call it from a worker thread.
    """

    def __init__(self, data_dir: Path | None = None, config: SceneConfig | None = None) -> None:
        self.config = config if config is not None else SceneConfig()
        self._dir = data_dir / SCENE_DIR if data_dir is not None else None
        self._lock = threading.Lock()
        self._states: dict[str, _CameraState] = {}

    def _path(self, camera_id: str) -> Path | None:
        return None if self._dir is None else self._dir / f"{camera_file_stem(camera_id)}.npy"

    def _load_locked(self, camera_id: str) -> _CameraState | None:
        state = self._states.get(camera_id)
        if state is not None:
            return state
        path = self._path(camera_id)
        if path is None or not path.exists():
            return None
        try:
            reference = _read_reference(path)
        except (OSError, ValueError) as err:
            moved = quarantine(path)
            _LOGGER.warning(
                "Scene reference %s is unreadable (%s); the next frame becomes the reference "
                "(old file kept as %s)",
                path,
                type(err).__name__,
                moved,
            )
            return None
        state = _CameraState(reference)
        self._states[camera_id] = state
        return state

    def _save_locked(self, camera_id: str, state: _CameraState) -> None:
        path = self._path(camera_id)
        if path is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, state.reference, allow_pickle=False)
        try:
            atomic_write(path, buffer.getvalue())
            state.dirty = False
        except OSError:
            _LOGGER.exception("Could not write the scene reference for a camera to %s", path)

    def reset(self, camera_id: str, frame: npt.NDArray[np.generic] | None = None) -> None:
        """Forget the reference (the next frame sets it), or set it from `frame` now."""
        with self._lock:
            if frame is None:
                self._states.pop(camera_id, None)
                path = self._path(camera_id)
                if path is not None:
                    path.unlink(missing_ok=True)
                return
            state = _CameraState(to_grey_small(frame, self.config.width))
            self._states[camera_id] = state
            self._save_locked(camera_id, state)

    def adopt_latest(self, camera_id: str) -> bool:
        """Make the camera's most recent frame its reference view now (False: none seen yet)."""
        with self._lock:
            state = self._states.get(camera_id)
            if state is None or state.latest is None:
                return False
            fresh = _CameraState(state.latest, latest=state.latest)
            self._states[camera_id] = fresh
            self._save_locked(camera_id, fresh)
            return True

    def has_reference(self, camera_id: str) -> bool:
        with self._lock:
            return self._load_locked(camera_id) is not None

    def check(
        self, camera_id: str, frame: npt.NDArray[np.generic], now: float | None = None
    ) -> SceneChange:
        """Compare a frame (BGR or grey) with the camera's reference view.

        `now` (monotonic seconds) times how long a new view has held; it defaults to the clock.
        A frame too small to compare (a thumbnail of a few pixels) says nothing about the view:
        it is neither compared nor used as the reference.
        """
        cfg = self.config
        if min(np.shape(frame)[:2]) < MIN_SIDE:
            return SceneChange(1.0, False, SceneChangeKind.NONE)
        now = time.monotonic() if now is None else now
        small = to_grey_small(frame, cfg.width)
        with self._lock:
            state = self._load_locked(camera_id)
            if state is None:
                state = _CameraState(small, latest=small)
                self._states[camera_id] = state
                self._save_locked(camera_id, state)
                return SceneChange(1.0, False, SceneChangeKind.NONE, baseline_set=True)
            state.latest = small
            reference = state.reference
            if reference.shape != small.shape:
                # The stream's aspect ratio changed. Compare against a stretched reference: a
                # reconfigured camera is worth reporting, and adoption/reset recovers from it.
                small_ref = cv2.resize(reference, (small.shape[1], small.shape[0]))
                reference = np.asarray(small_ref, dtype=np.float32)
                state.reference = reference
            local = ssim_map(normalised(reference), normalised(small), cfg.sigma)
            score = float(np.mean(local))
            changed_fraction = float(np.mean(local < cfg.local_change_threshold))
            kind = self._classify(reference, small, score)
            if kind is SceneChangeKind.NONE:
                state.episode, state.candidate, state.candidate_count = kind, None, 0
                self._adapt_locked(camera_id, state, small, score)
                return SceneChange(score, False, kind, changed_fraction=changed_fraction)
            ongoing, adopted = self._follow_episode_locked(camera_id, state, small, kind, now)
            return SceneChange(
                score=score,
                changed=True,
                kind=kind,
                changed_fraction=changed_fraction,
                adopted=adopted,
                ongoing=ongoing,
            )

    def _adapt_locked(
        self, camera_id: str, state: _CameraState, small: FloatImage, score: float
    ) -> None:
        cfg = self.config
        if score < cfg.stable_threshold or cfg.adapt_rate <= 0.0:
            return
        rate = cfg.adapt_rate
        blended = cv2.addWeighted(state.reference, 1.0 - rate, small, rate, 0.0)
        state.reference = np.asarray(blended, dtype=np.float32)
        state.adaptations += 1
        state.dirty = True
        if state.adaptations % cfg.save_every == 0:
            self._save_locked(camera_id, state)

    def _classify(self, reference: FloatImage, frame: FloatImage, score: float) -> SceneChangeKind:
        cfg = self.config
        frame_std = float(np.std(frame))
        reference_std = float(np.std(reference))
        # A flat frame where the reference had texture: lens covered, or blinded by a light.
        if frame_std < cfg.covered_std and reference_std >= cfg.covered_std:
            return SceneChangeKind.COVERED
        if score >= cfg.change_threshold:
            return SceneChangeKind.NONE
        # Detail relative to contrast, so a darker exposure keeps its detail and a blur does not.
        reference_detail = _detail(normalised(reference))
        frame_detail = _detail(normalised(frame))
        if reference_detail > 0.0 and frame_detail < cfg.covered_detail_ratio * reference_detail:
            return SceneChangeKind.COVERED
        return SceneChangeKind.MOVED

    def _same_view(self, view: FloatImage, frame: FloatImage) -> bool:
        score = ssim(normalised(view), normalised(frame), self.config.sigma)
        return self._classify(view, frame, score) is SceneChangeKind.NONE

    def _follow_episode_locked(
        self,
        camera_id: str,
        state: _CameraState,
        small: FloatImage,
        kind: SceneChangeKind,
        now: float,
    ) -> tuple[bool, bool]:
        """Track the tamper episode this changed frame belongs to: (ongoing, adopted)."""
        cfg = self.config
        if kind is SceneChangeKind.COVERED:
            # A covered lens shows nothing worth adopting; the episode lasts until it clears.
            ongoing = state.episode is SceneChangeKind.COVERED
            state.episode, state.candidate, state.candidate_count = kind, None, 0
            return ongoing, False
        candidate = state.candidate
        if (
            state.episode is SceneChangeKind.MOVED
            and candidate is not None
            and candidate.shape == small.shape
            and self._same_view(candidate, small)
        ):
            state.candidate_count += 1
            ongoing = True
        else:
            # A view not seen before: a new episode, reported.
            state.candidate, state.candidate_count, state.candidate_since = small, 1, now
            state.episode = kind
            ongoing = False
        by_count = cfg.adopt_after > 0 and state.candidate_count >= cfg.adopt_after
        by_time = cfg.adopt_after_s > 0 and now - state.candidate_since >= cfg.adopt_after_s
        if not (by_count or by_time):
            return ongoing, False
        # The new view has held: it becomes the reference, and the camera is quiet again.
        state.reference, state.candidate, state.candidate_count = small, None, 0
        state.episode = SceneChangeKind.NONE
        self._save_locked(camera_id, state)
        _LOGGER.info("Camera %s: its new view held, and is now the reference", camera_id)
        return ongoing, True

    def flush(self) -> None:
        """Write references that adapted since they were last saved."""
        with self._lock:
            for camera_id, state in self._states.items():
                if state.dirty:
                    self._save_locked(camera_id, state)
