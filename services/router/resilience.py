"""Keeping calls to providers safe: breakers, adaptive concurrency, retries, timeouts.

* `CircuitBreaker`: opens when the error rate over a sliding window (with a minimum
  number of calls) crosses a threshold; after a cooldown one probe call is let through
  (half-open); its success closes the breaker, its failure opens it again.
* `QualityBreaker`: the same breaker over the scorer's verdicts on one provider's
  candidates for one template, so a provider that answers 200 with black or broken images
  loses that template's traffic; it says why it opened (pass rate, the dimensions that
  failed most). Its half-open probe is one attempt; if no verdict comes back for it (the
  job was cancelled), another probe is let through after a further cooldown.
* `AimdLimiter`: a provider's concurrency limit, additive increase on success,
  multiplicative decrease on 429 (floor 1), and a pause for Retry-After. The engine never
  queues behind a full limiter; it moves on or reports that it is saturated.
* `RetryPolicy`: bounded calls per chunk, exponential backoff with full jitter.
* `run_with_timeout`: races a call against the injected clock, so timeouts hold on
  simulated time too.
"""

import asyncio
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from services.router.clock import Clock

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    enabled: bool = True
    window_s: float = 60.0
    min_calls: int = 5
    failure_rate: float = 0.5
    cooldown_s: float = 30.0
    # A probe with no outcome after this long is taken as lost; None: wait for it for ever
    # (a call always reports back, a verdict may never come).
    probe_lost_after_s: float | None = None
    # Only the last this-many outcomes count, however recent the older ones; None: all in the window.
    max_calls: int | None = None


class CircuitBreaker:
    def __init__(self, clock: Clock, settings: BreakerSettings = BreakerSettings()) -> None:
        self._clock = clock
        self.settings = settings
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._opened_at: float | None = None
        self._probe_started_at: float | None = None

    @property
    def _probe_in_flight(self) -> bool:
        started, lost_after = self._probe_started_at, self.settings.probe_lost_after_s
        if started is None:
            return False
        return lost_after is None or self._clock.now() - started < lost_after

    @_probe_in_flight.setter
    def _probe_in_flight(self, in_flight: bool) -> None:
        self._probe_started_at = self._clock.now() if in_flight else None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock.now() - self._opened_at < self.settings.cooldown_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def half_open_at(self) -> float | None:
        return None if self._opened_at is None else self._opened_at + self.settings.cooldown_s

    def is_available(self) -> bool:
        """Whether a call would be let through now (without taking the half-open probe)."""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._probe_in_flight)

    def try_acquire(self) -> bool:
        """Permission for one call; in half-open state only the single probe gets it."""
        if not self.settings.enabled or self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record(self, healthy: bool | None) -> None:
        """The outcome of a call let through: healthy, unhealthy, or None (says nothing)."""
        probing, self._probe_in_flight = self._probe_in_flight, False
        if healthy is None or not self.settings.enabled:
            return
        if probing:
            self._close() if healthy else self._open()
            return
        if self._opened_at is not None:
            # A call that started before the breaker opened proves nothing about now.
            return
        self._remember(healthy)
        if self._window_is_failing():
            self._open()

    def trip(self) -> None:
        """Open now, whatever the window says: no call can succeed until an operator acts."""
        self._probe_in_flight = False
        if self.settings.enabled:
            self._open()

    def _remember(self, healthy: bool) -> None:
        now = self._clock.now()
        self._outcomes.append((now, healthy))
        while self._outcomes and self._outcomes[0][0] < now - self.settings.window_s:
            self._outcomes.popleft()
        while self.settings.max_calls is not None and len(self._outcomes) > self.settings.max_calls:
            self._outcomes.popleft()

    def _window_is_failing(self) -> bool:
        calls = len(self._outcomes)
        failures = sum(1 for _, healthy in self._outcomes if not healthy)
        return calls >= self.settings.min_calls and failures / calls >= self.settings.failure_rate

    def _open(self) -> None:
        self._opened_at = self._clock.now()
        self._outcomes.clear()

    def _close(self) -> None:
        self._opened_at = None
        self._outcomes.clear()


@dataclass(frozen=True, slots=True)
class QualitySettings:
    enabled: bool = True
    # The last `window_verdicts` verdicts count, if no older than `window_s`: a short
    # window, so that a collapse shows at once, whatever passed before it.
    window_verdicts: int = 6
    window_s: float = 600.0
    # Open when at most this share of a full window passed: a collapse, not a dip.
    max_pass_rate: float = 0.2
    cooldown_s: float = 60.0

    def breaker(self) -> BreakerSettings:
        return BreakerSettings(enabled=self.enabled, window_s=self.window_s, min_calls=self.window_verdicts,
                               max_calls=self.window_verdicts, failure_rate=1.0 - self.max_pass_rate,
                               cooldown_s=self.cooldown_s, probe_lost_after_s=self.cooldown_s)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The scorer's word on one candidate: passed, or the dimensions that rejected it."""

    passed: bool
    failed: tuple[str, ...] = ()


class QualityBreaker:
    """A `CircuitBreaker` over verdicts, one per provider and template, that says why it opened."""

    def __init__(self, clock: Clock, settings: QualitySettings = QualitySettings()) -> None:
        self._clock = clock
        self._breaker = CircuitBreaker(clock, settings.breaker())
        self._window: deque[tuple[float, Verdict]] = deque()
        self.reason = ""

    @property
    def state(self) -> BreakerState:
        return self._breaker.state

    @property
    def verdicts(self) -> int:
        return len(self._window)

    @property
    def pass_rate(self) -> float | None:
        return sum(v.passed for _, v in self._window) / len(self._window) if self._window else None

    def is_available(self) -> bool:
        return self._breaker.is_available()

    def try_acquire(self) -> bool:
        """Permission for an attempt on this provider; half-open, only the probe gets it."""
        return self._breaker.try_acquire()

    def record(self, verdicts: Sequence[Verdict]) -> None:
        # While open, the window keeps the verdicts that opened it, for ListProviders.
        for verdict in verdicts:
            was_open = self._breaker.state is not BreakerState.CLOSED
            self._breaker.record(verdict.passed)
            now_open = self._breaker.state is not BreakerState.CLOSED
            if not was_open:
                self._remember(verdict)
            if now_open and not was_open:
                self.reason = self._why_open()
            elif was_open and not now_open:
                self._window.clear()
                self.reason = ""

    def _remember(self, verdict: Verdict) -> None:
        now = self._clock.now()
        self._window.append((now, verdict))
        settings = self._breaker.settings
        while self._window and (self._window[0][0] < now - settings.window_s or len(self._window) > settings.max_calls):
            self._window.popleft()

    def _why_open(self) -> str:
        passed = sum(v.passed for _, v in self._window)
        failures = Counter(name for _, v in self._window for name in v.failed)
        worst = ", ".join(f"{name} {count}" for name, count in failures.most_common(5))
        said = f"{passed} of {len(self._window)} recent candidates passed scoring"
        return f"{said}; failed most: {worst}" if worst else said


@dataclass(frozen=True, slots=True)
class AimdSettings:
    enabled: bool = True
    # The limit grows by `increase` after `limit` successes in a row, as TCP's window does.
    increase: float = 1.0
    decrease_factor: float = 0.5
    floor: int = 1
    # How long to leave a provider alone after a 429 that names no Retry-After.
    default_pause_s: float = 1.0


class AimdLimiter:
    """In-flight calls to one provider, under a limit that adapts to its 429s."""

    def __init__(self, clock: Clock, max_limit: int, settings: AimdSettings = AimdSettings()) -> None:
        self._clock = clock
        self.settings = settings
        self.max_limit = max_limit
        self.limit = float(max_limit)
        self.in_flight = 0
        self.paused_until = 0.0

    @property
    def current_limit(self) -> int:
        return max(self.settings.floor, math.floor(self.limit))

    def has_capacity(self) -> bool:
        return self.in_flight < self.current_limit and self._clock.now() >= self.paused_until

    def try_acquire(self) -> bool:
        if not self.has_capacity():
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def on_success(self) -> None:
        if self.settings.enabled:
            self.limit = min(float(self.max_limit), self.limit + self.settings.increase / max(self.limit, 1.0))

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        if not self.settings.enabled:
            return
        self.limit = max(float(self.settings.floor), self.limit * self.settings.decrease_factor)
        pause = retry_after_s if retry_after_s is not None else self.settings.default_pause_s
        self.paused_until = max(self.paused_until, self._clock.now() + pause)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    # Calls one chunk of candidates may make, over all providers of its chain.
    max_calls: int = 4
    # Extra calls to the same provider after a server error, before falling back.
    same_provider_retries: int = 1
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def backoff_s(self, retry_number: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base·2ⁿ)], but never sooner than Retry-After."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, retry_number))
        return max(rng.uniform(0, ceiling), retry_after_s or 0.0)


async def run_with_timeout(clock: Clock, call: Awaitable[T], timeout_s: float) -> T:
    """Await `call` until the clock says `timeout_s` has passed; then cancel it and raise TimeoutError."""
    task = asyncio.ensure_future(call)
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        timer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    # Let the call clean up (an adapter cancels its remote request) before we report.
    await asyncio.gather(task, return_exceptions=True)
    raise TimeoutError(f"no answer within {timeout_s:.1f} s")
