"""The routing engine against failing providers: fallback, breaker, AIMD, cost cap.

The cheap primary is a simulator of fal's queue API, the dearer fallback one of
Replicate's predictions API; both are real HTTP servers. Breaker cooldowns are crossed by moving a shifted clock forward.
"""

import asyncio
import uuid
from collections import Counter

import pytest

from services.router.clock import LoopClock
from services.router.engine import RoutingEngine
from services.router.providers.base import ProviderContext
from services.router.providers.factory import build_providers
from services.router.providers.registry import parse_registry
from services.router.routing_types import BreakerSettings, CostCapReached, ProviderRetries, RouteRequest, RoutingPolicy
from tests.router.market import Behaviour
from tests.router.stubs import STUB_SECRET, Stub, stub_provider

BREAKER = BreakerSettings(window_s=60, min_calls=3, failure_rate=0.5, cooldown_s=30)
RETRY = ProviderRetries(max_calls=4, base_delay_s=0.01, max_delay_s=0.05)


class ShiftedClock:
    """The loop's real clock plus a jump the test controls, so cooldowns pass at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return asyncio.get_running_loop().time() + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def engine_over(client, primary: Stub, fallback: Stub, clock=None, *, primary_entry=None, fallback_entry=None,
                policy: RoutingPolicy | None = None) -> RoutingEngine:
    # The fallback's timeout is one its healthy calls never reach, even on a loaded machine: at
    # 2 s, a fallback call in a full-suite run (load 20 on two cores) timed out. The primary's is
    # what a hanging call waits for, and one a healthy call (done in 0.05 s) does not reach either:
    # at 0.5 s, a healthy call in a full-suite run timed out after the market had made its
    # candidates, and the fallback made them again (the no-candidate-twice test failed on it).
    registry = parse_registry({"providers": {
        "primary": stub_provider(primary, **({"price": 10_000, "overall_s": 3.0} | (primary_entry or {}))),
        "fallback": stub_provider(fallback, **({"price": 30_000, "overall_s": 10.0} | (fallback_entry or {}))),
    }})
    providers = build_providers(registry, {"STUB_KEY": STUB_SECRET}, context=ProviderContext(client=client, clock=clock))
    return RoutingEngine(registry, providers, clock=clock or LoopClock(),
                         policy=policy or RoutingPolicy(breaker=BREAKER, retry=RETRY))


def job(images: int = 2, **overrides) -> RouteRequest:
    fields = {"job_id": uuid.uuid4().hex, "tenant_id": "t1", "tier": "stable", "template": "generic", "prompt": "a red fox",
                  "seed": 7, "images_needed": images, "width": 32, "height": 32, "model": "stub-model", "time_left_s": 10.0}
    return RouteRequest(**(fields | overrides))


def generated(*stubs: Stub, seed: int = 7) -> Counter:
    """How often each candidate index was generated, read from the batch seeds sent."""
    counts: Counter = Counter()
    for stub in stubs:
        counts.update(stub.market.generated_candidates(seed))
    return counts


def status_of(engine: RoutingEngine, name: str):
    return next(s for s in engine.provider_status() if s.name == name)


async def test_healthy_primary_is_used_for_the_whole_attempt(fal, replicate, client):
    # Timeouts no healthy call reaches, even on a loaded machine: with the usual 0.5 s, one
    # slow call in a full-suite run went to the fallback, and with 5 s overall one request
    # went past the usual 2 s a request has.
    engine = engine_over(client, fal, replicate, primary_entry={"overall_s": 9.0, "submit_s": 9.0})
    result = await engine.route(job(images=3))
    assert result.providers_used == ("primary",), result.calls
    assert [r.image.index for r in result.images] == list(range(result.planned_candidates))
    assert result.actual_cost_micro_usd == 10_000 * result.planned_candidates
    assert result.expected_cost_micro_usd == result.actual_cost_micro_usd
    assert all(call.outcome == "ok" and call.latency_s > 0 for call in result.calls)


async def test_server_errors_on_the_primary_fall_back(fal, replicate, client):
    fal.market.reset(Behaviour(submit_status=500))
    result = await engine_over(client, fal, replicate).route(job())
    assert result.providers_used == ("fallback",)
    assert len(result.images) == result.planned_candidates
    assert "server_error" in {call.outcome for call in result.calls}
    assert result.actual_cost_micro_usd == 30_000 * result.planned_candidates


async def test_hanging_primary_times_out_is_cancelled_and_falls_back(fal, replicate, client):
    fal.market.reset(Behaviour(hang=True))
    result = await engine_over(client, fal, replicate, primary_entry={"overall_s": 0.5}).route(job())
    assert result.providers_used == ("fallback",)
    assert [c.outcome for c in result.calls][0] == "timeout"
    assert fal.market.cancelled() and len(fal.market.cancelled()) == len(fal.market.requests)
    assert result.latency_s < 2.0


async def test_429_on_the_primary_falls_back_and_halves_its_concurrency(fal, replicate, client):
    fal.market.reset(Behaviour(submit_status=429, retry_after_s=5))
    engine = engine_over(client, fal, replicate)
    result = await engine.route(job())
    assert result.providers_used == ("fallback",)
    primary = status_of(engine, "primary")
    assert primary.concurrency_limit == 2 < primary.max_concurrency
    # Paused for Retry-After: the next attempt goes straight to the fallback.
    submissions = fal.market.refused[429]
    await engine.route(job())
    assert fal.market.refused[429] == submissions


async def test_breaker_opens_on_errors_and_closes_after_a_good_probe(fal, replicate, client):
    clock = ShiftedClock()
    fal.market.reset(Behaviour(submit_status=500))
    engine = engine_over(client, fal, replicate, clock)
    for _ in range(2):
        assert (await engine.route(job())).providers_used == ("fallback",)
    assert status_of(engine, "primary").state == "open"
    refused = fal.market.refused[500]
    assert (await engine.route(job())).providers_used == ("fallback",)
    assert fal.market.refused[500] == refused, "an open breaker sends nothing to the provider"

    fal.market.reset(Behaviour())
    clock.offset += BREAKER.cooldown_s + 1
    assert status_of(engine, "primary").state == "half_open"
    result = await engine.route(job(images=1))
    assert result.providers_used == ("primary",)
    assert status_of(engine, "primary").state == "closed"


async def test_breaker_reopens_when_the_probe_fails(fal, replicate, client):
    clock = ShiftedClock()
    fal.market.reset(Behaviour(submit_status=502))
    engine = engine_over(client, fal, replicate, clock)
    for _ in range(2):
        await engine.route(job())
    clock.offset += BREAKER.cooldown_s + 1
    await engine.route(job(images=1))
    assert status_of(engine, "primary").state == "open"


async def test_no_candidate_is_generated_twice_in_an_attempt(fal, replicate, client):
    # Every other primary call hangs and is cancelled; batches of 2 spill to the fallback.
    fal.market.reset(Behaviour(hang_every=2))
    engine = engine_over(client, fal, replicate, primary_entry={"max_batch": 2}, fallback_entry={"max_batch": 2})
    request = job(images=6)
    result = await engine.route(request)
    counts = generated(fal, replicate)
    indices = [r.image.index for r in result.images]
    assert len(indices) == len(set(indices)) == result.planned_candidates
    assert set(counts) == set(indices)
    assert set(counts.values()) == {1}
    assert {r.provider for r in result.images} == {"primary", "fallback"}


async def test_rework_attempt_uses_new_indices(fal, replicate, client):
    engine = engine_over(client, fal, replicate)
    first = await engine.route(job(images=2, job_id="job-r"))
    second = await engine.route(job(images=1, job_id="job-r", attempt=2, start_index=first.planned_candidates))
    assert min(r.image.index for r in second.images) == first.planned_candidates
    assert set(generated(fal).values()) == {1}


async def test_cost_cap_limits_the_candidates_and_spend(fal, replicate, client):
    engine = engine_over(client, fal, replicate)
    result = await engine.route(job(images=4, cost_cap_micro_usd=25_000))
    assert result.planned_candidates == 2
    assert result.actual_cost_micro_usd <= 25_000
    assert result.cost_cap_reached


async def test_cost_cap_below_one_image_generates_nothing(fal, replicate, client):
    engine = engine_over(client, fal, replicate)
    with pytest.raises(CostCapReached):
        await engine.route(job(cost_cap_micro_usd=9_999))
    assert fal.market.requests == {} and replicate.market.requests == {}


async def test_cost_cap_stops_the_fallback_to_a_dearer_provider(fal, replicate, client):
    fal.market.reset(Behaviour(submit_status=500))
    engine = engine_over(client, fal, replicate)
    with pytest.raises(CostCapReached, match="cost cap"):
        await engine.route(job(images=1, cost_cap_micro_usd=25_000))
    assert replicate.market.requests == {}


async def test_aimd_lowers_concurrency_on_429_and_recovers(fal, replicate, client):
    # Retry-After: 0 lets every attempt try the primary again.
    fal.market.reset(Behaviour(submit_status=429, retry_after_s=0))
    engine = engine_over(client, fal, replicate, primary_entry={"concurrency": 8})
    limits = []
    for _ in range(4):
        await engine.route(job(images=1))
        limits.append(status_of(engine, "primary").concurrency_limit)
    assert limits == [4, 2, 1, 1]

    fal.market.reset(Behaviour(latency_s=0.01))
    for _ in range(20):
        await engine.route(job(images=1))
    assert 1 < status_of(engine, "primary").concurrency_limit < 8
    for _ in range(30):
        await engine.route(job(images=1))
    assert status_of(engine, "primary").concurrency_limit == 8


async def test_concurrency_ceiling_at_the_provider_spills_to_the_fallback(fal, replicate, client):
    fal.market.reset(Behaviour(max_in_progress=2, latency_s=0.2))
    # A timeout the two calls the provider takes never reach, even on a loaded machine: with
    # the usual 0.5 s, both could time out there and spill over too.
    engine = engine_over(client, fal, replicate, primary_entry={"concurrency": 8, "overall_s": 5.0})
    results = await asyncio.gather(*(engine.route(job(images=1)) for _ in range(8)))
    assert fal.market.refused[429] >= 1
    # The provider serves two at a time: at least those stay, the refused spill over. On a
    # loaded machine a call may start after another has ended and stay too.
    stayed = sum(r.providers_used == ("primary",) for r in results)
    assert 1 <= stayed < 8
    assert sum("fallback" in r.providers_used for r in results) == 8 - stayed
    assert all(len(r.images) == r.planned_candidates for r in results)
    assert status_of(engine, "primary").concurrency_limit < 8


async def test_engine_reports_saturation_and_recovers(fal, replicate, client):
    fal.market.reset(Behaviour(hang=True))
    replicate.market.reset(Behaviour(hang=True))
    # Both calls hang until their limit, 3 s (the primary's by default): far beyond the 0.05 s the
    # test waits for a free place that must not come (at 0.5 s, a full-suite run's loaded worker
    # reached the limit first).
    engine = engine_over(client, fal, replicate, primary_entry={"concurrency": 1},
                         fallback_entry={"concurrency": 1, "overall_s": 3.0})
    attempts = [asyncio.create_task(engine.route(job(images=1))) for _ in range(2)]
    for _ in range(200):
        if not engine.has_capacity():
            break
        await asyncio.sleep(0.01)
    assert not engine.has_capacity()
    assert not await engine.wait_for_capacity(timeout_s=0.05)
    assert await engine.wait_for_capacity(timeout_s=30)
    await asyncio.gather(*attempts, return_exceptions=True)
