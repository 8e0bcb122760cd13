"""Circuit breaker, AIMD concurrency, retry backoff and clock-driven timeouts."""

import asyncio
import random

import pytest

from services.router.clock import LoopClock, ManualClock, run_simulated
from services.router.health import AimdLimiter, BreakerState, CircuitBreaker, run_with_timeout
from services.router.routing_types import AimdSettings, BreakerSettings, ProviderRetries

SETTINGS = BreakerSettings(window_s=60, min_calls=4, failure_rate=0.5, cooldown_s=30)


def breaker_after(outcomes: list[bool], clock: ManualClock) -> CircuitBreaker:
    breaker = CircuitBreaker(clock, SETTINGS)
    for healthy in outcomes:
        assert breaker.try_acquire()
        breaker.record(healthy)
    return breaker


def test_breaker_stays_closed_below_the_minimum_number_of_calls():
    breaker = breaker_after([False, False, False], ManualClock())
    assert breaker.state is BreakerState.CLOSED


def test_breaker_opens_when_the_error_rate_crosses_the_threshold():
    breaker = breaker_after([True, False, True, False], ManualClock())
    assert breaker.state is BreakerState.OPEN
    assert not breaker.try_acquire()


def test_breaker_forgets_failures_that_left_the_window():
    clock = ManualClock()
    breaker = breaker_after([False, False, False], clock)
    clock.advance(61)
    for _ in range(3):
        breaker.try_acquire()
        breaker.record(True)
    breaker.try_acquire()
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_breaker_lets_one_probe_through_and_closes_on_success():
    clock = ManualClock()
    breaker = breaker_after([False] * 4, clock)
    clock.advance(29)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire()
    assert not breaker.try_acquire(), "only one probe at a time"
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.try_acquire()


def test_failed_probe_opens_the_breaker_for_another_cooldown():
    clock = ManualClock()
    breaker = breaker_after([False] * 4, clock)
    clock.advance(30)
    assert breaker.try_acquire()
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    clock.advance(29)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_probe_that_says_nothing_frees_the_probe_slot():
    clock = ManualClock()
    breaker = breaker_after([False] * 4, clock)
    clock.advance(30)
    assert breaker.try_acquire()
    breaker.record(None)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire()


def test_late_success_of_a_call_from_before_the_opening_does_not_close_it():
    clock = ManualClock()
    breaker = CircuitBreaker(clock, SETTINGS)
    assert breaker.try_acquire()  # a slow call starts while the provider is still closed
    for _ in range(4):
        breaker.try_acquire()
        breaker.record(False)
    breaker.record(True)
    assert breaker.state is BreakerState.OPEN


def test_disabled_breaker_never_refuses():
    clock = ManualClock()
    breaker = CircuitBreaker(clock, BreakerSettings(enabled=False, min_calls=1))
    for _ in range(10):
        assert breaker.try_acquire()
        breaker.record(False)
    assert breaker.state is BreakerState.CLOSED


def test_aimd_halves_on_429_down_to_the_floor_and_grows_back_additively():
    clock = ManualClock()
    limiter = AimdLimiter(clock, max_limit=8)
    for expected in (4, 2, 1, 1):
        limiter.on_rate_limited(retry_after_s=0)
        assert limiter.current_limit == expected
    successes = 0
    while limiter.current_limit < 8:
        limiter.on_success()
        successes += 1
    # +1/limit per success: from 1 to 8 takes about (8² − 1²) / 2 ≈ 31 successes.
    assert 28 <= successes <= 34
    limiter.on_success()
    assert limiter.current_limit == 8


def test_aimd_limit_caps_in_flight_calls_and_retry_after_pauses_the_provider():
    clock = ManualClock()
    limiter = AimdLimiter(clock, max_limit=2)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    limiter.release()
    limiter.on_rate_limited(retry_after_s=5)
    assert limiter.current_limit == 1
    assert not limiter.has_capacity(), "one call still in flight, and paused"
    limiter.release()
    assert not limiter.has_capacity()
    clock.advance(5)
    assert limiter.try_acquire()


def test_aimd_disabled_keeps_the_configured_limit():
    limiter = AimdLimiter(ManualClock(), max_limit=4, settings=AimdSettings(enabled=False))
    limiter.on_rate_limited(retry_after_s=10)
    assert limiter.current_limit == 4 and limiter.has_capacity()


def test_backoff_is_jittered_within_the_exponential_ceiling_and_honours_retry_after():
    policy = ProviderRetries(base_delay_s=0.5, max_delay_s=4)
    rng = random.Random(3)
    delays = [policy.backoff_s(n, rng) for n in range(6) for _ in range(50)]
    assert all(0 <= d <= 4 for d in delays)
    assert len(set(delays)) > 100
    assert max(policy.backoff_s(1, rng) for _ in range(100)) <= 1.0
    assert policy.backoff_s(1, rng, retry_after_s=7) == 7


def test_timeout_holds_on_simulated_time():
    async def scenario():
        clock = LoopClock()
        started = clock.now()
        with pytest.raises(TimeoutError):
            await run_with_timeout(clock, asyncio.sleep(3600), timeout_s=90)
        timed_out_after = clock.now() - started
        result = await run_with_timeout(clock, asyncio.sleep(10, result="done"), timeout_s=90)
        return timed_out_after, result

    assert run_simulated(scenario()) == (90, "done")
