"""The router's metrics: provider calls, latency and spend (in USD), breaker state, and the
hourly spend above which operators are alerted (a setting, exported so the rule can read it)."""

import typing
import weakref

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from services.common import telemetry
from services.router.providers.base import ErrorKind
from services.router.routing_types import CallRecord

if typing.TYPE_CHECKING:
    from services.router.engine import RoutingEngine

OUTCOMES = ("ok", *typing.get_args(ErrorKind))
MICRO = 1_000_000

PROVIDER_CALLS = Counter("genline_router_provider_calls_total", "Calls to image providers", ["provider", "outcome"])
PROVIDER_COST = Counter("genline_router_provider_cost_usd_total", "Provider spend in USD", ["provider"])
PROVIDER_LATENCY = Histogram("genline_router_provider_call_seconds", "Time per provider call", ["provider"],
                             buckets=telemetry.SECONDS_BUCKETS)
SPEND_ALERT = Gauge("genline_router_spend_alert_usd_per_hour",
                    "Provider spend per hour above which GenlineSpendHigh fires (a router setting)")


def observe_calls(calls: typing.Iterable[CallRecord]) -> None:
    for call in calls:
        PROVIDER_CALLS.labels(call.provider, call.outcome).inc()
        PROVIDER_COST.labels(call.provider).inc(call.actual_cost_micro_usd / MICRO)
        PROVIDER_LATENCY.labels(call.provider).observe(call.latency_s)


class BreakerCollector(Collector):
    """`genline_router_breaker_open{provider}`: 1 while a provider's breaker is open, and
    `genline_router_quality_breaker_open{provider,template}` for its quality breakers, read
    from the engines at scrape time (a breaker half-opens with time, not with events)."""

    engines: "weakref.WeakSet[RoutingEngine]" = weakref.WeakSet()

    def collect(self) -> typing.Iterator[Metric]:
        family = GaugeMetricFamily("genline_router_breaker_open", "1 while the provider's circuit breaker is open",
                                   labels=["provider"])
        quality = GaugeMetricFamily("genline_router_quality_breaker_open",
                                    "1 while the provider's quality breaker for the template is open",
                                    labels=["provider", "template"])
        for engine in list(self.engines):
            for status in engine.provider_status():
                family.add_metric([status.name], 1.0 if status.state == "open" else 0.0)
                for template, breaker in status.quality.items():
                    quality.add_metric([status.name, template], 1.0 if breaker.state == "open" else 0.0)
        yield family
        yield quality


REGISTRY.register(BreakerCollector())


def expose(engine: "RoutingEngine", providers: typing.Iterable[str], *, spend_alert_usd_per_hour: float) -> None:
    """Counters at zero for every configured provider; the breakers and the alert threshold."""
    for provider in providers:
        telemetry.preinitialise(PROVIDER_CALLS, *((provider, outcome) for outcome in OUTCOMES))
        telemetry.preinitialise(PROVIDER_COST, (provider,))
    SPEND_ALERT.set(spend_alert_usd_per_hour)
    BreakerCollector.engines.add(engine)
