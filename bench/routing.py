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
import math
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.market import DAY_S, HOUR, MARKET, SimulatedProvider, by_hour, market_registry, unit_draw  # noqa: E402
from genline_stack.stopping import run_stoppable  # noqa: E402
from services.router.clock import LoopClock, run_simulated  # noqa: E402
from services.router.engine import RoutingEngine  # noqa: E402
from services.router.fairness import FairQueue, Place  # noqa: E402
from services.router.health import BreakerSettings  # noqa: E402
from services.router.planning import VerdictTally  # noqa: E402
from services.router.routing_types import (  # noqa: E402
    AimdSettings,
    AllProvidersFailed,
    CostCapReached,
    NoCapableProvider,
    RouteRequest,
    RoutingPolicy,
)

TEMPLATES = {"generic": 0.5, "headshot": 0.3, "product": 0.2}
TIERS = {"stable": 0.5, "fast": 0.2, "low-cost": 0.3}
DEADLINE_S = {"fast": 120.0, "stable": 300.0, "low-cost": 900.0}
# The price book's provider spend cap per requested image (services/ledger/pricebook.yaml).
CAP_PER_IMAGE = {"stable": 60_000, "fast": 40_000, "low-cost": 20_000}
IMAGES_PER_JOB = {1: 0.35, 2: 0.2, 4: 0.35, 8: 0.1}
SCORING_S = 3.0
DEFAULT_PROVIDER = "atlas"


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
        day.engine.observe_scores(VerdictTally(provider=provider, template=job.template, passed=sum(passes), failed=len(passes) - sum(passes)))
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
            queue.push(job, Place(tenant=job.tenant, tier=job.tier, cost=job.images))
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
    run_stoppable(main)
