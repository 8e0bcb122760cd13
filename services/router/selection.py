"""Which provider, and how many candidates: the router's choices, without I/O.

* `PassRateEstimator`: a Beta posterior per (provider, template), from the provider's
  prior and the scorer's verdicts. Old evidence fades (a half-life on the clock), so a
  provider that had a bad afternoon is tried again later instead of being shunned forever.
* `candidates_needed`: the smallest N with P(at least K of N pass) ≥ target under
  Binomial(N, p) — the adaptive oversampling.
* `round_target`: when the deadline leaves time for r rounds of rework, each round needs
  to succeed only with 1 − (1 − target)^(1/r) for the job to succeed with `target`.
* `rank_providers`: providers ordered by expected cost per passing image (price ÷ pass
  rate), those within the tier's latency target first.
"""

import math
from dataclasses import dataclass
from typing import Literal

from services.router.clock import Clock, LoopClock
from services.router.providers.registry import PassRatePrior

RankBy = Literal["cost_per_passing_image", "price_per_image"]


def probability_at_least(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed exactly."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def candidates_needed(k: int, p: float, target: float = 0.95, max_n: int = 64) -> int:
    """The smallest N ≥ k with P(at least k of N pass) ≥ target; `max_n` if none is enough."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0 <= p <= 1 or not 0 < target < 1:
        raise ValueError(f"need 0 ≤ p ≤ 1 and 0 < target < 1, got p={p}, target={target}")
    if p == 0:
        return max(k, max_n)
    for n in range(k, max(k, max_n) + 1):
        if probability_at_least(k, n, p) >= target:
            return n
    return max(k, max_n)


def fixed_oversample(k: int, factor: float) -> int:
    """The platform's static rule (ingest's default): ceil(factor × K), at least K + 1."""
    return max(k + 1, math.ceil(k * factor))


def round_target(target: float, rounds: int) -> float:
    """Per-round success probability that gives `target` over `rounds` independent rounds."""
    return 1 - (1 - target) ** (1 / max(1, rounds))


class PassRateEstimator:
    """Beta(α, β) per (provider, template): the prior plus scored outcomes, fading with time."""

    def __init__(self, priors: dict[str, PassRatePrior] | None = None, default_prior: PassRatePrior | None = None,
                 half_life_s: float | None = 6 * 3600, clock: Clock | None = None) -> None:
        self._priors = dict(priors or {})
        self._default_prior = default_prior or PassRatePrior()
        self._half_life_s = half_life_s
        self._clock = clock or LoopClock()
        # (provider, template) → (passed, failed, when last updated)
        self._evidence: dict[tuple[str, str], tuple[float, float, float]] = {}

    def observe(self, provider: str, template: str, passed: int, failed: int) -> None:
        if passed < 0 or failed < 0:
            raise ValueError(f"counts must not be negative, got passed={passed}, failed={failed}")
        old_passed, old_failed = self._faded(provider, template)
        self._evidence[(provider, template)] = (old_passed + passed, old_failed + failed, self._clock.now())

    def set_evidence(self, provider: str, template: str, passed: float, failed: float, age_s: float = 0.0) -> None:
        """Replace the evidence with counts kept elsewhere (faded as of `age_s` seconds ago)."""
        if passed < 0 or failed < 0:
            raise ValueError(f"counts must not be negative, got passed={passed}, failed={failed}")
        self._evidence[(provider, template)] = (passed, failed, self._clock.now() - max(0.0, age_s))

    @property
    def half_life_s(self) -> float | None:
        return self._half_life_s

    def mean(self, provider: str, template: str) -> float:
        alpha, beta = self._posterior(provider, template)
        return alpha / (alpha + beta)

    def templates_of(self, provider: str) -> list[str]:
        return sorted(template for name, template in self._evidence if name == provider)

    def prior(self, provider: str) -> PassRatePrior:
        return self._priors.get(provider, self._default_prior)

    def _posterior(self, provider: str, template: str) -> tuple[float, float]:
        prior = self.prior(provider)
        passed, failed = self._faded(provider, template)
        return prior.mean * prior.strength + passed, (1 - prior.mean) * prior.strength + failed

    def _faded(self, provider: str, template: str) -> tuple[float, float]:
        passed, failed, when = self._evidence.get((provider, template), (0.0, 0.0, 0.0))
        if self._half_life_s is None or (passed == 0 and failed == 0):
            return passed, failed
        weight = 0.5 ** (max(0.0, self._clock.now() - when) / self._half_life_s)
        return passed * weight, failed * weight


class RunningRatio:
    """An exponentially weighted mean of actual ÷ expected, starting at 1 (the list figure)."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.value = 1.0

    def update(self, actual: float, expected: float) -> None:
        if expected > 0:
            self.value += self.weight * (actual / expected - self.value)


@dataclass(frozen=True, slots=True)
class ProviderQuote:
    """What a provider is expected to charge and deliver for one job, right now."""

    provider: str
    price_micro_usd: int
    pass_rate: float
    latency_s: float
    max_batch: int
    available: bool = True

    @property
    def cost_per_passing_image(self) -> float:
        return self.price_micro_usd / max(self.pass_rate, 1e-6)

    def rank_key(self, rank_by: RankBy) -> float:
        return self.cost_per_passing_image if rank_by == "cost_per_passing_image" else self.price_micro_usd


def rank_providers(quotes: list[ProviderQuote], latency_target_s: float,
                   rank_by: RankBy = "cost_per_passing_image") -> list[ProviderQuote]:
    """Available providers: within the latency target by cost, then the rest by latency."""
    available = [q for q in quotes if q.available]
    within = sorted((q for q in available if q.latency_s <= latency_target_s),
                    key=lambda q: (q.rank_key(rank_by), q.latency_s, q.provider))
    beyond = sorted((q for q in available if q.latency_s > latency_target_s),
                    key=lambda q: (q.latency_s, q.rank_key(rank_by), q.provider))
    return within + beyond
