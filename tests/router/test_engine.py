"""The routing engine on local providers: planning, learning, pins, tiers, simulated time."""

import asyncio
import io
import uuid

import numpy as np
import pytest
from PIL import Image

from services.router.clock import LoopClock, run_simulated
from services.router.engine import RoutingEngine
from services.router.planning import VerdictTally
from services.router.providers.factory import build_providers
from services.router.providers.registry import parse_registry
from services.router.routing_types import AllProvidersFailed, NoCapableProvider, RouteRequest


def local(price: int, *, defect: float = 0.0, failure: float = 0.0, latency: float = 2.0, prior: float = 0.7,
          versions: tuple[str, ...] = ("1",), timeout: float = 60.0, max_batch: int = 8,
          actual_latency: float | None = None) -> dict:
    return {
        "adapter": "local", "models": [{"name": "painter", "version": v} for v in versions],
        "capabilities": {"min_side": 16, "max_images_per_request": max_batch},
        "price": {"per_image_micro_usd": price}, "concurrency": 4,
        "timeouts": {"submit_s": 5, "overall_s": timeout},
        "latency": {"base_s": latency, "per_image_s": 0.0}, "pass_rate_prior": {"mean": prior, "strength": 4},
        "local": {"defect_rate": defect, "failure_rate": failure, "latency_s": actual_latency},
    }


def engine_of(**providers) -> RoutingEngine:
    registry = parse_registry({"providers": providers})
    return RoutingEngine(registry, build_providers(registry))


def job(images: int = 2, **overrides) -> RouteRequest:
    fields = {"job_id": uuid.uuid4().hex, "tenant_id": "t1", "tier": "stable", "template": "headshot", "prompt": "a portrait",
                  "seed": 3, "images_needed": images, "width": 48, "height": 48}
    return RouteRequest(**(fields | overrides))


def looks_fine(png: bytes) -> bool:
    """A stand-in for the scorer: blank frames have no spread, blurred ones no edges."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(float)
    return pixels.std() > 5 and np.abs(np.diff(pixels, axis=1)).mean() > 2


def test_plan_oversamples_for_the_tier_target():
    engine = engine_of(only=local(10_000, prior=0.5))
    # stable: P(at least 2 of N pass) ≥ 0.95 at p = 0.5 needs N = 8.
    assert engine.plan(job(images=2)).candidates == 8
    # Time for three rounds: each needs only 1 − 0.05^(1/3) ≈ 0.63, so N = 4.
    assert engine.plan(job(images=2, time_left_s=600)).candidates == 4
    # Not enough time for a second round: back to the full target.
    assert engine.plan(job(images=2, time_left_s=5)).candidates == 8


def test_cheap_provider_whose_images_fail_loses_the_traffic():
    engine = engine_of(cheap=local(8_000, defect=0.75), solid=local(12_000, defect=0.0))
    assert engine.plan(job()).primary.provider == "cheap"

    async def route_and_score(jobs: int) -> list[str]:
        chosen = []
        for _ in range(jobs):
            result = await engine.route(job(images=2))
            chosen.append(result.providers_used[0])
            for provider in result.providers_used:
                verdicts = [looks_fine(r.image.data) for r in result.images if r.provider == provider]
                engine.observe_scores(VerdictTally(provider=provider, template="headshot", passed=sum(verdicts), failed=len(verdicts) - sum(verdicts)))
        # Read on the loop's own clock. Outside it the evidence, stamped in the loop's seconds
        # from zero, would fade by the machine's uptime: past a few hours, back to the prior.
        return (chosen, engine.pass_rates.mean("cheap", "headshot"), engine.plan(job()).primary.provider,
                engine.plan(job(template="product")).primary.provider)

    chosen, cheap_pass_rate, headshot_primary, product_primary = run_simulated(route_and_score(8))
    assert chosen[0] == "cheap" and chosen[-1] == "solid"
    assert headshot_primary == "solid"
    assert cheap_pass_rate < 0.5
    # Another template has its own estimate: there cheap is still worth trying.
    assert product_primary == "cheap"


def test_pinned_version_goes_only_where_that_version_is():
    engine = engine_of(cheap=local(5_000, versions=("1",)), dear=local(20_000, versions=("1", "2")))
    assert engine.plan(job(model="painter", model_version="2")).primary.provider == "dear"
    assert [q.provider for q in engine.plan(job(model="painter", model_version="2")).chain] == ["dear"]
    with pytest.raises(NoCapableProvider, match="painter 3"):
        engine.plan(job(model="painter", model_version="3"))


def test_size_beyond_every_provider_is_not_capable():
    engine = engine_of(only=local(5_000))
    with pytest.raises(NoCapableProvider):
        engine.plan(job(width=4096, height=4096))
    with pytest.raises(NoCapableProvider, match="image input"):
        engine.plan(job(needs_image_input=True))


def test_fast_tier_prefers_a_provider_within_its_latency_target():
    engine = engine_of(slow_cheap=local(5_000, latency=45), quick=local(15_000, latency=4))
    assert engine.plan(job(tier="low-cost")).primary.provider == "slow_cheap"
    assert engine.plan(job(tier="fast")).primary.provider == "quick"


def test_hanging_provider_times_out_on_simulated_time_and_falls_back():
    engine = engine_of(hangs=local(5_000, latency=3, actual_latency=500, timeout=30), backup=local(9_000, latency=3))

    async def scenario():
        clock = LoopClock()
        started = clock.now()
        result = await engine.route(job(images=1, time_left_s=120))
        return result, clock.now() - started

    result, elapsed = run_simulated(scenario())
    assert [c.outcome for c in result.calls] == ["timeout", "ok"]
    assert result.providers_used == ("backup",)
    assert elapsed == pytest.approx(33)
    assert result.latency_s == pytest.approx(33)


def test_attempt_records_expected_and_actual_cost_and_latency():
    engine = engine_of(only=local(7_000, latency=4))
    result = run_simulated(engine.route(job(images=3)))
    assert result.expected_cost_micro_usd == result.actual_cost_micro_usd == 7_000 * result.planned_candidates
    assert result.expected_latency_s == pytest.approx(4)
    assert result.latency_s == pytest.approx(4)
    assert all(c.expected_latency_s == pytest.approx(4) and c.latency_s == pytest.approx(4) for c in result.calls)


def test_provider_status_reports_health_price_pass_rate_and_load():
    engine = engine_of(a=local(7_000, prior=0.6), b=local(9_000))
    engine.observe_scores(VerdictTally(provider="a", template="headshot", passed=10, failed=0))
    status = {s.name: s for s in engine.provider_status()}
    assert status["a"].state == "closed" and status["a"].healthy
    assert status["a"].price_micro_usd == 7_000
    assert status["a"].pass_rates["headshot"] > 0.6 == status["a"].prior_pass_rate
    assert status["b"].pass_rates == {}
    assert status["a"].in_flight == 0 and status["a"].concurrency_limit == 4


def test_cancelled_attempt_gives_its_concurrency_back():
    engine = engine_of(only=local(5_000, latency=50))

    async def scenario():
        attempt = asyncio.create_task(engine.route(job(images=1)))
        await asyncio.sleep(10)
        busy = engine.provider_status()[0].in_flight
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        return busy, engine.provider_status()[0].in_flight

    assert run_simulated(scenario()) == (1, 0)


def test_busy_preferred_provider_is_waited_for_before_spilling_to_a_dear_one():
    engine = engine_of(good=local(5_000, latency=10, prior=0.99), dear=local(20_000, latency=10, prior=0.99))

    async def scenario():
        first = [asyncio.create_task(engine.route(job(images=1, tier="low-cost", time_left_s=900))) for _ in range(4)]
        await asyncio.sleep(0)
        # Four calls fill the good provider; the fifth waits for it instead of paying 4×.
        fifth = await engine.route(job(images=1, tier="low-cost", time_left_s=900))
        await asyncio.gather(*first)
        return fifth

    fifth = run_simulated(scenario())
    assert fifth.providers_used == ("good",)
    assert fifth.latency_s == pytest.approx(20)


def test_spills_to_the_next_provider_when_waiting_would_miss_the_deadline():
    engine = engine_of(good=local(5_000, latency=10, prior=0.99), dear=local(20_000, latency=10, prior=0.99))

    async def scenario():
        first = [asyncio.create_task(engine.route(job(images=1, time_left_s=30))) for _ in range(4)]
        await asyncio.sleep(0)
        fifth = await engine.route(job(images=1, time_left_s=30))
        await asyncio.gather(*first)
        return fifth

    assert run_simulated(scenario()).providers_used == ("dear",)


def test_a_client_chosen_n_is_generated_as_asked_within_the_cost_cap():
    engine = engine_of(only=local(10_000, prior=0.5))
    assert engine.plan(job(images=2, candidates=3)).candidates == 3
    assert engine.plan(job(images=2, candidates=9, cost_cap_micro_usd=50_000)).candidates == 5


def test_an_attempt_that_got_nothing_reports_the_calls_it_made():
    engine = engine_of(flaky=local(5_000, failure=1.0, latency=1))
    with pytest.raises(AllProvidersFailed) as raised:
        run_simulated(engine.route(job(images=1)))
    assert raised.value.calls and {c.provider for c in raised.value.calls} == {"flaky"}
    assert all(c.outcome == "server_error" for c in raised.value.calls) and raised.value.spent_micro_usd == 0


def test_cheapest_capable_price_ignores_providers_that_cannot_take_the_job():
    engine = engine_of(small=local(1_000, versions=("2",)), big=local(7_000))
    assert engine.cheapest_price_micro_usd(job(model="painter", model_version="1")) == 7_000
    assert engine.cheapest_price_micro_usd(job(model="painter", model_version="3")) is None


def test_a_tenants_call_waits_for_a_slot_in_its_turn_not_behind_another_tenants_backlog():
    # Four slots; one tenant's twelve attempts of eight images each, then another's one image.
    engine = engine_of(only=local(5_000, latency=10, max_batch=8))
    finished: list[str] = []

    async def attempt(tenant: str, images: int) -> None:
        result = await engine.route(job(images=images, candidates=images, tenant_id=tenant))
        finished.append(tenant)
        assert len(result.images) == images

    async def scenario():
        flood = [asyncio.create_task(attempt("flood", 8)) for _ in range(12)]
        await asyncio.sleep(0)
        await asyncio.gather(attempt("other", 1), *flood)

    run_simulated(scenario())
    # In its turn it takes one of the four slots the first calls free, so it ends with the second
    # round of calls; behind the backlog, first come first served, it waited a round longer at least.
    assert len(finished) == 13 and finished.count("other") == 1
    assert finished.index("other") < 8, finished


def test_a_providers_call_is_made_in_its_jobs_turn():
    """The router names the job's turn around each provider call (`CALL_TURN`): the local
    provider's painting workers take the call's paintings in it."""
    from services.common.turns import plan_share
    from services.router.providers.base import CALL_TURN

    registry = parse_registry({"providers": {"only": local(10_000, latency=0.0, actual_latency=0.0, max_batch=2)}})
    providers = build_providers(registry)
    seen = []
    painted = providers["only"].generate

    async def generate(request):
        seen.append(CALL_TURN.get())
        return await painted(request)

    providers["only"].generate = generate
    result = asyncio.run(RoutingEngine(registry, providers).route(job(images=3, tenant_id="t9", priority=2)))
    assert len(result.images) >= 3 and len(seen) >= 2
    assert {(turn.tenant, turn.share) for turn in seen} == {("t9", plan_share(2))}
    assert CALL_TURN.get() is None, "the turn is the call's, not left behind"
