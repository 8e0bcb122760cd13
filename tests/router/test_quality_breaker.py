"""The quality breaker: a provider whose candidates collapse in scoring, although every
call succeeds, loses one template's traffic, says why, and wins it back with a probe."""

import uuid

from services.router.clock import ManualClock, run_simulated
from services.router.engine import RoutingEngine
from services.router.health import BreakerState, CandidateVerdict, QualityBreaker
from services.router.providers.factory import build_providers
from services.router.providers.registry import parse_registry
from services.router.routing_types import QualitySettings, RouteRequest, RoutingPolicy
from tests.router.test_engine import local

SETTINGS = QualitySettings(window_s=600, window_verdicts=4, max_pass_rate=0.2, cooldown_s=30)
BLACK = CandidateVerdict(False, ("blank", "exposure", "clipping"))


def test_a_dip_keeps_it_closed_a_collapse_opens_it_with_the_reason():
    clock = ManualClock()
    breaker = QualityBreaker(clock, SETTINGS)
    breaker.record([CandidateVerdict(True), BLACK, BLACK, CandidateVerdict(True), BLACK])
    assert breaker.state is BreakerState.CLOSED  # 2 of 5 pass: poor, not collapsed
    breaker = QualityBreaker(clock, SETTINGS)
    breaker.record([BLACK, BLACK, CandidateVerdict(False, ("sharpness",)), BLACK])
    assert breaker.state is BreakerState.OPEN and not breaker.try_acquire()
    assert breaker.reason == ("0 of 4 recent candidates passed scoring;"
                              " failed most: blank 3, exposure 3, clipping 3, sharpness 1")


def test_passes_before_a_collapse_do_not_hide_it():
    breaker = QualityBreaker(ManualClock(), SETTINGS)
    breaker.record([CandidateVerdict(True)] * 20 + [BLACK] * 3)
    assert breaker.state is BreakerState.CLOSED
    breaker.record([BLACK])
    assert breaker.state is BreakerState.OPEN and breaker.reason.startswith("0 of 4")


def test_after_the_cooldown_one_probe_decides():
    clock = ManualClock()
    breaker = QualityBreaker(clock, SETTINGS)
    breaker.record([BLACK] * 4)
    clock.advance(31)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() and not breaker.try_acquire()  # one probe at a time
    breaker.record([BLACK])
    assert breaker.state is BreakerState.OPEN and "0 of" in breaker.reason
    clock.advance(31)
    assert breaker.try_acquire()
    breaker.record([CandidateVerdict(True)])
    assert breaker.state is BreakerState.CLOSED and breaker.reason == ""


def test_a_probe_whose_verdict_never_comes_is_replaced():
    clock = ManualClock()
    breaker = QualityBreaker(clock, SETTINGS)
    breaker.record([BLACK] * 4)
    clock.advance(31)
    assert breaker.try_acquire()  # its job is cancelled: no verdict
    clock.advance(10)
    assert not breaker.try_acquire()
    clock.advance(25)
    assert breaker.try_acquire()


def engine_of(**providers) -> RoutingEngine:
    registry = parse_registry({"providers": providers})
    return RoutingEngine(registry, build_providers(registry), policy=RoutingPolicy(quality=SETTINGS))


def job(template: str = "headshot") -> RouteRequest:
    return RouteRequest(job_id=uuid.uuid4().hex, tenant_id="t1", tier="stable", template=template,
                        prompt="a portrait", seed=3, images_needed=1, width=48, height=48, candidates=2)


def test_the_template_moves_to_the_next_provider_and_comes_back_after_a_passing_probe():
    async def scenario() -> None:
        engine = engine_of(cheap=local(5_000, latency=1), solid=local(20_000, latency=1))
        assert engine.plan(job()).primary.provider == "cheap"
        engine.observe_verdicts("cheap", "headshot", verdicts=[BLACK] * 4)

        assert [q.provider for q in engine.plan(job()).chain] == ["solid"]
        assert engine.plan(job("generic")).primary.provider == "cheap"  # other templates keep it
        moved = await engine.route(job())
        assert moved.providers_used == ("solid",)
        quality = {s.name: s for s in engine.provider_status()}["cheap"].quality["headshot"]
        assert quality.state == "open" and "failed most: blank 4" in quality.reason

        await engine.clock.sleep(31)
        probe = await engine.route(job())
        assert probe.providers_used == ("cheap",)
        engine.observe_verdicts("cheap", "headshot", verdicts=[CandidateVerdict(True), CandidateVerdict(True)])
        assert {s.name: s for s in engine.provider_status()}["cheap"].quality["headshot"].state == "closed"
        assert (await engine.route(job())).providers_used == ("cheap",)

    run_simulated(scenario())


def test_when_every_provider_collapsed_none_is_passed_over():
    engine = engine_of(cheap=local(5_000), solid=local(20_000))
    engine.observe_verdicts("cheap", "headshot", verdicts=[BLACK] * 4)
    engine.observe_verdicts("solid", "headshot", verdicts=[BLACK] * 4)
    plan = engine.plan(job())
    assert plan.quality_waived and [q.provider for q in plan.chain] == ["cheap", "solid"]
