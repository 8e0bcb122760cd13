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
another provider, for the indices no call has returned. Remote jobs the journal holds for
the attempt (a router died or stopped while they ran) are batches of their own, called on
their provider first, so that its adapter polls them instead of submitting again; only
the indices they do not cover are planned afresh. The engine reads time only through its
`Clock`, so it runs unchanged on simulated time (`bench/routing.py`).

Planning is `planning.py` (pure, over a snapshot of provider health); what a call reserves
(a provider slot, its share of the cost cap) and waiting for slots are `capacity.py`; what
calls teach about a provider is `health.py`; cutting an attempt into batches (resumed ones
first) and adding up their result is `batches.py`; this module runs the batches and their calls.
"""

import asyncio
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.contracts import ProviderStatus
from services.common.turns import Turn
from services.router import planning
from services.router.batches import AttemptChunk, AttemptRun, attempt_result, resumed_batches, split
from services.router.capacity import CostBudget, ProviderSlots
from services.router.clock import Clock, LoopClock
from services.router.health import (
    CallAnswer,
    CandidateVerdict,
    ProviderHealth,
    QualityBreaker,
    new_health,
    run_with_timeout,
)
from services.router.planning import PassRateEstimator, ProviderSnapshot, VerdictTally
from services.router.providers.base import CALL_TURN, GeneratedImage, GenerationRequest, Provider, ProviderError
from services.router.providers.entry_parts import ModelPin
from services.router.providers.journal import RemoteJobJournal
from services.router.providers.registry import ProviderConfig, Registry
from services.router.routing_types import (
    AttemptResult,
    CallRecord,
    ProviderQuote,
    RoutedImage,
    RoutePlan,
    RouteRequest,
    RoutingPolicy,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """One call about to be made: its provider and indices, what it should cost and take, its timeout, its model."""

    provider: str
    indices: list[int]
    expected_cost: int
    expected_latency_s: float
    timeout_s: float
    pin: ModelPin


class RoutingEngine:
    """Routes attempts over the registry's providers (an adapter for each), learning as it goes.

    `estimator` is the pass-rate estimate to start from (kept as `pass_rates`); by default
    the registry's priors, fading on the engine's clock.
    """

    def __init__(self, registry: Registry, providers: Mapping[str, Provider], *,
                 estimator: PassRateEstimator | None = None, clock: Clock | None = None,
                 policy: RoutingPolicy = RoutingPolicy(), rng: random.Random | None = None,
                 journal: RemoteJobJournal | None = None) -> None:
        missing = set(registry.providers) - set(providers)
        if missing:
            raise ValueError(f"no adapter given for providers: {', '.join(sorted(missing))}")
        self.registry = registry
        self.providers = dict(providers)
        self.clock: Clock = clock or LoopClock()
        self.policy = policy
        self.rng = rng or random.Random()
        self.journal = journal
        self.pass_rates = estimator or PassRateEstimator(priors=registry.pass_rate_priors(), clock=self.clock)
        self._health: dict[str, ProviderHealth] = {name: new_health(config, self.clock, policy=policy)
                                                   for name, config in registry.providers.items()}
        self._quality: dict[tuple[str, str], QualityBreaker] = {}
        self._slots = ProviderSlots(self._health, self.clock, breaker_enabled=policy.breaker.enabled)

    # ---- the service's calls ------------------------------------------------------------

    async def route(self, request: RouteRequest) -> AttemptResult:
        started = self.clock.now()
        plan = self.plan(request)
        if request.keep is not None:
            request.keep.planned(plan.candidates)
        deadline = started + request.time_left_s if request.time_left_s is not None else None
        run = AttemptRun(request=request, plan=plan, budget=CostBudget(request.cost_cap_micro_usd), deadline=deadline)
        resumed = await resumed_batches(self.journal, request, providers=self.providers)
        taken = {index for batch in resumed for index in batch.pending}
        fresh = [i for i in range(request.start_index, request.start_index + plan.candidates) if i not in taken]
        batches = resumed + [AttemptChunk(pending=chunk) for chunk in split(fresh, plan.primary.max_batch)]
        batches = await asyncio.gather(*(self._generate(run, batch) for batch in batches))
        return attempt_result(run, batches, latency_s=self.clock.now() - started)

    def plan(self, request: RouteRequest) -> RoutePlan:
        """The provider chain and the number of candidates for this attempt (no calls made)."""
        planning.check_request(request)
        capable = self._capable(request)
        planner = planning.Planner(self.registry, self.policy)
        return planner.plan_attempt(request, capable, snapshot=self._snapshot(capable, request.template))

    def cheapest_price_micro_usd(self, request: RouteRequest) -> int | None:
        """What one candidate costs at the cheapest capable provider now; None if none is capable."""
        prices = [planning.price_micro_usd(config, request, price_ratio=self._health[config.name].price.value)
                  for config in self._capable(request)]
        return min(prices) if prices else None

    def observe_scores(self, tally: VerdictTally) -> None:
        """The scorer's verdicts on candidates from a provider for a template."""
        if self.policy.learn_pass_rates:
            self.pass_rates.observe(tally)

    def observe_verdicts(self, provider: str, template: str, *, verdicts: list[CandidateVerdict]) -> None:
        """The scorer's verdicts on candidates from `provider` for `template`, for its quality breaker."""
        if provider in self._health:
            self._quality_of(provider, template).record(verdicts)

    def provider_status(self) -> list[ProviderStatus]:
        return [self._health[name].status(config, self.pass_rates, quality=self._quality)
                for name, config in self.registry.providers.items()]

    def has_capacity(self) -> bool:
        """False when every usable provider is open, paused or at its limit: stop taking jobs."""
        return self._slots.any_available(self._usable())

    async def wait_for_capacity(self, timeout_s: float | None = None, providers: list[str] | None = None) -> bool:
        """Wait until one of `providers` (default: any usable) can take a call; False if `timeout_s` passed first."""
        # No call follows from here: a slot handed over while waiting goes on to the next waiter.
        freed = await self._slots.wait(providers if providers is not None else self._usable(), timeout_s, turn=Turn(tenant=""))
        self._slots.return_unused()
        return freed

    # ---- what planning reads --------------------------------------------------------------

    def _usable(self) -> list[str]:
        only = self.policy.only_provider
        # A provider that only trains (no stage) makes no candidates: its room is no room for attempts.
        return [only] if only is not None else [name for name in self._health
                                                if self.registry.providers[name].capabilities.stages]

    def _capable(self, request: RouteRequest) -> list[ProviderConfig]:
        return planning.capable_providers(self.registry.providers.values(), self.policy, request=request)

    def _snapshot(self, capable: list[ProviderConfig], template: str) -> dict[str, ProviderSnapshot]:
        return {config.name: self._snapshot_of(config.name, template) for config in capable}

    def _snapshot_of(self, name: str, template: str) -> ProviderSnapshot:
        health = self._health[name]
        return ProviderSnapshot(breaker_available=health.breaker.is_available(),
                                quality_available=self._quality_of(name, template).is_available(),
                                price_ratio=health.price.value, latency_ratio=health.latency.value,
                                pass_rate=self.pass_rates.mean(name, template))

    def _quality_of(self, provider: str, template: str) -> QualityBreaker:
        key = (provider, template)
        if key not in self._quality:
            self._quality[key] = QualityBreaker(self.clock, self.policy.quality)
        return self._quality[key]

    def _expected_latency_s(self, name: str, count: int) -> float:
        return planning.expected_latency_s(self.registry.providers[name], self._health[name].latency.value, count=count)

    # ---- generating ---------------------------------------------------------------------

    async def _generate(self, run: AttemptRun, batch: AttemptChunk) -> AttemptChunk:
        """Get the batch's indices from the chain, within the call budget and the deadline."""
        plan, deadline = run.plan, run.deadline
        errors_seen = 0
        patient_until = self._patience_until(run)
        resume = next((q for q in plan.chain if q.provider == batch.resume_on), None)
        if resume is not None:
            # Its adapter finds the job in the journal and polls it: it is not submitted again.
            await self._call(run, resume, batch=batch)
        while batch.pending and len(batch.calls) < self.policy.retry.max_calls and not _past(self.clock, deadline):
            patient = errors_seen == 0 and self.clock.now() < patient_until
            spill_limit = self._spill_limit(plan) if patient else math.inf
            called = await self._walk_chain(run, batch, spill_limit=spill_limit)
            self._slots.return_unused()
            if not batch.pending:
                break
            if not called:
                if run.budget.refused:
                    break
                preferred = [q for q in plan.chain if q.rank_key(self.policy.rank_by) <= spill_limit]
                freed = await self._wait_for_chain(run.turn(batch), preferred, until=patient_until if patient else deadline)
                if not freed and not patient:
                    break
                if not freed:
                    patient_until = self.clock.now()  # the preferred ones stay busy: spill over
                continue
            errors_seen += 1
            await self.clock.sleep(self.policy.retry.backoff_s(errors_seen, self.rng))
        return batch

    def _patience_until(self, run: AttemptRun) -> float:
        """Until when a batch may wait for its preferred providers instead of spilling over."""
        if self.policy.spill_tolerance is None or not self.policy.fallback:
            return -math.inf
        until = self.clock.now() + planning.tier_of(self.registry, run.request).latency_target_s
        if run.deadline is None:
            return until
        # Leave time for the dearer provider's call and one more round after it.
        slowest = max(quote.latency_s for quote in run.plan.chain)
        return min(until, run.deadline - 2 * (slowest + self.registry.planning.round_overhead_s))

    def _spill_limit(self, plan: RoutePlan) -> float:
        return plan.primary.rank_key(self.policy.rank_by) * (self.policy.spill_tolerance or math.inf)

    async def _walk_chain(self, run: AttemptRun, batch: AttemptChunk, *, spill_limit: float = math.inf) -> bool:
        """One pass over the chain for the pending indices; whether any call was made.

        Providers dearer than `spill_limit` are only tried once a call in this pass failed.
        """
        called = failed = False
        for quote in run.plan.chain:
            if quote.rank_key(self.policy.rank_by) > spill_limit and not failed:
                continue
            if not (run.plan.quality_waived
                    or self._quality_of(quote.provider, run.request.template).is_available()):
                # Opened, or another attempt holds its probe, since planning: as good as failed.
                failed = True
                continue
            retries = 0
            while batch.pending and len(batch.calls) < self.policy.retry.max_calls:
                error = await self._call(run, quote, batch=batch)
                if isinstance(error, _NotCalled):
                    break
                called = True
                failed = failed or error is not None
                if error is None or not self._retry_same_provider(error, retries, deadline=run.deadline):
                    break
                retries += 1
                await self.clock.sleep(self.policy.retry.backoff_s(retries, self.rng, retry_after_s=error.retry_after_s))
            if not batch.pending:
                break
        return called

    def _retry_same_provider(self, error: ProviderError, retries: int, *, deadline: float | None) -> bool:
        # Without fallback a provider is retried whatever the error; with it, only a
        # server error is worth a second try before moving on.
        retryable = error.kind != "bad_request" and (not self.policy.fallback or error.kind == "server_error")
        return retryable and retries < self.policy.retry.same_provider_retries and not _past(self.clock, deadline)

    async def _wait_for_chain(self, turn: Turn, quotes: list[ProviderQuote], *, until: float | None) -> bool:
        """Wait in `turn` for one of `quotes` to free up, no later than `until`; whether one did."""
        if not quotes:
            return False
        # Without a limit, wait as long as one call to the first (the primary) may take.
        limit = (until - self.clock.now() if until is not None
                 else self.registry.providers[quotes[0].provider].timeouts.overall_s)
        names = [quote.provider for quote in quotes]
        return self._slots.may_free_up_within(names, limit) and await self._slots.wait(names, limit, turn=turn)

    # ---- one call -----------------------------------------------------------------------

    async def _call(self, run: AttemptRun, quote: ProviderQuote, *, batch: AttemptChunk) -> "ProviderError | None | _NotCalled":
        """One call for the batch's pending indices (as many as fit the provider's batch)."""
        request = run.request
        call = self._prepare_call(run, quote, batch=batch)
        if not self._reserve_cost_and_slot(call, run.budget):
            return _NOT_CALLED
        if not run.plan.quality_waived:
            # The half-open probe, if it is one: `_walk_chain` saw it free, with no await since.
            self._quality_of(quote.provider, request.template).try_acquire()
        turn = CALL_TURN.set(run.turn(batch))
        try:
            answer = await self._make_call(call, request)
        finally:
            CALL_TURN.reset(turn)
        run.budget.settle(call.expected_cost, answer.cost_micro_usd)
        self._health[call.provider].learn_from_call(self.registry.providers[call.provider], request, answer=answer)
        routed = [RoutedImage(provider=call.provider, image=image, model=call.pin.name, model_version=call.pin.version,
                              style=request.styles.style_of(image.index).name if request.styles else None)
                  for image in answer.images]
        if request.keep is not None and routed:
            routed = await request.keep.keep(request.capability, routed)
        batch.add(_call_record(call, answer), routed)
        if answer.error is None and len(routed) < len(call.indices):
            returned = f"{len(routed)} of {len(call.indices)} images"
            return ProviderError(kind="server_error", message=f"{call.provider} returned {returned}")
        return answer.error

    def _prepare_call(self, run: AttemptRun, quote: ProviderQuote, *, batch: AttemptChunk) -> _Call:
        indices = batch.pending[: quote.max_batch]
        return _Call(provider=quote.provider, indices=indices, expected_cost=quote.price_micro_usd * len(indices),
                     expected_latency_s=self._expected_latency_s(quote.provider, len(indices)),
                     timeout_s=self._call_timeout_s(quote.provider, run.deadline),
                     pin=self._model_of(quote.provider, run.request))

    def _reserve_cost_and_slot(self, call: _Call, budget: CostBudget) -> bool:
        """Reserve the call's expected cost, then a slot at its provider; neither is kept unless both are."""
        if call.timeout_s <= 0 or not budget.try_reserve(call.expected_cost):
            return False
        if not self._slots.try_acquire(call.provider):
            budget.settle(call.expected_cost, 0)
            return False
        return True

    async def _make_call(self, call: _Call, request: RouteRequest) -> CallAnswer:
        """The provider's images of the call's indices or its error, and how long it took; its slot
        is given back whatever happens."""
        started = self.clock.now()
        try:
            images, error = await self._generate_on(call, request)
        except asyncio.CancelledError:
            self._health[call.provider].breaker.record(None)
            raise
        finally:
            # Released even when the attempt itself is cancelled, so no slot leaks.
            self._slots.release(call.provider)
        return CallAnswer([i for i in images if i.index in call.indices], error, self.clock.now() - started)

    async def _generate_on(self, call: _Call, request: RouteRequest
                           ) -> tuple[list[GeneratedImage], ProviderError | None]:
        name, indices, timeout_s = call.provider, call.indices, call.timeout_s
        generation = GenerationRequest(
            job_id=request.job_id, attempt=request.attempt, prompt=request.prompt, seed=request.seed,
            count=len(indices), width=request.width, height=request.height, start_index=indices[0],
            model=call.pin.name, model_version=call.pin.version,
            timeout_s=timeout_s, capability=request.capability, params=request.params,
            inputs={i: request.inputs[i] for i in indices if i in request.inputs}, input=request.input,
            video=request.video, styles=request.styles.styles_for(indices) if request.styles else {},
            identity=request.identity if request.capability == "generate" else None,
        )
        try:
            return await run_with_timeout(self.clock, self.providers[name].generate(generation), timeout_s=timeout_s), None
        except TimeoutError:
            return [], ProviderError(kind="timeout", message=f"{name} gave no answer within {timeout_s:.1f} s")
        except ProviderError as error:
            return [], error
        except Exception as error:  # noqa: BLE001 — a broken adapter must not take the router down
            return [], ProviderError(kind="server_error", message=f"{name} adapter failed: {error!r}")

    def _model_of(self, name: str, request: RouteRequest) -> ModelPin:
        # Capability was checked at planning, so the pin is there.
        config = self.registry.providers[name]
        if request.capability != "generate" or (request.video is not None and request.model is None):
            return config.models[0]  # a job's model pin is for its generation
        pin = config.model_for(request.model, request.model_version)
        assert pin is not None, f"{name} was planned for a model it does not offer"
        return pin

    def _call_timeout_s(self, name: str, deadline: float | None) -> float:
        timeout = self.registry.providers[name].timeouts.overall_s
        return timeout if deadline is None else min(timeout, deadline - self.clock.now())


def _call_record(call: _Call, answer: CallAnswer) -> CallRecord:
    error = answer.error
    return CallRecord(provider=call.provider, start_index=call.indices[0], count=len(call.indices), expected_cost_micro_usd=call.expected_cost, actual_cost_micro_usd=answer.cost_micro_usd,
                      expected_latency_s=call.expected_latency_s, latency_s=answer.latency_s, outcome=error.kind if error else "ok",
                      error=str(error) if error else None)


class _NotCalled:
    """No call was made: the provider was open, saturated, over budget or out of time."""


_NOT_CALLED = _NotCalled()


def _past(clock: Clock, deadline: float | None) -> bool:
    return deadline is not None and clock.now() >= deadline
