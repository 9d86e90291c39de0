"""A circuit breaker around the language model: a failing model costs once, not once per window.

Closed: every analysis may use the model. After `failures` failures in a row (or one timeout,
since a hung model would cost a full timeout per window) it opens: the rules answer at once.
After `cooldown_s` it is half-open: exactly one analysis probes the model; success closes it,
failure opens it for another cool-down.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._opened_at: float | None = None
        self._probing = False
        self.consecutive_failures = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self._cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def retry_in_s(self) -> float:
        """Seconds until a probe may run; 0 when closed or half-open."""
        if self._opened_at is None or self._probing:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown_s - self._clock())

    def allow(self) -> bool:
        """May this analysis use the model? In half-open, only the first caller may (the probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self, *, trip: bool = False) -> None:
        """Count a failure; `trip` opens the circuit at once (a timeout)."""
        self.consecutive_failures += 1
        if trip or self._probing or self.consecutive_failures >= self._threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release_probe(self) -> None:
        """The probe ended without saying anything about the model (e.g. it was cancelled)."""
        self._probing = False
