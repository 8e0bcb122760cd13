"""Planning one attempt, without I/O: which providers, in what order, and how many candidates.

Capable providers (model pin, size, image input, the stage) are quoted from a snapshot of
their health taken when the attempt starts (breaker, quality breaker for the template,
learnt price and latency ratios, pass-rate estimate) and ranked by expected cost per
passing image within the tier's latency target. N is the smallest count with P(at least K
pass) ≥ the round's target, cut to what the cost cap allows. The same snapshot and request
always give the same plan. The pieces:

* `PassRateEstimator`: a Beta posterior per (provider, template), from the provider's
  prior and the scorer's verdicts. Old evidence fades (a half-life on the clock), so a
  provider that had a bad afternoon is tried again later instead of being shunned forever.
* `candidates_needed`: the smallest N with P(at least K of N pass) ≥ target under
  Binomial(N, p) — the adaptive oversampling.
* `round_target`: when the deadline leaves time for r rounds of rework, each round needs
  to succeed only with 1 − (1 − target)^(1/r) for the job to succeed with `target`.
* `clips_expected_to_pass`: a clip job's rework, with another round after it (within
  `max_rounds` and the deadline), asks the clips its pass rate expects to bring the missing
  ones (missing ÷ rate, rounded), not enough to succeed in one round: a clip costs tens of
  cents to dollars. The last round aims for the tier's target.
* `rank_providers`: providers ordered by expected cost per passing image (price ÷ pass
  rate), those within the tier's latency target first.
* `Planner.plan_attempt`: all of it over one snapshot of the providers' health.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from services.router.clock import Clock, LoopClock
from services.router.providers.entry_parts import PassRatePrior
from services.router.providers.registry import ProviderConfig, Registry, TierConfig
from services.router.routing_types import (
    AllProvidersFailed,
    CostCapReached,
    NoCapableProvider,
    ProviderQuote,
    RankBy,
    RoutePlan,
    RouteRequest,
    RoutingPolicy,
)


def probability_at_least(k: int, n: int, *, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed exactly."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


@dataclass(frozen=True, slots=True)
class Need:
    """At least `images` passing candidates, with probability `target`, from at most `max_candidates`."""

    images: int
    target: float = 0.95
    max_candidates: int = 64


def candidates_needed(need: Need, p: float) -> int:
    """The smallest N ≥ k with P(at least k of N pass) ≥ target; the most allowed if none is enough."""
    k, target, max_n = need.images, need.target, need.max_candidates
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0 <= p <= 1 or not 0 < target < 1:
        raise ValueError(f"need 0 ≤ p ≤ 1 and 0 < target < 1, got p={p}, target={target}")
    if p == 0:
        return max(k, max_n)
    for n in range(k, max(k, max_n) + 1):
        if probability_at_least(k, n, p=p) >= target:
            return n
    return max(k, max_n)


def fixed_oversample(k: int, factor: float) -> int:
    """The platform's static rule (ingest's default): ceil(factor × K), at least K + 1."""
    return max(k + 1, math.ceil(k * factor))


def round_target(target: float, rounds: int) -> float:
    """Per-round success probability that gives `target` over `rounds` independent rounds."""
    per_round: float = 1 - (1 - target) ** (1 / max(1, rounds))
    return per_round


# A template's pass rates for an order of a subject are kept apart per way of carrying it: the
# identity is among what must pass, and a model passes it more often with a LoRA than by reference.
IDENTITY_MARK = "+identity:"


def identity_key(template: str, mode: str) -> str:
    """The key a subject order's verdicts and pass rates are kept under: `headshots+identity:lora`."""
    return f"{template}{IDENTITY_MARK}{mode}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictTally:
    """The scorer's verdicts on a provider's candidates for a template: how many passed and failed
    (fractions once faded)."""

    provider: str
    template: str
    passed: float
    failed: float


@dataclass(eq=False, kw_only=True)
class PassRateEstimator:
    """Beta(α, β) per (provider, template): the prior plus scored outcomes, fading with time."""

    priors: dict[str, PassRatePrior] = field(default_factory=dict)
    default_prior: PassRatePrior = field(default_factory=PassRatePrior)
    half_life_s: float | None = 6 * 3600
    clock: Clock = field(default_factory=LoopClock)
    # (provider, template) → (passed, failed, when last updated)
    _evidence: dict[tuple[str, str], tuple[float, float, float]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.priors = dict(self.priors)

    def observe(self, tally: VerdictTally) -> None:
        _check(tally)
        old_passed, old_failed = self._faded(tally.provider, tally.template)
        self._evidence[(tally.provider, tally.template)] = (
            old_passed + tally.passed, old_failed + tally.failed, self.clock.now())

    def set_evidence(self, tally: VerdictTally, age_s: float = 0.0) -> None:
        """Replace the evidence with counts kept elsewhere (faded as of `age_s` seconds ago)."""
        _check(tally)
        self._evidence[(tally.provider, tally.template)] = (tally.passed, tally.failed,
                                                            self.clock.now() - max(0.0, age_s))

    def mean(self, provider: str, template: str) -> float:
        alpha, beta = self._posterior(provider, template)
        return alpha / (alpha + beta)

    def templates_of(self, provider: str) -> list[str]:
        return sorted(template for name, template in self._evidence if name == provider)

    def prior(self, provider: str, template: str = "") -> PassRatePrior:
        """The provider's prior; for a template keyed by an identity (`identity_key`), its prior
        for that way of carrying a subject where it declares one."""
        _, marked, way = template.partition(IDENTITY_MARK)
        own = self.priors.get(f"{provider}{IDENTITY_MARK}{way}") if marked else None
        return own or self.priors.get(provider, self.default_prior)

    def _posterior(self, provider: str, template: str) -> tuple[float, float]:
        prior = self.prior(provider, template)
        passed, failed = self._faded(provider, template)
        return prior.mean * prior.strength + passed, (1 - prior.mean) * prior.strength + failed

    def _faded(self, provider: str, template: str) -> tuple[float, float]:
        passed, failed, when = self._evidence.get((provider, template), (0.0, 0.0, 0.0))
        if self.half_life_s is None or (passed == 0 and failed == 0):
            return passed, failed
        weight = 0.5 ** (max(0.0, self.clock.now() - when) / self.half_life_s)
        return passed * weight, failed * weight


def _check(tally: VerdictTally) -> None:
    if tally.passed < 0 or tally.failed < 0:
        raise ValueError(f"counts must not be negative, got passed={tally.passed}, failed={tally.failed}")


class RunningRatio:
    """An exponentially weighted mean of actual ÷ expected, starting at 1 (the list figure)."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.value = 1.0

    def update(self, actual: float, expected: float) -> None:
        if expected > 0:
            self.value += self.weight * (actual / expected - self.value)


def rank_providers(quotes: list[ProviderQuote], latency_target_s: float,
                   *, rank_by: RankBy = "cost_per_passing_image") -> list[ProviderQuote]:
    """Available providers: within the latency target by cost, then the rest by latency."""
    available = [q for q in quotes if q.available]
    within = sorted((q for q in available if q.latency_s <= latency_target_s),
                    key=lambda q: (q.rank_key(rank_by), q.latency_s, q.provider))
    beyond = sorted((q for q in available if q.latency_s > latency_target_s),
                    key=lambda q: (q.latency_s, q.rank_key(rank_by), q.provider))
    return within + beyond


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSnapshot:
    """One capable provider's health as planning reads it, for the request's template."""

    breaker_available: bool
    quality_available: bool
    price_ratio: float
    latency_ratio: float
    pass_rate: float


def check_request(request: RouteRequest) -> None:
    if request.images_needed < 1:
        raise ValueError(f"images_needed must be at least 1, got {request.images_needed}")


def capable_providers(configs: Iterable[ProviderConfig], policy: RoutingPolicy,
                      *, request: RouteRequest) -> list[ProviderConfig]:
    if policy.only_provider is not None:
        configs = [c for c in configs if c.name == policy.only_provider]
    if request.provider is not None:
        configs = [c for c in configs if c.name == request.provider]
    return [c for c in configs if is_capable(c, request)]


def is_capable(config: ProviderConfig, request: RouteRequest) -> bool:
    capabilities = config.capabilities
    if request.video is not None or config.makes_clips:
        return request.video is not None and config.makes_clips and _makes_the_clip(config, request)
    if not config.runs(request.capability):
        return False
    if request.capability != "generate":
        return True  # works on the image it is given, whatever its size
    pin = config.model_for(request.model, request.model_version)
    return (pin is not None
            and config.can_make(pin, request.width, height=request.height)
            and (config.carries(pin, request.identity) if request.identity is not None
                 else not capabilities.subjects_only)
            and (capabilities.image_input or not request.needs_image_input)
            and (capabilities.seed_control or not request.needs_seed_control))


def _makes_the_clip(config: ProviderConfig, request: RouteRequest) -> bool:
    """A video provider makes the clip: from text on generate (with the job's model pin, if any),
    from the candidate's still on any later stage."""
    assert request.video is not None
    from_image = request.clip_source == "image"
    pin = config.model_for(request.model, request.model_version) if not from_image else config.models[0]
    return pin is not None and config.can_make_clip(pin, request.video, from_image=from_image)


def incapable_reason(request: RouteRequest) -> str:
    if request.video is not None:
        spec = request.video
        return (f"job {request.job_id}: no video provider makes a {spec.duration_s:g} s {spec.resolution}"
                f" {spec.aspect_ratio} clip from {request.clip_source}")
    if request.capability != "generate":
        pinned = f" pinned to {request.provider}" if request.provider else ""
        return f"job {request.job_id}: no provider{pinned} runs the stage {request.capability}"
    pin = f"model {request.model} {request.model_version or '(any version)'}" if request.model else "default model"
    carrying = f" carrying the subject by {request.identity.mode}" if request.identity is not None else ""
    return (f"job {request.job_id}: no provider offers {pin} at {request.width}×{request.height}"
            f"{' with image input' if request.needs_image_input else ''}{carrying}")


def price_micro_usd(config: ProviderConfig, request: RouteRequest, *, price_ratio: float) -> int:
    """One image of the request's size (or one clip of its shape) at the provider's list price,
    corrected by what calls cost."""
    if request.video is not None:
        return round(config.clip_price_micro_usd(request.video) * price_ratio)
    return round(config.list_price_micro_usd(request.width, request.height) * price_ratio)


def expected_latency_s(config: ProviderConfig, latency_ratio: float, *, count: int) -> float:
    return config.latency.batch_s(count) * latency_ratio


@dataclass(frozen=True, slots=True)
class Ranking:
    """The providers an attempt may call, best first; those the cap prices out; whether every
    capable provider's quality breaker is open, so quality passes none over."""

    chain: tuple[ProviderQuote, ...]
    priced_out: tuple[str, ...] = ()
    quality_waived: bool = False


@dataclass(frozen=True, slots=True)
class Planner:
    """Plans attempts by the registry's tiers and planning settings, as the policy says."""

    registry: Registry
    policy: RoutingPolicy

    def plan_attempt(self, request: RouteRequest, capable: list[ProviderConfig],
                     *, snapshot: Mapping[str, ProviderSnapshot]) -> RoutePlan:
        """The provider chain and the number of candidates for this attempt (no calls made)."""
        if not capable:
            raise NoCapableProvider(incapable_reason(request))
        waived = not any(snapshot[c.name].quality_available for c in capable)
        # Waived: quality cannot tell the providers apart, so it passes none over.
        quotes = [self.quote(config, request, health=replace(snapshot[config.name], quality_available=True)
                             if waived else snapshot[config.name]) for config in capable]
        affordable = [q for q in quotes if fits(request.cost_cap_micro_usd, q.price_micro_usd)]
        if not affordable:
            raise CostCapReached(f"job {request.job_id}: {request.cost_cap_micro_usd} µUSD left, "
                                 f"cheapest capable image costs {min(q.price_micro_usd for q in quotes)}")
        chain = rank_providers(affordable, tier_of(self.registry, request).latency_target_s, rank_by=self.policy.rank_by)
        if not chain:
            raise AllProvidersFailed(f"job {request.job_id}: every capable provider is open or saturated")
        chain = chain if self.policy.fallback else chain[:1]
        priced_out = tuple(q.provider for q in quotes if q not in affordable)
        return self.sized_plan(request, Ranking(tuple(chain), priced_out, quality_waived=waived))

    def quote(self, config: ProviderConfig, request: RouteRequest, *, health: ProviderSnapshot) -> ProviderQuote:
        batch = min(request.images_needed, config.max_batch)
        breaker_ok = health.breaker_available or not self.policy.breaker.enabled
        return ProviderQuote(
            provider=config.name,
            price_micro_usd=price_micro_usd(config, request, price_ratio=health.price_ratio),
            pass_rate=health.pass_rate,
            latency_s=expected_latency_s(config, health.latency_ratio, count=batch),
            max_batch=config.max_batch,
            available=breaker_ok and health.quality_available,
        )

    def sized_plan(self, request: RouteRequest, ranking: Ranking) -> RoutePlan:
        primary = ranking.chain[0]
        target = self._round_target(request, primary)
        wanted = self._candidates_for(request, primary.pass_rate, target=target)
        affordable = wanted if request.cost_cap_micro_usd is None else \
            request.cost_cap_micro_usd // max(primary.price_micro_usd, 1)
        candidates = max(1, min(wanted, affordable))
        return RoutePlan(chain=ranking.chain, candidates=candidates, success_target=target,
                         expected_cost_micro_usd=candidates * primary.price_micro_usd,
                         expected_latency_s=primary.latency_s, cost_cap_limited=candidates < wanted,
                         priced_out=ranking.priced_out, quality_waived=ranking.quality_waived)

    def _candidates_for(self, request: RouteRequest, pass_rate: float, *, target: float) -> int:
        limit = min(self.registry.planning.max_candidates, request.max_candidates or math.inf)
        if request.candidates is not None:
            wanted = request.candidates
        elif self._clip_retake(request, target):
            wanted = clips_expected_to_pass(request.images_needed, pass_rate)
        elif self.policy.oversampling == "fixed":
            wanted = fixed_oversample(request.images_needed, self.policy.fixed_oversample_factor)
        else:
            wanted = candidates_needed(Need(request.images_needed, target, int(limit)), pass_rate)
        return int(max(1, min(wanted, limit)))

    def _clip_retake(self, request: RouteRequest, target: float) -> bool:
        """A clip job's rework with a round left after it: within the rounds planning counts
        on, and, with a deadline, one that leaves time for more (its round target is below the
        tier's)."""
        if request.video is None or not 1 < request.attempt < self.registry.planning.max_rounds:
            return False
        return request.time_left_s is None or target < tier_of(self.registry, request).success_target

    def _round_target(self, request: RouteRequest, primary: ProviderQuote) -> float:
        """The tier's target, spread over the rework rounds the deadline leaves time for."""
        target = tier_of(self.registry, request).success_target
        planning = self.registry.planning
        if request.time_left_s is None:
            return target
        rounds = int(request.time_left_s // (primary.latency_s + planning.round_overhead_s))
        return round_target(target, min(max(rounds, 1), planning.max_rounds))


def clips_expected_to_pass(missing: int, pass_rate: float) -> int:
    """The clips that, at their expected pass rate, bring the `missing` ones: missing ÷ rate,
    rounded, at least `missing`. A clip costs tens of cents to dollars, so a retake asks what
    is expected to pass rather than enough to pass at the tier's target in one round; a round
    that falls short is picked up by the next."""
    return max(missing, math.floor(missing / max(pass_rate, 0.01) + 0.5))


def tier_of(registry: Registry, request: RouteRequest) -> TierConfig:
    return registry.tiers[request.tier]


def fits(cap: int | None, amount: int) -> bool:
    return cap is None or amount <= cap
