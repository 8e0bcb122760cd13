"""What a job is refused at the door for with a 402, as ingest judges it on the ledger's quote:
an account that owes credits, and spend caps per API key. The ledger enforces both in the
hold's own transaction (a job that slips through a race is rejected, `account_in_debt` or
`key_cap_reached`); ingest writes a key's caps into each job the key submits, shows each
key's spend beside its caps, and refuses at once (402 naming the debt, or the cap) a job the
account's debt or the key's spend already leaves no room for. One quote answers both."""

from dataclasses import dataclass
from uuid import UUID

from services.common.contracts import KeySpendCaps
from services.common.problems import Problem
from services.ingest.ledger_calls import LedgerClient, QuoteAsk


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
        return Problem(status=402, slug="key-cap-reached",
                       detail=f"API key {key_id} has a {word} spend cap of {cap.credits} credits: {cap.spent} spent {when},"
                       f" and the job costs {cost}; raise the cap (PUT /v1/api-keys/{key_id}/caps) or wait",
                       extra={"cap": word, "cap_credits": cap.credits, "spent": cap.spent, "cost": cost,
                              "api_key_id": str(key_id)})

    def beyond_caps(self, spent: KeySpent, cost: int) -> Problem | None:
        """The 402 for the first cap `cost` more would pass, or None."""
        for cap in (Cap("day", self.caps.daily, spent.today), Cap("month", self.caps.monthly, spent.this_month)):
            if cap.passed_by(cost):
                return self.cap_problem(cap, cost)
        return None


async def spent_by_keys(ledger: LedgerClient, tenant_id: str, *, key_ids: list[UUID]) -> dict[UUID, KeySpent] | None:
    """What each key spent today and this month (UTC), as the ledger counts it; None when the
    ledger does not answer."""
    try:
        answer = await ledger.key_spend(tenant_id, key_ids)
    except Problem:
        return None
    return {UUID(k.api_key_id): KeySpent(k.spent_today, k.spent_this_month) for k in answer.keys}


# How a tenant settles what it owes: buying credits (a checkout), whose grant pays the debt first.
SETTLE = "POST /v1/billing/checkout"


def debt_problem(owed: int) -> Problem:
    return Problem(status=402, slug="account-in-debt",
                   detail=f"the account owes {owed} credits (a refund or a lost dispute took back credits already spent);"
                   f" no job is accepted until it is paid: buy credits ({SETTLE}, or the console's billing page),"
                   " which pay the debt first", extra={"owed": owed, "settle": SETTLE})


async def refusal(ledger: LedgerClient, submitter: Submitter | None, *, quote: QuoteAsk) -> Problem | None:
    """The 402 a job gets at the door, judged on one quote of the ledger: the account owes
    credits, or the key's spend so far and the job's price (a video job's clips by the second)
    pass one of its caps. None when it fits, and when the ledger does not answer or knows no
    such tenant (it still decides when it holds)."""
    return await _refused(ledger, submitter, asked=CapCheck(quote))


async def evaluation_refusal(ledger: LedgerClient, submitter: Submitter | None, *, quote: QuoteAsk) -> Problem | None:
    """The 402 an evaluation of `quote.images` images gets before any is judged, as a job does at
    the door: the account owes credits, or the key's caps leave no room for it. An image judged
    costs at least a credit (the price book's price per image is positive), so that is what the
    caps are held to here; the quote (the evaluation's template) is asked for the debt only."""
    return await _refused(ledger, submitter, asked=CapCheck(quote, quote.images))


@dataclass(frozen=True)
class CapCheck:
    """What is asked at the door: the quote, and what the caps are held to (None: its price)."""

    quote: QuoteAsk
    cost: int | None = None


async def _refused(ledger: LedgerClient, submitter: Submitter | None, *, asked: CapCheck) -> Problem | None:
    quote, cost = asked.quote, asked.cost
    try:
        priced = await ledger.quote(quote)
    except Problem:
        return None
    if priced is None:
        return None
    if priced.owed > 0:
        return debt_problem(priced.owed)
    if submitter is None or (submitter.caps.daily is None and submitter.caps.monthly is None):
        return None
    key_id = submitter.key_id
    spent = await spent_by_keys(ledger, quote.tenant_id, key_ids=[key_id])
    if spent is None:
        return None
    return submitter.beyond_caps(spent.get(key_id, KeySpent(0, 0)), priced.credits if cost is None else cost)
