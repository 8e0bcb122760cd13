"""Credits and money the ledger announced, counted as its events are published: reserved,
charged, released, refunded and granted credits, and each settled job's revenue and
provider cost in USD (the margin)."""

import json

from prometheus_client import Counter

from services.common import telemetry
from services.common.contracts import (
    CreditsGranted,
    CreditsRefunded,
    CreditsReserved,
    ReservationSettled,
    TrainingSettled,
)

MICRO = 1_000_000

CREDITS = Counter("genline_credits_total", "Credits moved by the ledger, by operation", ["operation"])
SETTLED_USD = Counter("genline_settled_usd_total", "Revenue and provider cost of settled jobs, in USD", ["kind"])
telemetry.preinitialise(CREDITS, *((op,) for op in ("reserved", "charged", "released", "refunded", "granted")))
telemetry.preinitialise(SETTLED_USD, ("revenue",), ("provider_cost",))


def count_published(event_type: str, body: bytes) -> None:
    """An outbox observer: the amounts of one published ledger event."""
    if event_type == CreditsReserved.event_type:
        reserved = json.loads(body)
        CREDITS.labels("reserved").inc(reserved["amount"] + reserved.get("training_credits", 0))
    elif event_type == ReservationSettled.event_type:
        settled = json.loads(body)
        CREDITS.labels("charged").inc(settled["charged"])
        CREDITS.labels("released").inc(settled["released"])
        SETTLED_USD.labels("revenue").inc(settled["revenue_micro_usd"] / MICRO)
        SETTLED_USD.labels("provider_cost").inc(settled["provider_cost_micro_usd"] / MICRO)
    elif event_type == TrainingSettled.event_type:
        settled = json.loads(body)
        CREDITS.labels("charged").inc(settled["charged"])
        CREDITS.labels("released").inc(settled["released"])
    elif event_type == CreditsRefunded.event_type:
        CREDITS.labels("refunded").inc(json.loads(body)["amount"])
    elif event_type == CreditsGranted.event_type:
        CREDITS.labels("granted").inc(json.loads(body)["amount"])
