"""Routing on a simulated day of a provider market: what does a delivered image cost?

The day runs on simulated time (`SimulatedEventLoop`): five providers, priced in the
shapes hosted providers publish (per image by size and quality as OpenAI does, per
inference step as Runware does, per megapixel as fal does, per image as BFL does, per
compute second as Replicate does), with prices that move through the day, outages
(hangs and error bursts), cold starts, concurrency ceilings that answer 429, and pass
rates that differ by provider and template (one provider's quality dips for an
afternoon). Jobs arrive on a daily curve plus one
tenant's bulk upload, each asking for K images by a tier deadline under the tier's cost
cap. Every strategy is the router's own `RoutingEngine` — the real ranking, oversampling,
breaker, AIMD, retries and pass-rate estimator — fed through the same `FairQueue`, with
parts of its policy switched off for the baselines:

  single              always the default provider, no fallback, fixed oversampling (1.5×)
  cheapest            lowest price per image, no fallback, no pass-rate learning, fixed 1.5×
  cheapest+fallback   as cheapest, falling back to the next cheapest on a timeout or error
  genline             expected cost per passing image, adaptive oversampling, breaker,
                      AIMD, fallback

A candidate passes with its provider's hidden pass rate (drawn from a hash of the job,
candidate and provider, so every strategy faces the same luck). A job is delivered when
K candidates passed; a shortfall is generated again (rework) while the deadline allows.
Cost per delivered image = all provider spend ÷ images delivered (partial deliveries
count their images). p95 time to delivery is over jobs delivered in full by their deadline.

    python bench/routing.py [--seed 7] [--jobs 12000]
"""

import argparse
import asyncio
import hashlib
import math
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.router.clock import Clock, LoopClock, run_simulated  # noqa: E402
from services.router.engine import RoutingEngine  # noqa: E402
from services.router.fairness import FairQueue  # noqa: E402
from services.router.health import BreakerSettings  # noqa: E402
from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderError  # noqa: E402
from services.router.providers.entry_parts import PriceModel
from services.router.providers.registry import Registry, parse_registry  # noqa: E402
from services.router.routing_types import (  # noqa: E402
    AimdSettings,
    AllProvidersFailed,
    CostCapReached,
    NoCapableProvider,
    RouteRequest,
    RoutingPolicy,
)

HOUR = 3600.0
DAY_S = 24 * HOUR
TEMPLATES = {"generic": 0.5, "headshot": 0.3, "product": 0.2}
TIERS = {"stable": 0.5, "fast": 0.2, "low-cost": 0.3}
DEADLINE_S = {"fast": 120.0, "stable": 300.0, "low-cost": 900.0}
# The price book's provider spend cap per requested image (services/ledger/pricebook.yaml).
CAP_PER_IMAGE = {"stable": 60_000, "fast": 40_000, "low-cost": 20_000}
IMAGES_PER_JOB = {1: 0.35, 2: 0.2, 4: 0.35, 8: 0.1}
SCORING_S = 3.0
DEFAULT_PROVIDER = "atlas"


# ---- the market: what providers publish, and what they really do -------------------------


@dataclass(frozen=True)
class Window:
    start_h: float
    end_h: float
    what: str  # "hang", "errors", or a pass-rate factor as text

    def covers(self, t: float) -> bool:
        return self.start_h <= (t % DAY_S) / HOUR < self.end_h


@dataclass(frozen=True)
class MarketProvider:
    name: str
    price: dict                         # the registry's price model (providers.yaml `price`)
    compute_s: float                    # published compute time per image (what per-second prices bill)
    base_latency_s: float
    per_image_latency_s: float
    pass_rates: dict[str, float]
    our_concurrency: int
    timeout_s: float
    max_batch: int
    price_curve: tuple[tuple[float, float], ...] = ((0, 1.0), (24, 1.0))   # (hour, multiplier)
    ceiling_curve: tuple[tuple[float, float], ...] = ((0, 64), (24, 64))   # hidden concurrency ceiling
    outages: tuple[Window, ...] = ()
    quality_dips: tuple[Window, ...] = ()
    error_rate: float = 0.002
    cold_start_s: float = 0.0
    idle_before_cold_s: float = 300.0
    retry_after_s: float = 2.0
    steps: int | None = None            # inference steps per image, for prices per step

    def price_at(self, t: float, width: int = 1024, height: int = 1024) -> float:
        """What one image of this size costs at simulated time `t`."""
        listed = PriceModel(**self.price).price_micro_usd(width, height, self.compute_s, self.steps)
        return listed * by_hour(self.price_curve, t)

    def pass_rate_at(self, template: str, t: float) -> float:
        dips = [float(w.what) for w in self.quality_dips if w.covers(t)]
        return self.pass_rates[template] * math.prod(dips)


PEAK_PRICES = ((0, 0.8), (6, 0.85), (9, 1.3), (13, 1.5), (18, 1.3), (21, 0.9), (24, 0.8))
PEAK_CEILING = ((0, 20), (8, 14), (10, 10), (17, 10), (20, 16), (24, 20))

MARKET = (
    # The reliable premium host everyone starts with, priced per image by size and quality.
    MarketProvider("atlas", {"per_image_by_size": {"1024x1024": 24_000, "1536x1024": 36_000, "1024x1536": 36_000}},
                   3.0, 6.0, 1.5, {"generic": 0.95, "headshot": 0.92, "product": 0.94},
                   our_concurrency=32, timeout_s=90, max_batch=4),
    # Cheapest per image (per inference step), weakest images, and two bad spells.
    MarketProvider("pennypix", {"per_step_micro_usd": 2_000}, 4.0, 12.0, 2.0,
                   {"generic": 0.72, "headshot": 0.45, "product": 0.62}, steps=4,
                   our_concurrency=16, timeout_s=60, max_batch=4, ceiling_curve=((0, 24), (24, 24)),
                   outages=(Window(10.0, 11.0, "hang"), Window(19.0, 19.6, "errors")),
                   quality_dips=(Window(14.0, 17.0, "0.6"),), error_rate=0.01),
    # Fast, on demand, priced per megapixel with the daily peak; scales to zero and cold-starts.
    MarketProvider("swiftgen", {"per_megapixel_micro_usd": 10_490}, 1.0, 3.0, 0.5,
                   {"generic": 0.88, "headshot": 0.85, "product": 0.9},
                   our_concurrency=24, timeout_s=30, max_batch=4, price_curve=PEAK_PRICES,
                   ceiling_curve=PEAK_CEILING, cold_start_s=25.0),
    # Good value per image, slow, rate-limited in the day, one night-time incident.
    MarketProvider("bulkdiff", {"per_image_micro_usd": 9_000}, 3.0, 15.0, 3.0,
                   {"generic": 0.9, "headshot": 0.8, "product": 0.88},
                   our_concurrency=24, timeout_s=90, max_batch=8, ceiling_curve=((0, 16), (8, 8), (18, 8), (24, 16)),
                   outages=(Window(3.0, 4.0, "errors"),), retry_after_s=5.0),
    # Spot GPUs billed per second: cheap at night, dear at the peak, sometimes preempted.
    MarketProvider("spotgpu", {"per_second_micro_usd": 1_400}, 6.0, 4.0, 6.0,
                   {"generic": 0.86, "headshot": 0.8, "product": 0.85},
                   our_concurrency=16, timeout_s=90, max_batch=4, price_curve=PEAK_PRICES,
                   ceiling_curve=((0, 16), (24, 16)), error_rate=0.03),
)


def by_hour(curve: tuple[tuple[float, float], ...], t: float) -> float:
    """Piecewise-linear value of a daily curve at simulated time `t`."""
    hour = (t % DAY_S) / HOUR
    for (h0, v0), (h1, v1) in zip(curve, curve[1:]):
        if h0 <= hour <= h1:
            return v0 + (v1 - v0) * (hour - h0) / max(h1 - h0, 1e-9)
    return curve[-1][1]


def unit_draw(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SimulatedProvider:
    """A market provider behind the router's Provider interface, on the simulated clock."""

    def __init__(self, truth: MarketProvider, clock: Clock, seed: int) -> None:
        self.name = truth.name
        self.truth = truth
        self.clock = clock
        self.seed = seed
        self.in_flight = 0
        self.last_busy = -math.inf

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]:
        now = self.clock.now()
        await self._refuse_if_unwell(request, now)
        self.in_flight += 1
        try:
            latency = self._latency_s(request, now)
            await self.clock.sleep(latency)
        finally:
            self.in_flight -= 1
            self.last_busy = self.clock.now()
        cost = round(self.truth.price_at(now, request.width, request.height))
        return [GeneratedImage(index=i, data=b"", media_type="image/png", seed=request.seed_for(i),
                               cost_micro_usd=cost, latency_s=latency) for i in request.indices]

    async def _refuse_if_unwell(self, request: GenerationRequest, now: float) -> None:
        outage = next((w for w in self.truth.outages if w.covers(now)), None)
        if outage is not None and outage.what == "hang":
            await self.clock.sleep(request.timeout_s + 1)
            raise ProviderError("timeout", f"{self.name} hung")
        if outage is not None or unit_draw(self.seed, self.name, request.call_key) < self.truth.error_rate:
            await self.clock.sleep(1.0)
            raise ProviderError("server_error", f"{self.name} answered 500")
        if self.in_flight >= by_hour(self.truth.ceiling_curve, now):
            await self.clock.sleep(0.2)
            raise ProviderError("rate_limited", f"{self.name} answered 429", self.truth.retry_after_s)

    def _latency_s(self, request: GenerationRequest, now: float) -> float:
        truth = self.truth
        cold = truth.cold_start_s if now - self.last_busy > truth.idle_before_cold_s and not self.in_flight > 1 else 0
        jitter = math.exp(random.Random(f"{self.seed}{self.name}{request.call_key}").gauss(0, 0.2))
        return cold + (truth.base_latency_s + truth.per_image_latency_s * request.count) * jitter


def market_registry() -> Registry:
    """What the operator writes down: list prices and published latencies, a neutral prior."""
    return parse_registry({"providers": {p.name: _registry_entry(p) for p in MARKET}})


def _registry_entry(p: MarketProvider) -> dict:
    # A per-step price needs the model's steps: the list price counts them.
    inputs = {"inputs": {"count": {"field": "count", "max": 64}, "seed": {"field": "seed"},
                         "steps": {"field": "steps", "default": p.steps}}} if p.steps else {}
    return {
        "adapter": "local", "models": [{"name": "sdxl", "version": "1", **inputs}],
        "capabilities": {"max_side": 2048, "max_images_per_request": p.max_batch},
        "price": p.price, "concurrency": p.our_concurrency,
        "timeouts": {"submit_s": 10, "overall_s": p.timeout_s},
        "latency": {"base_s": p.base_latency_s, "per_image_s": p.per_image_latency_s},
        "pass_rate_prior": {"mean": 0.8, "strength": 4},
    }


# ---- the day's jobs ---------------------------------------------------------------------


@dataclass(frozen=True)
class SimJob:
    job_id: str
    tenant: str
    tier: str
    template: str
    images: int
    arrival_s: float
    seed: int

    @property
    def deadline_s(self) -> float:
        return self.arrival_s + DEADLINE_S[self.tier]

    @property
    def cost_cap(self) -> int:
        return CAP_PER_IMAGE[self.tier] * self.images


TRAFFIC = ((0, 0.3), (6, 0.5), (9, 1.6), (12, 1.4), (15, 1.8), (18, 1.2), (21, 0.6), (24, 0.3))


def day_of_jobs(seed: int, jobs: int) -> list[SimJob]:
    """Arrivals on a daily curve, plus one tenant's bulk upload of 10 % of the day at 13:00."""
    rng = random.Random(seed)
    bulk = jobs // 10
    arrivals = [_arrival(rng) for _ in range(jobs - bulk)] + [13 * HOUR + rng.uniform(0, 300) for _ in range(bulk)]
    tenants = [f"tenant-{rng.randint(1, 40)}" for _ in range(jobs - bulk)] + ["bulk-tenant"] * bulk
    day = [SimJob(job_id=f"job-{n}", tenant=tenant, tier=_pick(rng, TIERS), template=_pick(rng, TEMPLATES),
                  images=_pick(rng, IMAGES_PER_JOB), arrival_s=arrival, seed=rng.randrange(2**31))
           for n, (arrival, tenant) in enumerate(zip(arrivals, tenants))]
    return sorted(day, key=lambda job: job.arrival_s)


def _arrival(rng: random.Random) -> float:
    peak = max(v for _, v in TRAFFIC)
    while True:  # thinning: accept a uniform time with probability traffic / peak
        t = rng.uniform(0, DAY_S)
        if rng.random() < by_hour(TRAFFIC, t) / peak:
            return t


def _pick(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


# ---- the service around the engine -------------------------------------------------------


@dataclass
class JobOutcome:
    job: SimJob
    spent_micro_usd: int = 0
    passed: int = 0
    delivered_at: float | None = None

    @property
    def on_time(self) -> bool:
        return self.delivered_at is not None and self.delivered_at <= self.job.deadline_s


@dataclass
class Day:
    engine: RoutingEngine
    market: dict[str, SimulatedProvider]
    seed: int
    outcomes: list[JobOutcome] = field(default_factory=list)


async def run_job(day: Day, job: SimJob) -> None:
    """The router service's part for one job: attempts and rework until K pass or time is up."""
    clock, outcome = day.engine.clock, JobOutcome(job)
    day.outcomes.append(outcome)
    attempt, next_index = 0, 0
    while outcome.passed < job.images and clock.now() < job.deadline_s:
        attempt += 1
        request = RouteRequest(job_id=job.job_id, tenant_id=job.tenant, tier=job.tier, template=job.template,
                               prompt="p", seed=job.seed, images_needed=job.images - outcome.passed,
                               attempt=attempt, start_index=next_index, model="sdxl",
                               cost_cap_micro_usd=job.cost_cap - outcome.spent_micro_usd,
                               time_left_s=job.deadline_s - clock.now())
        try:
            result = await day.engine.route(request)
        except CostCapReached:
            break
        except (AllProvidersFailed, NoCapableProvider):
            await clock.sleep(10.0)  # the message goes back to the topic and comes again
            continue
        outcome.spent_micro_usd += result.actual_cost_micro_usd
        next_index += result.planned_candidates
        await clock.sleep(SCORING_S)
        outcome.passed += score(day, job, result)
    if outcome.passed >= job.images:
        outcome.delivered_at = clock.now()


def score(day: Day, job: SimJob, result) -> int:
    """The scorer: each candidate passes with its provider's hidden rate at generation time."""
    verdicts: dict[str, list[bool]] = {}
    for routed in result.images:
        truth = day.market[routed.provider].truth
        rate = truth.pass_rate_at(job.template, day.engine.clock.now() - SCORING_S)
        verdicts.setdefault(routed.provider, []).append(
            unit_draw(day.seed, job.job_id, routed.image.index, routed.provider) < rate)
    for provider, passes in verdicts.items():
        day.engine.observe_scores(provider, job.template, sum(passes), len(passes) - sum(passes))
    return sum(sum(passes) for passes in verdicts.values())


async def run_day(policy: RoutingPolicy, jobs: list[SimJob], seed: int) -> list[JobOutcome]:
    clock = LoopClock()
    market = {p.name: SimulatedProvider(p, clock, seed) for p in MARKET}
    engine = RoutingEngine(market_registry(), market, clock=clock, policy=policy, rng=random.Random(seed))
    day = Day(engine, market, seed)
    queue: FairQueue[SimJob] = FairQueue()
    running: set[asyncio.Task] = set()
    arrived = asyncio.Event()

    async def arrive() -> None:
        for job in jobs:
            await clock.sleep(job.arrival_s - clock.now())
            queue.push(job, job.tier, job.tenant, cost=job.images)
            arrived.set()

    feeder = asyncio.create_task(arrive())
    while not feeder.done() or len(queue):
        job = queue.pop()
        if job is None:
            arrived.clear()
            await asyncio.wait({feeder, asyncio.create_task(arrived.wait())}, return_when=asyncio.FIRST_COMPLETED)
            continue
        # Pause consumption, as the service does, while no provider can take a call.
        await engine.wait_for_capacity()
        task = asyncio.create_task(run_job(day, job))
        running.add(task)
        task.add_done_callback(running.discard)
        for _ in range(3):  # let the job take its concurrency before the next one is looked at
            await asyncio.sleep(0)
    await asyncio.gather(*running)
    return day.outcomes


# ---- strategies and report ---------------------------------------------------------------

_BASELINE = RoutingPolicy(rank_by="price_per_image", oversampling="fixed", learn_pass_rates=False, fallback=False,
                          spill_tolerance=None, breaker=BreakerSettings(enabled=False),
                          aimd=AimdSettings(enabled=False))
STRATEGIES = {
    "single": replace(_BASELINE, only_provider=DEFAULT_PROVIDER),
    "cheapest": _BASELINE,
    "cheapest+fallback": replace(_BASELINE, fallback=True),
    "genline": RoutingPolicy(),
}


@dataclass(frozen=True)
class Summary:
    strategy: str
    cost_per_delivered_usd: float
    p95_delivery_s: float
    on_time_share: float
    seconds: float


def summarise(strategy: str, outcomes: list[JobOutcome], seconds: float) -> Summary:
    delivered = sum(min(o.passed, o.job.images) for o in outcomes)
    spent = sum(o.spent_micro_usd for o in outcomes)
    times = sorted(o.delivered_at - o.job.arrival_s for o in outcomes if o.on_time)
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)] if times else math.inf
    return Summary(strategy, spent / 1e6 / max(delivered, 1), p95, sum(o.on_time for o in outcomes) / len(outcomes),
                   seconds)


def print_table(summaries: list[Summary]) -> None:
    print(f"{'strategy':<19} | {'cost per delivered image (USD)':>30} | {'p95 time to delivery (s)':>24} | "
          f"{'delivered by deadline':>21}")
    print("-" * 104)
    for s in summaries:
        print(f"{s.strategy:<19} | {s.cost_per_delivered_usd:>30.4f} | {s.p95_delivery_s:>24.1f} | "
              f"{s.on_time_share:>21.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    jobs = day_of_jobs(args.seed, args.jobs)
    started = time.perf_counter()
    summaries = []
    for name, policy in STRATEGIES.items():
        began = time.perf_counter()
        outcomes = run_simulated(run_day(policy, jobs, args.seed))
        summaries.append(summarise(name, outcomes, time.perf_counter() - began))
    print(f"{len(jobs)} jobs, one simulated day, seed {args.seed}; {time.perf_counter() - started:.1f} s\n")
    print_table(summaries)
    by = {s.strategy: s.cost_per_delivered_usd for s in summaries}
    g, s, c = by["genline"], by["single"], by["cheapest"]
    print(f"\ncost_per_delivered: genline={g:.4f} single={s:.4f} cheapest={c:.4f} "
          f"saving_vs_single={1 - g / s:.3f} saving_vs_cheapest={1 - g / c:.3f}")


if __name__ == "__main__":
    main()
