"""Spend caps per API key, as ingest shows and checks them. The ledger enforces a key's caps
in the hold's own transaction (a job past one is rejected, `key_cap_reached`); ingest writes
the caps into each job the key submits, shows each key's spend beside its caps, and refuses
at once (402 naming the cap) a job the key's spend already leaves no room for."""

from dataclasses import dataclass
from uuid import UUID

from services.common.contracts import KeySpendCaps
from services.common.problems import Problem
from services.ingest.ledger_calls import LedgerClient, Quote


@dataclass(frozen=True)
class KeySpent:
    today: int
    this_month: int


@dataclass(frozen=True)
class Cap:
    """One of a key's caps: its period (day or month), its credits (None: no cap), and what
    the key spent in the period so far."""

    period: str
    credits: int | None
    spent: int

    def passed_by(self, cost: int) -> bool:
        return self.credits is not None and cost > 0 and self.spent + cost > self.credits


@dataclass(frozen=True)
class Submitter:
    """The API key a job is submitted with, and the spend caps it carries into the job."""

    key_id: UUID
    caps: KeySpendCaps

    def cap_problem(self, cap: Cap, cost: int) -> Problem:
        word, when = ("daily", "today") if cap.period == "day" else ("monthly", "this month")
        key_id = self.key_id
        return Problem(402, "key-cap-reached",
                       f"API key {key_id} has a {word} spend cap of {cap.credits} credits: {cap.spent} spent {when},"
                       f" and the job costs {cost}; raise the cap (PUT /v1/api-keys/{key_id}/caps) or wait",
                       extra={"cap": word, "cap_credits": cap.credits, "spent": cap.spent, "cost": cost,
                              "api_key_id": str(key_id)})

    def beyond_caps(self, spent: KeySpent, cost: int) -> Problem | None:
        """The 402 for the first cap `cost` more would pass, or None."""
        for cap in (Cap("day", self.caps.daily, spent.today), Cap("month", self.caps.monthly, spent.this_month)):
            if cap.passed_by(cost):
                return self.cap_problem(cap, cost)
        return None


async def spent_by_keys(ledger: LedgerClient, tenant_id: str, key_ids: list[UUID]) -> dict[UUID, KeySpent] | None:
    """What each key spent today and this month (UTC), as the ledger counts it; None when the
    ledger does not answer."""
    try:
        answer = await ledger.key_spend(tenant_id, key_ids)
    except Problem:
        return None
    return {UUID(k.api_key_id): KeySpent(k.spent_today, k.spent_this_month) for k in answer.keys}


async def refusal(ledger: LedgerClient, submitter: Submitter, quote: Quote) -> Problem | None:
    """The 402 a job of this key would get, judged on the key's spend so far and the job's
    quote (a video job's clips by the second); None when it fits, when the key has no cap, or
    when the ledger does not answer (it still enforces the cap when it holds)."""
    if submitter.caps.daily is None and submitter.caps.monthly is None:
        return None
    try:
        priced = await ledger.quote(quote)
    except Problem:
        return None
    key_id = submitter.key_id
    spent = await spent_by_keys(ledger, quote.tenant_id, [key_id])
    if priced is None or spent is None:
        return None
    return submitter.beyond_caps(spent.get(key_id, KeySpent(0, 0)), priced.credits)
