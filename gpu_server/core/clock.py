"""Time: the clock, injectable so tests drive windows without sleeping, and the hour of the week."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final, Protocol

HOURS_PER_WEEK: Final = 7 * 24
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: windows and idle timeouts use it."""

    def wall(self) -> datetime:
        """Timezone-aware current time: event timestamps use it."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def require_aware(when: datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")


def hour_of_week(local_time: datetime) -> int:
    """0 for Monday 00:00-00:59, up to 167 for Sunday 23:00-23:59 (camera's local time)."""
    return local_time.weekday() * 24 + local_time.hour


def describe_hour_of_week(hour: int) -> str:
    """'Tue 07:00' for 31."""
    return f"{_WEEKDAYS[hour // 24 % 7]} {hour % 24:02d}:00"
