"""The circuit breaker's closed -> open -> half-open -> closed cycle, on a hand-driven clock."""

from __future__ import annotations

from gpu_server.llm.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_and_half_opens_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in_s == 30
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_in_s == 0


def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for its outcome
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow()


def test_a_failed_probe_opens_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=5, cooldown_s=10, clock=clock)
    breaker.record_failure(trip=True)
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough while probing, whatever the threshold
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in_s == 10


def test_a_timeout_trips_at_once_and_a_released_probe_lets_the_next_one_try() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=5, clock=clock)
    breaker.record_failure(trip=True)
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    assert breaker.allow()
    breaker.release_probe()  # cancelled: it proved nothing
    assert breaker.allow()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=5, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
