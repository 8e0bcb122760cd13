"""The routing engine: one attempt of one job, from plan to generated candidates.

`RoutingEngine.route(request)`:

1. plan — capable providers (model pin, size, image input) are quoted (current price
   estimate, pass rate for the template, latency estimate, breaker state) and ranked by
   expected cost per passing image within the tier's latency target; N is the smallest
   count with P(at least K pass) ≥ the round's target, cut to what the cost cap allows;
2. generate — the N indices are cut into batches; each batch walks the provider chain:
   a provider whose breaker is open or whose concurrency is used up is passed over (so is
   one whose quality breaker for the template is open, unless every capable one's is), a
   call is bounded by a timeout, server errors are retried with jitter, anything else
   falls back to the next provider; a batch never spends beyond the cap; while its
   preferred providers are merely busy it waits for them (within the tier's latency
   target and the deadline) rather than spill to a much dearer one;
3. learn — every call updates its provider's breaker, AIMD limit, price and latency
   estimates; `observe_scores` feeds the scorer's verdicts into the pass-rate estimate,
   `observe_verdicts` into the quality breaker of the provider and template.

Each index is generated at most once per attempt: a batch is only retried, or moved to
another provider, for the indices no call has returned. The engine reads time only
through its `Clock`, so it runs unchanged on simulated time (`bench/routing.py`).
"""

import asyncio
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from services.common.contracts import ProviderStatus, QualityStatus, Tier
from services.router.clock import Clock, LoopClock
from services.router.providers.base import GeneratedImage, GenerationRequest, Provider, ProviderError
from services.router.providers.registry import ProviderConfig, Registry
from services.router.resilience import (AimdLimiter, AimdSettings, BreakerSettings, BreakerState,
                                        CapacityWaiters, CircuitBreaker, QualityBreaker, QualitySettings,
                                        RetryPolicy, Verdict, run_with_timeout)
from services.router.selection import (PassRateEstimator, ProviderQuote, RankBy, RunningRatio, candidates_needed,
                                       fixed_oversample, rank_providers, round_target)

# Prices in status reports are for one image of this size.
REFERENCE_SIZE = (1024, 1024)


class RoutingError(Exception):
    """Why an attempt produced nothing; `calls` are the provider calls it made on the way."""

    calls: tuple["CallRecord", ...] = ()
    spent_micro_usd: int = 0


class NoCapableProvider(RoutingError):
    pass


class CostCapReached(RoutingError):
    pass


class AllProvidersFailed(RoutingError):
    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message if not errors else f"{message}: {'; '.join(errors[-5:])}")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """How the engine decides. The defaults are Genline's; the benchmark turns parts off."""

    rank_by: RankBy = "cost_per_passing_image"
    oversampling: Literal["adaptive", "fixed"] = "adaptive"
    fixed_oversample_factor: float = 1.5
    learn_pass_rates: bool = True
    fallback: bool = True
    # While a batch's preferred providers are only busy, it waits for them rather than
    # spilling to a provider dearer than this many times the best, as long as the tier's
    # latency target and the deadline allow. None: spill at once.
    spill_tolerance: float | None = 1.25
    only_provider: str | None = None
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerSettings = BreakerSettings()
    quality: QualitySettings = QualitySettings()
    aimd: AimdSettings = AimdSettings()


@dataclass(frozen=True, slots=True)
class RouteRequest:
    job_id: str
    tenant_id: str
    tier: Tier
    template: str
    prompt: str
    seed: int
    images_needed: int
    width: int = 1024
    height: int = 1024
    attempt: int = 1
    # The first candidate index of this attempt, so a rework never reuses an index.
    start_index: int = 0
    model: str | None = None
    model_version: str | None = None
    needs_image_input: bool = False
    needs_seed_control: bool = False
    cost_cap_micro_usd: int | None = None
    time_left_s: float | None = None
    max_candidates: int | None = None
    # N chosen by the client: generate exactly this many (within the cost cap) instead of
    # sizing N from the pass-rate estimate.
    candidates: int | None = None
    # The stage this request is for (`pipeline` runs a template's stages through here), its
    # parameters, the provider it is pinned to, and the images it works on: per index, or
    # one for every index.
    capability: str = "generate"
    params: Mapping[str, object] = field(default_factory=dict)
    provider: str | None = None
    inputs: Mapping[int, bytes] = field(default_factory=dict)
    input: bytes | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    chain: tuple[ProviderQuote, ...]
    candidates: int
    success_target: float
    expected_cost_micro_usd: int
    expected_latency_s: float
    cost_cap_limited: bool
    # Capable providers left out because one image there costs more than the cap allows.
    priced_out: tuple[str, ...] = ()
    # Every capable provider's quality breaker is open for the template: quality cannot
    # tell them apart, so none is passed over for it.
    quality_waived: bool = False

    @property
    def primary(self) -> ProviderQuote:
        return self.chain[0]


@dataclass(frozen=True, slots=True)
class CallRecord:
    provider: str
    start_index: int
    count: int
    expected_cost_micro_usd: int
    actual_cost_micro_usd: int
    expected_latency_s: float
    latency_s: float
    outcome: str  # "ok" or a ProviderError kind
    error: str | None = None
    stage: str = "generate"
    stage_index: int = 0  # the stage's place in the template's pipeline


@dataclass(frozen=True, slots=True)
class StageStep:
    """What one stage did to one candidate: where it ran, what it cost, how long it took."""

    stage: str
    provider: str
    cost_micro_usd: int
    latency_s: float


@dataclass(frozen=True, slots=True)
class RoutedImage:
    provider: str
    image: GeneratedImage
    # Every stage the image went through, this one last (empty: generated, no pipeline).
    steps: tuple[StageStep, ...] = ()


@dataclass(frozen=True, slots=True)
class AttemptResult:
    job_id: str
    attempt: int
    planned_candidates: int
    success_target: float
    images: tuple[RoutedImage, ...]
    calls: tuple[CallRecord, ...]
    expected_cost_micro_usd: int
    actual_cost_micro_usd: int
    expected_latency_s: float
    latency_s: float
    cost_cap_reached: bool
    errors: tuple[str, ...]

    @property
    def providers_used(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(image.provider for image in self.images))

    @property
    def shortfall(self) -> int:
        return self.planned_candidates - len(self.images)


@dataclass
class _ProviderHealth:
    breaker: CircuitBreaker
    limiter: AimdLimiter
    price: RunningRatio = field(default_factory=RunningRatio)
    latency: RunningRatio = field(default_factory=RunningRatio)
    calls: int = 0
    failures: int = 0

    def available(self) -> bool:
        return self.breaker.is_available() and self.limiter.has_capacity()


class _CostBudget:
    """The attempt's remaining cap: spent so far plus what calls in flight are expected to cost."""

    def __init__(self, cap_micro_usd: int | None) -> None:
        self.cap = cap_micro_usd
        self.spent = 0
        self.reserved = 0
        self.refused = False

    def try_reserve(self, amount: int) -> bool:
        if self.cap is not None and self.spent + self.reserved + amount > self.cap:
            self.refused = True
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: int, actual: int) -> None:
        self.reserved -= reserved
        self.spent += actual


@dataclass
class _Batch:
    """The indices one chunk of the attempt still has to get, and what it has got so far."""

    pending: list[int]
    images: list[RoutedImage] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)


class RoutingEngine:
    def __init__(self, registry: Registry, providers: Mapping[str, Provider],
                 estimator: PassRateEstimator | None = None, clock: Clock | None = None,
                 policy: RoutingPolicy = RoutingPolicy(), rng: random.Random | None = None) -> None:
        missing = set(registry.providers) - set(providers)
        if missing:
            raise ValueError(f"no adapter given for providers: {', '.join(sorted(missing))}")
        self.registry = registry
        self.providers = dict(providers)
        self.clock = clock or LoopClock()
        self.policy = policy
        self.estimator = estimator or PassRateEstimator(
            {name: c.pass_rate_prior for name, c in registry.providers.items()}, clock=self.clock)
        self._rng = rng or random.Random()
        self._health = {name: self._new_health(config) for name, config in registry.providers.items()}
        self._quality: dict[tuple[str, str], QualityBreaker] = {}
        self._waiters = CapacityWaiters()

    # ---- the service's calls ------------------------------------------------------------

    async def route(self, request: RouteRequest) -> AttemptResult:
        started = self.clock.now()
        plan = self.plan(request)
        deadline = started + request.time_left_s if request.time_left_s is not None else None
        budget = _CostBudget(request.cost_cap_micro_usd)
        chunks = _split(range(request.start_index, request.start_index + plan.candidates), plan.primary.max_batch)
        batches = await asyncio.gather(*(self._generate(request, plan, _Batch(list(c)), budget, deadline)
                                         for c in chunks))
        return self._result(request, plan, batches, budget, started)

    def plan(self, request: RouteRequest) -> RoutePlan:
        """The provider chain and the number of candidates for this attempt (no calls made)."""
        if request.images_needed < 1:
            raise ValueError(f"images_needed must be at least 1, got {request.images_needed}")
        capable = self._capable(request)
        if not capable:
            raise NoCapableProvider(self._incapable_reason(request))
        collapsed = {c.name for c in capable if not self._quality_of(c.name, request.template).is_available()}
        waived = len(collapsed) == len(capable)
        quotes = [self._quote(config, request, waived or config.name not in collapsed) for config in capable]
        affordable = [q for q in quotes if _fits(request.cost_cap_micro_usd, q.price_micro_usd)]
        if not affordable:
            raise CostCapReached(f"job {request.job_id}: {request.cost_cap_micro_usd} µUSD left, "
                                 f"cheapest capable image costs {min(q.price_micro_usd for q in quotes)}")
        chain = rank_providers(affordable, self._tier(request).latency_target_s, self.policy.rank_by)
        if not chain:
            raise AllProvidersFailed(f"job {request.job_id}: every capable provider is open or saturated")
        chain = chain if self.policy.fallback else chain[:1]
        priced_out = tuple(q.provider for q in quotes if q not in affordable)
        return replace(self._sized_plan(request, tuple(chain), priced_out), quality_waived=waived)

    def cheapest_price_micro_usd(self, request: RouteRequest) -> int | None:
        """What one candidate costs at the cheapest capable provider now; None if none is capable."""
        prices = [self._quote(config, request).price_micro_usd for config in self._capable(request)]
        return min(prices) if prices else None

    def observe_scores(self, provider: str, template: str, passed: int, failed: int) -> None:
        """The scorer's verdicts on candidates from `provider` for `template`."""
        if self.policy.learn_pass_rates:
            self.estimator.observe(provider, template, passed, failed)

    def observe_verdicts(self, provider: str, template: str, verdicts: list[Verdict]) -> None:
        """The scorer's verdicts on candidates from `provider` for `template`, for its quality breaker."""
        if provider in self._health:
            self._quality_of(provider, template).record(verdicts)

    def provider_status(self) -> list[ProviderStatus]:
        return [self._status(name, config) for name, config in self.registry.providers.items()]

    def has_capacity(self) -> bool:
        """False when every usable provider is open, paused or at its limit: stop taking jobs."""
        return any(self._health[name].available() for name in self._usable())

    async def wait_for_capacity(self, timeout_s: float | None = None, providers: list[str] | None = None) -> bool:
        """Wait until one of `providers` (default: any usable) can take a call; False if `timeout_s` passed first."""
        names = providers if providers is not None else self._usable()
        deadline = self.clock.now() + timeout_s if timeout_s is not None else None
        woken = False
        while not any(self._health[name].available() for name in names):
            wait_s = self._next_capacity_check_s(names, deadline)
            if wait_s is not None and wait_s <= 0:
                return False
            woken = await self._sleep_until_offered(names, wait_s)
        if woken:
            # Pass the baton: if this waiter leaves a slot unused, the next one gets it.
            asyncio.get_running_loop().call_soon(self._offer_capacity, names)
        return True

    # ---- planning -----------------------------------------------------------------------

    def _usable(self) -> list[str]:
        only = self.policy.only_provider
        return [only] if only is not None else list(self._health)

    def _capable(self, request: RouteRequest) -> list[ProviderConfig]:
        configs = self.registry.providers.values()
        if self.policy.only_provider is not None:
            configs = [c for c in configs if c.name == self.policy.only_provider]
        if request.provider is not None:
            configs = [c for c in configs if c.name == request.provider]
        return [c for c in configs if _is_capable(c, request)]

    def _incapable_reason(self, request: RouteRequest) -> str:
        if request.capability != "generate":
            pinned = f" pinned to {request.provider}" if request.provider else ""
            return f"job {request.job_id}: no provider{pinned} runs the stage {request.capability}"
        pin = f"model {request.model} {request.model_version or '(any version)'}" if request.model else "default model"
        return (f"job {request.job_id}: no provider offers {pin} at {request.width}×{request.height}"
                f"{' with image input' if request.needs_image_input else ''}")

    def _quality_of(self, provider: str, template: str) -> QualityBreaker:
        key = (provider, template)
        if key not in self._quality:
            self._quality[key] = QualityBreaker(self.clock, self.policy.quality)
        return self._quality[key]

    def _quote(self, config: ProviderConfig, request: RouteRequest, quality_ok: bool = True) -> ProviderQuote:
        health = self._health[config.name]
        batch = min(request.images_needed, config.capabilities.max_images_per_request)
        breaker_ok = health.breaker.is_available() or not self.policy.breaker.enabled
        return ProviderQuote(
            provider=config.name,
            price_micro_usd=round(config.list_price_micro_usd(request.width, request.height) * health.price.value),
            pass_rate=self.estimator.mean(config.name, request.template),
            latency_s=self._expected_latency_s(config.name, batch),
            max_batch=config.capabilities.max_images_per_request,
            available=breaker_ok and quality_ok,
        )

    def _expected_latency_s(self, name: str, count: int) -> float:
        return self.registry.providers[name].latency.batch_s(count) * self._health[name].latency.value

    def _sized_plan(self, request: RouteRequest, chain: tuple[ProviderQuote, ...],
                    priced_out: tuple[str, ...]) -> RoutePlan:
        primary = chain[0]
        target = self._round_target(request, primary)
        wanted = self._candidates_for(request, primary.pass_rate, target)
        affordable = wanted if request.cost_cap_micro_usd is None else \
            request.cost_cap_micro_usd // max(primary.price_micro_usd, 1)
        candidates = max(1, min(wanted, affordable))
        return RoutePlan(chain=chain, candidates=candidates, success_target=target,
                         expected_cost_micro_usd=candidates * primary.price_micro_usd,
                         expected_latency_s=primary.latency_s, cost_cap_limited=candidates < wanted,
                         priced_out=priced_out)

    def _candidates_for(self, request: RouteRequest, pass_rate: float, target: float) -> int:
        limit = min(self.registry.planning.max_candidates, request.max_candidates or math.inf)
        if request.candidates is not None:
            wanted = request.candidates
        elif self.policy.oversampling == "fixed":
            wanted = fixed_oversample(request.images_needed, self.policy.fixed_oversample_factor)
        else:
            wanted = candidates_needed(request.images_needed, pass_rate, target, int(limit))
        return int(max(1, min(wanted, limit)))

    def _round_target(self, request: RouteRequest, primary: ProviderQuote) -> float:
        """The tier's target, spread over the rework rounds the deadline leaves time for."""
        target = self._tier(request).success_target
        planning = self.registry.planning
        if request.time_left_s is None:
            return target
        rounds = int(request.time_left_s // (primary.latency_s + planning.round_overhead_s))
        return round_target(target, min(max(rounds, 1), planning.max_rounds))

    def _tier(self, request: RouteRequest):
        return self.registry.tiers[request.tier]

    # ---- generating ---------------------------------------------------------------------

    async def _generate(self, request: RouteRequest, plan: RoutePlan, batch: _Batch, budget: _CostBudget,
                        deadline: float | None) -> _Batch:
        """Get the batch's indices from the chain, within the call budget and the deadline."""
        errors_seen = 0
        patient_until = self._patience_until(request, plan, deadline)
        while batch.pending and len(batch.calls) < self.policy.retry.max_calls and not _past(self.clock, deadline):
            patient = errors_seen == 0 and self.clock.now() < patient_until
            spill_limit = self._spill_limit(plan) if patient else math.inf
            called = await self._walk_chain(request, plan, batch, budget, deadline, spill_limit)
            if not batch.pending:
                break
            if not called:
                if budget.refused:
                    break
                preferred = [q for q in plan.chain if q.rank_key(self.policy.rank_by) <= spill_limit]
                freed = await self._wait_for_chain(plan, preferred, patient_until if patient else deadline)
                if not freed and not patient:
                    break
                if not freed:
                    patient_until = self.clock.now()  # the preferred ones stay busy: spill over
                continue
            errors_seen += 1
            await self.clock.sleep(self.policy.retry.backoff_s(errors_seen, self._rng))
        return batch

    def _patience_until(self, request: RouteRequest, plan: RoutePlan, deadline: float | None) -> float:
        """Until when a batch may wait for its preferred providers instead of spilling over."""
        if self.policy.spill_tolerance is None or not self.policy.fallback:
            return -math.inf
        until = self.clock.now() + self._tier(request).latency_target_s
        if deadline is None:
            return until
        # Leave time for the dearer provider's call and one more round after it.
        slowest = max(quote.latency_s for quote in plan.chain)
        return min(until, deadline - 2 * (slowest + self.registry.planning.round_overhead_s))

    def _spill_limit(self, plan: RoutePlan) -> float:
        return plan.primary.rank_key(self.policy.rank_by) * (self.policy.spill_tolerance or math.inf)

    async def _walk_chain(self, request: RouteRequest, plan: RoutePlan, batch: _Batch, budget: _CostBudget,
                          deadline: float | None, spill_limit: float = math.inf) -> bool:
        """One pass over the chain for the pending indices; whether any call was made.

        Providers dearer than `spill_limit` are only tried once a call in this pass failed.
        """
        called = failed = False
        for quote in plan.chain:
            if quote.rank_key(self.policy.rank_by) > spill_limit and not failed:
                continue
            if not (plan.quality_waived or self._quality_of(quote.provider, request.template).is_available()):
                # Opened, or another attempt holds its probe, since planning: as good as failed.
                failed = True
                continue
            retries = 0
            while batch.pending and len(batch.calls) < self.policy.retry.max_calls:
                error = await self._call(request, quote, batch, budget, deadline, plan.quality_waived)
                if error is _NOT_CALLED:
                    break
                called = True
                failed = failed or error is not None
                if error is None or not self._retry_same_provider(error, retries, deadline):
                    break
                retries += 1
                await self.clock.sleep(self.policy.retry.backoff_s(retries, self._rng, error.retry_after_s))
            if not batch.pending:
                break
        return called

    def _retry_same_provider(self, error: ProviderError, retries: int, deadline: float | None) -> bool:
        # Without fallback a provider is retried whatever the error; with it, only a
        # server error is worth a second try before moving on.
        retryable = error.kind != "bad_request" and (not self.policy.fallback or error.kind == "server_error")
        return retryable and retries < self.policy.retry.same_provider_retries and not _past(self.clock, deadline)

    async def _call(self, request: RouteRequest, quote: ProviderQuote, batch: _Batch, budget: _CostBudget,
                    deadline: float | None, quality_waived: bool = False) -> "ProviderError | None | _NotCalled":
        """One call for the batch's pending indices (as many as fit the provider's batch)."""
        health = self._health[quote.provider]
        indices = batch.pending[: quote.max_batch]
        expected_cost = quote.price_micro_usd * len(indices)
        expected_latency = self._expected_latency_s(quote.provider, len(indices))
        timeout_s = self._call_timeout_s(quote.provider, deadline)
        if timeout_s <= 0 or not budget.try_reserve(expected_cost):
            return _NOT_CALLED
        if not self._acquire(health):
            budget.settle(expected_cost, 0)
            return _NOT_CALLED
        if not quality_waived:
            # The half-open probe, if it is one: `_walk_chain` saw it free, with no await since.
            self._quality_of(quote.provider, request.template).try_acquire()
        started = self.clock.now()
        try:
            images, error = await self._generate_on(quote.provider, request, indices, timeout_s)
        except asyncio.CancelledError:
            health.breaker.record(None)
            raise
        finally:
            # Released even when the attempt itself is cancelled, so no slot leaks.
            self._release(quote.provider)
        latency = self.clock.now() - started
        images = [i for i in images if i.index in indices]
        actual_cost = sum(i.cost_micro_usd for i in images)
        budget.settle(expected_cost, actual_cost)
        self._learn(quote.provider, request, images, error, latency)
        batch.images.extend(RoutedImage(quote.provider, image) for image in images)
        returned = {image.index for image in images}
        batch.pending = [i for i in batch.pending if i not in returned]
        batch.calls.append(CallRecord(quote.provider, indices[0], len(indices), expected_cost, actual_cost,
                                      expected_latency, latency, error.kind if error else "ok",
                                      str(error) if error else None))
        if error is None and len(images) < len(indices):
            return ProviderError("server_error", f"{quote.provider} returned {len(images)} of {len(indices)} images")
        return error

    async def _generate_on(self, name: str, request: RouteRequest, indices: list[int],
                           timeout_s: float) -> tuple[list[GeneratedImage], ProviderError | None]:
        generation = GenerationRequest(
            job_id=request.job_id, attempt=request.attempt, prompt=request.prompt, seed=request.seed,
            count=len(indices), width=request.width, height=request.height, start_index=indices[0],
            model=self._model_of(name, request).name, model_version=self._model_of(name, request).version,
            timeout_s=timeout_s, capability=request.capability, params=request.params,
            inputs={i: request.inputs[i] for i in indices if i in request.inputs}, input=request.input,
        )
        try:
            return await run_with_timeout(self.clock, self.providers[name].generate(generation), timeout_s), None
        except TimeoutError:
            return [], ProviderError("timeout", f"{name} gave no answer within {timeout_s:.1f} s")
        except ProviderError as error:
            return [], error
        except Exception as error:  # noqa: BLE001 — a broken adapter must not take the router down
            return [], ProviderError("server_error", f"{name} adapter failed: {error!r}")

    def _model_of(self, name: str, request: RouteRequest):
        # Capability was checked at planning, so the pin is there.
        config = self.registry.providers[name]
        if request.capability != "generate":
            return config.models[0]  # a job's model pin is for its generation
        return config.model_for(request.model, request.model_version)

    def _call_timeout_s(self, name: str, deadline: float | None) -> float:
        timeout = self.registry.providers[name].timeouts.overall_s
        return timeout if deadline is None else min(timeout, deadline - self.clock.now())

    def _acquire(self, health: _ProviderHealth) -> bool:
        if not health.limiter.has_capacity():
            return False
        if self.policy.breaker.enabled and not health.breaker.try_acquire():
            return False
        return health.limiter.try_acquire()

    def _release(self, name: str) -> None:
        self._health[name].limiter.release()
        self._offer_capacity([name])

    def _learn(self, name: str, request: RouteRequest, images: list[GeneratedImage], error: ProviderError | None,
               latency_s: float) -> None:
        health, config = self._health[name], self.registry.providers[name]
        health.calls += 1
        if error is not None:
            health.failures += 1
            health.breaker.record(False if error.counts_against_health else None)
            if error.kind == "rate_limited":
                health.limiter.on_rate_limited(error.retry_after_s)
            return
        health.breaker.record(True)
        health.limiter.on_success()
        if images:
            # Against list figures, so the ratios say how far the market is from the registry.
            list_price = config.list_price_micro_usd(request.width, request.height) * len(images)
            health.price.update(sum(i.cost_micro_usd for i in images), list_price)
            health.latency.update(latency_s, config.latency.batch_s(len(images)))

    async def _wait_for_chain(self, plan: RoutePlan, quotes: list[ProviderQuote], until: float | None) -> bool:
        """Wait for one of `quotes` to free up, no later than `until`; whether one did."""
        # Without a limit, wait as long as one call to the primary may take.
        limit = (until - self.clock.now() if until is not None
                 else self.registry.providers[plan.primary.provider].timeouts.overall_s)
        names = [quote.provider for quote in quotes]
        return self._may_free_up_within(names, limit) and await self.wait_for_capacity(limit, names)

    def _may_free_up_within(self, names: list[str], limit_s: float) -> bool:
        """Whether a provider may take calls within `limit_s`: one is only busy, or its breaker half-opens."""
        if limit_s <= 0 or not names:
            return False
        breakers = [self._health[name].breaker for name in names]
        if not self.policy.breaker.enabled or any(b.state is not BreakerState.OPEN for b in breakers):
            return True
        return min(b.half_open_at for b in breakers) < self.clock.now() + limit_s

    def _next_capacity_check_s(self, names: list[str], deadline: float | None) -> float | None:
        """How long to sleep at most: until a pause or cooldown ends, or the deadline; None: until woken."""
        now = self.clock.now()
        healths = [self._health[name] for name in names]
        moments = [h.limiter.paused_until for h in healths if h.limiter.paused_until > now]
        moments += [h.breaker.half_open_at for h in healths if h.breaker.state is BreakerState.OPEN]
        if deadline is not None:
            moments.append(deadline)
        return min(moments) - now if moments else None

    async def _sleep_until_offered(self, names: list[str], limit_s: float | None) -> bool:
        """Sleep until a slot of `names` is offered (True) or `limit_s` passes (False)."""
        key, offered = self._waiters.add(names)
        try:
            if limit_s is None:
                await offered
            else:
                await run_with_timeout(self.clock, offered, limit_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(key, names)

    def _offer_capacity(self, names: list[str]) -> None:
        for name in names:
            health = self._health[name]
            if health.available():
                self._waiters.wake(name, health.limiter.current_limit - health.limiter.in_flight)

    # ---- reporting ----------------------------------------------------------------------

    def _result(self, request: RouteRequest, plan: RoutePlan, batches: list[_Batch], budget: _CostBudget,
                started: float) -> AttemptResult:
        calls = tuple(call for batch in batches for call in batch.calls)
        images = tuple(sorted((i for batch in batches for i in batch.images), key=lambda r: r.image.index))
        errors = tuple(call.error for call in calls if call.error)
        if not images:
            raise with_calls(self._nothing_generated(request, plan, budget, errors), calls, budget.spent)
        return AttemptResult(
            job_id=request.job_id, attempt=request.attempt, planned_candidates=plan.candidates,
            success_target=plan.success_target, images=images, calls=calls,
            expected_cost_micro_usd=sum(c.expected_cost_micro_usd for c in calls if c.outcome == "ok"),
            actual_cost_micro_usd=budget.spent, expected_latency_s=plan.expected_latency_s,
            latency_s=self.clock.now() - started, cost_cap_reached=plan.cost_cap_limited or budget.refused,
            errors=errors,
        )

    @staticmethod
    def _nothing_generated(request: RouteRequest, plan: RoutePlan, budget: _CostBudget,
                           errors: tuple[str, ...]) -> RoutingError:
        if budget.refused or plan.priced_out:
            tried = f" after {len(errors)} failed call(s): {errors[-1]}" if errors else ""
            return CostCapReached(f"job {request.job_id}: cost cap of {budget.cap} µUSD reached{tried}")
        return AllProvidersFailed(f"job {request.job_id}: no candidate generated", errors)

    def _status(self, name: str, config: ProviderConfig) -> ProviderStatus:
        health = self._health[name]
        return ProviderStatus(
            name=name, adapter=config.adapter, state=str(health.breaker.state), healthy=health.breaker.is_available(),
            price_micro_usd=round(config.list_price_micro_usd(*REFERENCE_SIZE) * health.price.value),
            pass_rates={t: self.estimator.mean(name, t) for t in self.estimator.templates_of(name)},
            prior_pass_rate=self.estimator.prior(name).mean, in_flight=health.limiter.in_flight,
            concurrency_limit=health.limiter.current_limit, max_concurrency=config.concurrency,
            latency_estimate_s=self._expected_latency_s(name, 1),
            calls=health.calls, failures=health.failures,
            quality={template: QualityStatus(state=str(q.state), reason=q.reason, pass_rate=q.pass_rate,
                                             verdicts=q.verdicts)
                     for (provider, template), q in self._quality.items() if provider == name},
        )

    def _new_health(self, config: ProviderConfig) -> _ProviderHealth:
        return _ProviderHealth(breaker=CircuitBreaker(self.clock, self.policy.breaker),
                               limiter=AimdLimiter(self.clock, config.concurrency, self.policy.aimd))


class _NotCalled:
    """No call was made: the provider was open, saturated, over budget or out of time."""


_NOT_CALLED = _NotCalled()


def _is_capable(config: ProviderConfig, request: RouteRequest) -> bool:
    capabilities = config.capabilities
    if not config.runs(request.capability):
        return False
    if request.capability != "generate":
        return True  # works on the image it is given, whatever its size
    return (config.model_for(request.model, request.model_version) is not None
            and capabilities.supports_size(request.width, request.height)
            and (capabilities.image_input or not request.needs_image_input)
            and (capabilities.seed_control or not request.needs_seed_control))


def with_calls(error: RoutingError, calls: tuple[CallRecord, ...], spent_micro_usd: int) -> RoutingError:
    error.calls, error.spent_micro_usd = calls, spent_micro_usd
    return error


def _fits(cap: int | None, amount: int) -> bool:
    return cap is None or amount <= cap


def _past(clock: Clock, deadline: float | None) -> bool:
    return deadline is not None and clock.now() >= deadline


def _split(indices: range, size: int) -> list[range]:
    return [indices[i: i + size] for i in range(0, len(indices), max(1, size))]
