"""Oversampling arithmetic, pass-rate learning and provider ranking."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.clock import ManualClock
from services.router.planning import (
    Need,
    PassRateEstimator,
    VerdictTally,
    candidates_needed,
    fixed_oversample,
    probability_at_least,
    rank_providers,
    round_target,
)
from services.router.providers.entry_parts import PassRatePrior
from services.router.routing_types import ProviderQuote


@pytest.mark.parametrize(
    ("k", "n", "p", "expected"),
    [
        (1, 1, 0.5, 0.5),
        (1, 4, 0.5, 0.9375),
        (1, 5, 0.5, 0.96875),
        (2, 7, 0.5, 1 - 8 / 128),
        (2, 8, 0.5, 1 - 9 / 256),
        (4, 5, 0.9, 0.91854),
        (4, 6, 0.9, 0.98415),
        (3, 3, 0.8, 0.512),
        (0, 3, 0.1, 1.0),
        (4, 3, 0.9, 0.0),
    ],
)
def test_probability_of_at_least_k_passing_is_the_exact_binomial_tail(k, n, p, expected):
    assert probability_at_least(k, n, p=p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("k", "p", "target", "expected"),
    [
        (1, 0.5, 0.95, 5),   # 1 − 0.5⁴ = 0.9375 < 0.95 ≤ 1 − 0.5⁵
        (2, 0.5, 0.95, 8),   # 0.9375 at 7, 0.9648 at 8
        (4, 0.9, 0.95, 6),   # 0.9185 at 5, 0.9842 at 6
        (4, 0.9, 0.90, 5),
        (3, 0.8, 0.5, 3),    # 0.8³ = 0.512 already
        (1, 1.0, 0.99, 1),
        (2, 0.5, 0.6316, 4),
    ],
)
def test_candidates_needed_is_the_smallest_sufficient_n(k, p, target, expected):
    assert candidates_needed(Need(k, target), p) == expected


def test_candidates_needed_stops_at_the_maximum():
    assert candidates_needed(Need(4, 0.95, max_candidates=20), 0.05) == 20
    assert candidates_needed(Need(1, 0.95, max_candidates=10), 0.0) == 10


@given(k=st.integers(1, 8), p=st.floats(0.05, 1.0), target=st.floats(0.05, 0.99))
def test_candidates_needed_is_minimal(k, p, target):
    n = candidates_needed(Need(k, target, max_candidates=200), p)
    assert n >= k
    if n < 200:
        assert probability_at_least(k, n, p=p) >= target
    if n > k:
        assert probability_at_least(k, n - 1, p=p) < target


@pytest.mark.parametrize(("k", "p"), [(0, 0.5), (1, 1.5), (1, -0.1)])
def test_candidates_needed_rejects_nonsense(k, p):
    with pytest.raises(ValueError):
        candidates_needed(Need(k), p)


def test_round_target_spreads_the_job_target_over_rework_rounds():
    assert round_target(0.95, 1) == pytest.approx(0.95)
    assert round_target(0.95, 2) == pytest.approx(1 - math.sqrt(0.05))
    # Three rounds at the per-round target fail together as rarely as one round at 0.95.
    assert (1 - round_target(0.95, 3)) ** 3 == pytest.approx(0.05)


def test_fixed_oversample_matches_the_platform_default():
    assert [fixed_oversample(k, 1.5) for k in (1, 2, 3, 4, 8)] == [2, 3, 5, 6, 12]


def test_estimator_starts_at_the_prior_and_learns_from_outcomes():
    estimator = PassRateEstimator(priors={"cheap": PassRatePrior(mean=0.8, strength=4)}, half_life_s=None)
    assert estimator.mean("cheap", "headshot") == pytest.approx(0.8)
    estimator.observe(VerdictTally(provider="cheap", template="headshot", passed=2, failed=14))
    # Beta(3.2 + 2, 0.8 + 14)
    assert estimator.mean("cheap", "headshot") == pytest.approx(5.2 / 20)
    assert estimator.mean("cheap", "generic") == pytest.approx(0.8), "templates are learnt apart"


def test_estimator_evidence_fades_back_toward_the_prior():
    clock = ManualClock()
    estimator = PassRateEstimator(priors={"p": PassRatePrior(mean=0.8, strength=4)}, half_life_s=3600, clock=clock)
    estimator.observe(VerdictTally(provider="p", template="t", passed=0, failed=40))
    fresh = estimator.mean("p", "t")
    clock.advance(3600)
    clock.advance(10 * 3600)
    assert fresh < estimator.mean("p", "t") < 0.8
    assert estimator.mean("p", "t") == pytest.approx(0.8, abs=0.05)


def test_estimator_rejects_negative_counts():
    with pytest.raises(ValueError):
        PassRateEstimator().observe(VerdictTally(provider="p", template="t", passed=-1, failed=0))


def quote(name, price, pass_rate, latency=5.0, available=True):
    return ProviderQuote(provider=name, price_micro_usd=price, pass_rate=pass_rate, latency_s=latency, max_batch=4, available=available)


def test_ranking_is_by_cost_per_passing_image_not_price():
    quotes = [quote("cheap", 8_000, 0.4), quote("solid", 12_000, 0.9), quote("premium", 30_000, 0.95)]
    assert [q.provider for q in rank_providers(quotes, 60)] == ["solid", "cheap", "premium"]
    assert [q.provider for q in rank_providers(quotes, 60, rank_by="price_per_image")] == ["cheap", "solid", "premium"]


def test_ranking_puts_slow_providers_after_those_within_the_latency_target():
    quotes = [quote("slow-cheap", 5_000, 0.9, latency=90), quote("fast", 20_000, 0.9, latency=4),
              quote("slower", 6_000, 0.9, latency=120)]
    assert [q.provider for q in rank_providers(quotes, 20)] == ["fast", "slow-cheap", "slower"]


def test_ranking_leaves_out_unavailable_providers():
    quotes = [quote("open", 1_000, 0.9, available=False), quote("closed", 9_000, 0.9)]
    assert [q.provider for q in rank_providers(quotes, 60)] == ["closed"]
