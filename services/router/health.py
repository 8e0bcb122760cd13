"""A provider's health: what keeps calls to it safe, what each call teaches, and its report.

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
* `ProviderRetries`: bounded calls per chunk, exponential backoff with full jitter.
* `run_with_timeout`: races a call against the injected clock, so timeouts hold on
  simulated time too.
* `ProviderHealth`: one provider's breaker and AIMD limit with its price and latency
  ratios (learnt against the registry's list figures); `learn_from_call` updates them
  after every call (its `CallAnswer`), and `status` reports all of it with the pass-rate
  estimates and the quality breakers, for ListProviders and the metrics.
"""

import asyncio
import math
from collections import Counter, deque
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from services.common.contracts import ProviderStatus, QualityStatus, VideoSpec
from services.router.clock import Clock
from services.router.planning import PassRateEstimator, RunningRatio, expected_latency_s
from services.router.providers.base import GeneratedImage, ProviderError
from services.router.providers.registry import ProviderConfig
from services.router.routing_types import (
    AimdSettings,
    BreakerSettings,
    QualitySettings,
    RouteRequest,
    RoutingPolicy,
)

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


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
class CandidateVerdict:
    """The scorer's word on one candidate: passed, or the dimensions that rejected it."""

    passed: bool
    failed: tuple[str, ...] = ()


class QualityBreaker:
    """A `CircuitBreaker` over verdicts, one per provider and template, that says why it opened."""

    def __init__(self, clock: Clock, settings: QualitySettings = QualitySettings()) -> None:
        self._clock = clock
        self._breaker = CircuitBreaker(clock, settings.breaker())
        self._window: deque[tuple[float, CandidateVerdict]] = deque()
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

    def record(self, verdicts: Sequence[CandidateVerdict]) -> None:
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

    def _remember(self, verdict: CandidateVerdict) -> None:
        now = self._clock.now()
        self._window.append((now, verdict))
        settings = self._breaker.settings
        while self._window and (self._window[0][0] < now - settings.window_s or (settings.max_calls is not None and len(self._window) > settings.max_calls)):
            self._window.popleft()

    def _why_open(self) -> str:
        passed = sum(v.passed for _, v in self._window)
        failures = Counter(name for _, v in self._window for name in v.failed)
        worst = ", ".join(f"{name} {count}" for name, count in failures.most_common(5))
        said = f"{passed} of {len(self._window)} recent candidates passed scoring"
        return f"{said}; failed most: {worst}" if worst else said


class AimdLimiter:
    """In-flight calls to one provider, under a limit that adapts to its 429s."""

    def __init__(self, clock: Clock, max_limit: int, *, settings: AimdSettings = AimdSettings()) -> None:
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


async def run_with_timeout(clock: Clock, call: Awaitable[T], *, timeout_s: float) -> T:
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


# Prices in status reports are for one image of this size.
REFERENCE_SIZE = (1024, 1024)
# A video provider's status quotes one clip of this shape.
REFERENCE_CLIP = VideoSpec(duration_s=5, aspect_ratio="16:9", resolution="720p")


@dataclass(kw_only=True)
class ProviderHealth:
    """What the router knows of one provider now: its breaker and concurrency limit decide
    whether it takes a call; its price and latency ratios and counts are learnt from calls."""

    breaker: CircuitBreaker
    limiter: AimdLimiter
    price: RunningRatio = field(default_factory=RunningRatio)
    latency: RunningRatio = field(default_factory=RunningRatio)
    calls: int = 0
    failures: int = 0

    def available(self) -> bool:
        return self.breaker.is_available() and self.limiter.has_capacity()

    def learn_from_call(self, config: ProviderConfig, request: RouteRequest, *, answer: "CallAnswer") -> None:
        self.calls += 1
        error = answer.error
        if error is not None:
            self.failures += 1
            if error.needs_an_operator:
                self.breaker.trip()  # a wrong key or an empty balance fails every call alike
            else:
                self.breaker.record(False if error.counts_against_health else None)
            if error.kind == "rate_limited":
                self.limiter.on_rate_limited(error.retry_after_s)
            return
        self.breaker.record(True)
        self.limiter.on_success()
        if images := answer.images:
            # Against list figures, so the ratios say how far the market is from the registry.
            one = config.clip_price_micro_usd(request.video) if request.video is not None else \
                config.list_price_micro_usd(request.width, request.height)
            list_price = one * len(images)
            self.price.update(sum(i.cost_micro_usd for i in images), list_price)
            self.latency.update(answer.latency_s, config.latency.batch_s(len(images)))

    def status(self, config: ProviderConfig, estimator: PassRateEstimator,
               *, quality: Mapping[tuple[str, str], QualityBreaker]) -> ProviderStatus:
        """The provider's status: this health, with what verdicts taught (pass rates, quality breakers)."""
        name = config.name
        return ProviderStatus(
            name=name, adapter=config.adapter, state=str(self.breaker.state), healthy=self.breaker.is_available(),
            price_micro_usd=round(reference_price_micro_usd(config) * self.price.value),
            pass_rates={t: estimator.mean(name, t) for t in estimator.templates_of(name)},
            prior_pass_rate=estimator.prior(name).mean, in_flight=self.limiter.in_flight,
            concurrency_limit=self.limiter.current_limit, max_concurrency=config.concurrency,
            latency_estimate_s=expected_latency_s(config, self.latency.value, count=1),
            calls=self.calls, failures=self.failures,
            quality={template: QualityStatus(state=str(q.state), reason=q.reason, pass_rate=q.pass_rate,
                                             verdicts=q.verdicts)
                     for (provider, template), q in quality.items() if provider == name},
        )


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """What one provider call came back with: the images of its indices, or its error, and how long it took."""

    images: list[GeneratedImage]
    error: ProviderError | None
    latency_s: float

    @property
    def cost_micro_usd(self) -> int:
        # A failed call may be billed all the same (its images expired, or were all refused).
        billed = self.error.billed_micro_usd if self.error is not None else 0
        return sum(i.cost_micro_usd for i in self.images) + billed


def new_health(config: ProviderConfig, clock: Clock, *, policy: RoutingPolicy) -> ProviderHealth:
    return ProviderHealth(breaker=CircuitBreaker(clock, policy.breaker),
                          limiter=AimdLimiter(clock, config.concurrency, settings=policy.aimd))


def reference_price_micro_usd(config: ProviderConfig) -> int:
    """What the provider lists for a 1024×1024 image, or for a 5 s 720p clip if it makes clips."""
    if config.makes_clips:
        return config.clip_price_micro_usd(REFERENCE_CLIP)
    return config.list_price_micro_usd(*REFERENCE_SIZE)
