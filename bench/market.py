"""The provider market of bench/routing.py: what each provider publishes (list prices in the
shapes hosted providers use, latencies, concurrency) and what it really does over a day
(prices and capacity that follow the hour, windows of hangs, errors and worse images), as
simulated providers the routing engine calls on simulated time."""

import hashlib
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.router.clock import Clock  # noqa: E402
from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderError  # noqa: E402
from services.router.providers.entry_parts import PriceModel  # noqa: E402
from services.router.providers.registry import Registry, parse_registry  # noqa: E402

HOUR = 3600.0
DAY_S = 24 * HOUR


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
        listed = PriceModel(**self.price).price_micro_usd((width, height), self.compute_s, steps=self.steps)
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
    # Fast, on demand, priced per megapixel with the daily peak, each image rounded up to whole
    # megapixels as fal bills them; scales to zero and cold-starts.
    MarketProvider("swiftgen", {"per_megapixel_micro_usd": 11_000, "megapixels": "whole"}, 1.0, 3.0, 0.5,
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
            raise ProviderError(kind="timeout", message=f"{self.name} hung")
        if outage is not None or unit_draw(self.seed, self.name, request.call_key) < self.truth.error_rate:
            await self.clock.sleep(1.0)
            raise ProviderError(kind="server_error", message=f"{self.name} answered 500")
        if self.in_flight >= by_hour(self.truth.ceiling_curve, now):
            await self.clock.sleep(0.2)
            raise ProviderError(kind="rate_limited", message=f"{self.name} answered 429", retry_after_s=self.truth.retry_after_s)

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
