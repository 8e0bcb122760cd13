"""One provider's health as the router keeps it, how each call updates it, and its report.

Every call updates its provider's breaker, AIMD limit, and the price and latency ratios
(learnt against the registry's list figures); `ProviderStatus` reports all of it with the
pass-rate estimates and the quality breakers, for ListProviders and the metrics.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.contracts import ProviderStatus, QualityStatus
from services.router.clock import Clock
from services.router.providers.base import GeneratedImage, ProviderError
from services.router.providers.registry import ProviderConfig
from services.router.resilience import AimdLimiter, CircuitBreaker, QualityBreaker
from services.router.routing_types import RouteRequest, RoutingPolicy
from services.router.selection import PassRateEstimator, RunningRatio

# Prices in status reports are for one image of this size.
REFERENCE_SIZE = (1024, 1024)


@dataclass
class ProviderHealth:
    """What the router knows of one provider now: its breaker and concurrency limit decide
    whether it takes a call; its price and latency ratios and counts are learnt from calls."""

    breaker: CircuitBreaker
    limiter: AimdLimiter
    price: RunningRatio = field(default_factory=RunningRatio)
    latency: RunningRatio = field(default_factory=RunningRatio)
    calls: int = 0
    failures: int = 0

    def available(self) -> bool:
        return self.breaker.is_available() and self.limiter.has_capacity()


def new_health(config: ProviderConfig, clock: Clock, policy: RoutingPolicy) -> ProviderHealth:
    return ProviderHealth(breaker=CircuitBreaker(clock, policy.breaker),
                          limiter=AimdLimiter(clock, config.concurrency, policy.aimd))


def learn_from_call(health: ProviderHealth, config: ProviderConfig, request: RouteRequest,
                    images: list[GeneratedImage], error: ProviderError | None, latency_s: float) -> None:
    health.calls += 1
    if error is not None:
        health.failures += 1
        if error.needs_an_operator:
            health.breaker.trip()  # a wrong key or an empty balance fails every call alike
        else:
            health.breaker.record(False if error.counts_against_health else None)
        if error.kind == "rate_limited":
            health.limiter.on_rate_limited(error.retry_after_s)
        return
    health.breaker.record(True)
    health.limiter.on_success()
    if images:
        # Against list figures, so the ratios say how far the market is from the registry.
        list_price = config.list_price_micro_usd(request.width, request.height) * len(images)
        health.price.update(sum(i.cost_micro_usd for i in images), list_price)
        health.latency.update(latency_s, config.latency.batch_s(len(images)))


def status_of(name: str, config: ProviderConfig, health: ProviderHealth, estimator: PassRateEstimator,
              quality: Mapping[tuple[str, str], QualityBreaker], latency_estimate_s: float) -> ProviderStatus:
    return ProviderStatus(
        name=name, adapter=config.adapter, state=str(health.breaker.state), healthy=health.breaker.is_available(),
        price_micro_usd=round(config.list_price_micro_usd(*REFERENCE_SIZE) * health.price.value),
        pass_rates={t: estimator.mean(name, t) for t in estimator.templates_of(name)},
        prior_pass_rate=estimator.prior(name).mean, in_flight=health.limiter.in_flight,
        concurrency_limit=health.limiter.current_limit, max_concurrency=config.concurrency,
        latency_estimate_s=latency_estimate_s,
        calls=health.calls, failures=health.failures,
        quality={template: QualityStatus(state=str(q.state), reason=q.reason, pass_rate=q.pass_rate,
                                         verdicts=q.verdicts)
                 for (provider, template), q in quality.items() if provider == name},
    )
