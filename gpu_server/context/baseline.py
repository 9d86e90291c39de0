"""Per-camera activity baseline by hour of the week, and how unusual current activity is.

Each camera has 168 buckets (Monday 00:00 local .. Sunday 23:00 local). A bucket keeps an
exponentially-weighted mean and variance, per label group, of the *peak* number of objects seen
at once during an observed hour. The peak, not the sum, is used so the statistic does not depend
on how often frames happen to arrive, and so one analysis window's counts compare like for like
with it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gpu_server.context._storage import quarantine
from gpu_server.core.clock import HOURS_PER_WEEK, require_aware
from gpu_server.core.clock import hour_of_week as local_hour_of_week
from gpu_server.files import atomic_write
from gpu_server.vocabulary import LabelGroup, label_group

_LOGGER = logging.getLogger(__name__)

BASELINE_FILE = "baseline.json"
_FORMAT_VERSION = 1


# Counts keyed by group, or by group name / detector label (folded into their group).
Counts = Mapping[LabelGroup, int] | Mapping[str, int]


def group_counts(labels: Iterable[str]) -> dict[LabelGroup, int]:
    counts = dict.fromkeys(LabelGroup, 0)
    for label in labels:
        counts[label_group(label)] += 1
    return counts


def local_timezone() -> tzinfo:
    """The server's zone: $TZ, else the /etc/localtime link, else the current fixed offset."""
    candidates: list[str] = []
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        candidates.append(env)
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "zoneinfo" + os.sep
        if marker in target:
            candidates.append(target.split(marker, 1)[1])
    except OSError:
        pass
    for name in candidates:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    fallback = datetime.now().astimezone().tzinfo
    return fallback if fallback is not None else ZoneInfo("UTC")


def hour_of_week(when: datetime, tz: tzinfo) -> int:
    """0 = Monday 00:00-00:59 in the camera's local time, 167 = Sunday 23:00-23:59."""
    require_aware(when)
    return local_hour_of_week(when.astimezone(tz))


def _local_hour_index(when: datetime, tz: tzinfo) -> int:
    # Hours since the epoch on the local wall clock: identifies "this hour" across calls.
    local = when.astimezone(tz)
    offset = local.utcoffset()
    seconds = local.timestamp() + (offset.total_seconds() if offset is not None else 0.0)
    return math.floor(seconds / 3600.0)


@dataclass(slots=True)
class _Stat:
    """Exponentially-weighted mean and variance of one group's hourly peak."""

    samples: int = 0
    mean: float = 0.0
    var: float = 0.0

    def update(self, value: float, alpha: float) -> None:
        self.samples += 1
        # Plain averaging until 1/n drops below alpha, so early samples are not over-weighted
        # by whatever the zero-initialised mean was.
        weight = max(alpha, 1.0 / self.samples)
        diff = value - self.mean
        increment = weight * diff
        self.mean += increment
        self.var = (1.0 - weight) * (self.var + diff * increment)


def _pool(stats: Iterable[_Stat]) -> _Stat:
    """Combine buckets (weighted by samples) for the warm-up fallback."""
    items = [s for s in stats if s.samples > 0]
    total = sum(s.samples for s in items)
    if total == 0:
        return _Stat()
    mean = sum(s.samples * s.mean for s in items) / total
    var = sum(s.samples * (s.var + (s.mean - mean) ** 2) for s in items) / total
    return _Stat(samples=total, mean=mean, var=var)


@dataclass(slots=True)
class _OpenHour:
    index: int
    how: int
    peaks: dict[LabelGroup, int]


@dataclass(slots=True)
class _CameraBaseline:
    buckets: list[dict[LabelGroup, _Stat]] = field(
        default_factory=lambda: [{} for _ in range(HOURS_PER_WEEK)]
    )
    open_hour: _OpenHour | None = None


@dataclass(frozen=True, slots=True)
class GroupAnomaly:
    group: LabelGroup
    observed: int
    expected: float
    std: float
    z: float


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """How unusual some counts are for a camera at a time; score 0 (usual) .. 1 (very unusual)."""

    score: float
    warming_up: bool
    hour_of_week: int
    # Hours of history behind the expectation (exact bucket, or pooled same hour of day).
    samples: int
    pooled: bool
    expected: dict[LabelGroup, float]
    observed: dict[LabelGroup, int]
    groups: tuple[GroupAnomaly, ...] = ()

class ActivityBaseline:
    """Learns what normal activity looks like per camera and hour of week. Thread-safe."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        alpha: float = 0.2,
        min_samples: int = 3,
        min_std: float = 0.4,
        z_scale: float = 3.0,
        flush_interval_s: float = 300.0,
        default_tz: tzinfo | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._min_samples = max(1, min_samples)
        # A floor on the spread: a bucket that always saw 0 has variance 0, and one person
        # must not then be infinitely surprising.
        self._min_std = min_std
        self._z_scale = z_scale
        self._flush_interval_s = flush_interval_s
        self._default_tz = default_tz if default_tz is not None else local_timezone()
        self._monotonic = monotonic
        self._path = data_dir / BASELINE_FILE if data_dir is not None else None
        self._lock = threading.Lock()
        self._cameras: dict[str, _CameraBaseline] = {}
        self._tz_names: dict[str, str] = {}
        self._tz_cache: dict[str, tzinfo] = {}
        self._dirty = False
        self._last_flush = monotonic()
        self._load()

    # -- time zones ---------------------------------------------------------------------------

    def set_timezone(self, camera_id: str, tz_name: str | None) -> None:
        """Set a camera's IANA zone (e.g. "Europe/Berlin"); None returns it to the default."""
        with self._lock:
            if tz_name is None:
                self._tz_names.pop(camera_id, None)
                self._tz_cache.pop(camera_id, None)
            else:
                self._tz_cache[camera_id] = ZoneInfo(tz_name)  # raises on an unknown name
                self._tz_names[camera_id] = tz_name
            self._dirty = True

    def timezone(self, camera_id: str) -> tzinfo:
        with self._lock:
            return self._tz_locked(camera_id)

    def _tz_locked(self, camera_id: str) -> tzinfo:
        return self._tz_cache.get(camera_id, self._default_tz)

    # -- learning -----------------------------------------------------------------------------

    def record(self, camera_id: str, when: datetime, counts: Counts) -> None:
        """Record one analyzed window's object counts (zeros too: they mark the hour observed).

        Counts are folded into the current local hour; an hour becomes a sample for its bucket
        once a record for a later hour arrives (or `flush(now)` passes its end).
        """
        require_aware(when)
        values = _normalise_counts(counts)
        with self._lock:
            tz = self._tz_locked(camera_id)
            camera = self._cameras.setdefault(camera_id, _CameraBaseline())
            index = _local_hour_index(when, tz)
            current = camera.open_hour
            if current is not None and index < current.index:
                # Late data for an hour already closed would double-count it.
                _LOGGER.debug("Ignoring late baseline record for %s", camera_id)
                return
            if current is not None and index > current.index:
                self._commit_locked(camera)
                current = None
            if current is None:
                current = _OpenHour(index, hour_of_week(when, tz), dict.fromkeys(LabelGroup, 0))
                camera.open_hour = current
            for group, value in values.items():
                current.peaks[group] = max(current.peaks[group], value)
            self._dirty = True
            due = self._monotonic() - self._last_flush >= self._flush_interval_s
        if due:
            self.flush()

    def _commit_locked(self, camera: _CameraBaseline) -> None:
        hour = camera.open_hour
        if hour is None:
            return
        bucket = camera.buckets[hour.how]
        for group in LabelGroup:
            bucket.setdefault(group, _Stat()).update(float(hour.peaks.get(group, 0)), self._alpha)
        camera.open_hour = None
        self._dirty = True

    # -- scoring ------------------------------------------------------------------------------

    def _expected_locked(
        self, camera_id: str, when: datetime
    ) -> tuple[dict[LabelGroup, _Stat], bool]:
        how = hour_of_week(when, self._tz_locked(camera_id))
        camera = self._cameras.get(camera_id)
        if camera is None:
            return {group: _Stat() for group in LabelGroup}, False
        exact = {group: _copy(camera.buckets[how].get(group)) for group in LabelGroup}
        if exact[LabelGroup.PERSON].samples >= self._min_samples:
            return exact, False
        # Young bucket: fall back to the same hour of day on every weekday, so a new camera
        # becomes useful after a few days rather than a few weeks.
        hour = how % 24
        same_hour = [camera.buckets[day * 24 + hour] for day in range(7)]
        pooled = {group: _pool(b.get(group, _Stat()) for b in same_hour) for group in LabelGroup}
        return pooled, True

    def anomaly_score(self, camera_id: str, when: datetime, counts: Counts) -> AnomalyResult:
        """Score counts against the camera's history at this local hour of the week.

        Only more activity than usual raises the score: an empty scene is not a threat.
        """
        require_aware(when)
        observed = _normalise_counts(counts)
        with self._lock:
            how = hour_of_week(when, self._tz_locked(camera_id))
            stats, pooled = self._expected_locked(camera_id, when)
        samples = stats[LabelGroup.PERSON].samples
        expected = {group: round(stats[group].mean, 3) for group in LabelGroup}
        if samples < self._min_samples:
            return AnomalyResult(0.0, True, how, samples, pooled, expected, observed)
        groups: list[GroupAnomaly] = []
        for group in LabelGroup:
            stat = stats[group]
            # Counts are roughly Poisson, so a busy hour is allowed at least its mean as
            # variance: 3 people where 2 is usual is not news, 3 where 0 is usual is.
            std = math.sqrt(max(stat.var, stat.mean, 0.0) + self._min_std**2)
            z = (observed[group] - stat.mean) / std
            groups.append(GroupAnomaly(group, observed[group], round(stat.mean, 3), std, z))
        top = max(g.z for g in groups)
        # tanh maps z >= 0 smoothly into 0..1: z = z_scale gives ~0.76, twice that ~0.96.
        score = math.tanh(max(0.0, top) / self._z_scale)
        return AnomalyResult(score, False, how, samples, pooled, expected, observed, tuple(groups))

    # -- persistence --------------------------------------------------------------------------

    def flush(self) -> bool:
        """Write the baseline if it changed; returns whether a file was written."""
        with self._lock:
            self._last_flush = self._monotonic()
            if self._path is None or not self._dirty:
                return False
            text = json.dumps(self._dump_locked(), separators=(",", ":"))
            self._dirty = False
            try:
                atomic_write(self._path, text)
            except OSError:
                self._dirty = True
                _LOGGER.exception("Could not write the activity baseline to %s", self._path)
                return False
        return True

    def _dump_locked(self) -> dict[str, Any]:
        cameras: dict[str, Any] = {}
        for camera_id, camera in self._cameras.items():
            buckets = {
                str(how): {g.value: [s.samples, s.mean, s.var] for g, s in bucket.items()}
                for how, bucket in enumerate(camera.buckets)
                if bucket
            }
            entry: dict[str, Any] = {"buckets": buckets}
            if camera.open_hour is not None:
                hour = camera.open_hour
                entry["open_hour"] = {
                    "index": hour.index,
                    "how": hour.how,
                    "peaks": {g.value: v for g, v in hour.peaks.items()},
                }
            cameras[camera_id] = entry
        return {"version": _FORMAT_VERSION, "timezones": dict(self._tz_names), "cameras": cameras}

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            cameras, tz_names = _parse(raw)
            tz_cache: dict[str, tzinfo] = {cid: ZoneInfo(name) for cid, name in tz_names.items()}
        except (OSError, ValueError, TypeError, KeyError, ZoneInfoNotFoundError) as err:
            moved = quarantine(self._path)
            _LOGGER.warning(
                "Activity baseline %s is unreadable (%s); starting fresh (old file kept as %s)",
                self._path,
                type(err).__name__,
                moved,
            )
            return
        self._cameras, self._tz_names, self._tz_cache = cameras, tz_names, tz_cache


def _copy(stat: _Stat | None) -> _Stat:
    return _Stat() if stat is None else _Stat(stat.samples, stat.mean, stat.var)


def _normalise_counts(counts: Counts) -> dict[LabelGroup, int]:
    values = dict.fromkeys(LabelGroup, 0)
    for key, value in counts.items():
        try:
            group = LabelGroup(key)
        except ValueError:
            group = label_group(str(key))
        if value < 0:
            raise ValueError("counts must not be negative")
        values[group] += int(value)
    return values


def _parse(raw: Any) -> tuple[dict[str, _CameraBaseline], dict[str, str]]:
    if not isinstance(raw, dict) or raw.get("version") != _FORMAT_VERSION:
        raise ValueError("unknown baseline format")
    tz_names = {str(k): str(v) for k, v in dict(raw.get("timezones", {})).items()}
    cameras: dict[str, _CameraBaseline] = {}
    for camera_id, entry in dict(raw["cameras"]).items():
        camera = _CameraBaseline()
        for how_text, groups in dict(entry["buckets"]).items():
            how = int(how_text)
            if not 0 <= how < HOURS_PER_WEEK:
                raise ValueError("hour of week out of range")
            for group_name, (samples, mean, var) in dict(groups).items():
                stat = _Stat(int(samples), float(mean), float(var))
                if stat.samples < 0 or not (math.isfinite(stat.mean) and math.isfinite(stat.var)):
                    raise ValueError("bad statistic")
                camera.buckets[how][LabelGroup(group_name)] = stat
        open_hour = entry.get("open_hour")
        if open_hour is not None:
            peaks = dict.fromkeys(LabelGroup, 0)
            for group_name, value in dict(open_hour["peaks"]).items():
                peaks[LabelGroup(group_name)] = int(value)
            how = int(open_hour["how"])
            if not 0 <= how < HOURS_PER_WEEK:
                raise ValueError("hour of week out of range")
            camera.open_hour = _OpenHour(int(open_hour["index"]), how, peaks)
        cameras[str(camera_id)] = camera
    return cameras, tz_names
