"""Fakes for the sidecar's injectable seams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock (`gpu_server.core.clock.Clock`) that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._mono = 1000.0
        self._wall = start if start is not None else datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
