"""Spend caps per API key, as ingest shows and checks them. The ledger enforces a key's caps
in the hold's own transaction (a job past one is rejected, `key_cap_reached`); ingest writes
the caps into each job the key submits, shows each key's spend beside its caps, and refuses
at once (402 naming the cap) a job the key's spend already leaves no room for."""

from dataclasses import dataclass
from uuid import UUID

from services.common.contracts import KeySpendCaps, VideoSpec
from services.common.problems import Problem
from services.ingest.ledger_calls import LedgerStub, call_ledger, pb


@dataclass(frozen=True)
class KeySpent:
    today: int
    this_month: int


async def spent_by_keys(stub: LedgerStub, tenant_id: str, key_ids: list[UUID], timeout_s: float) -> dict[UUID, KeySpent] | None:
    """What each key spent today and this month (UTC), as the ledger counts it; None when the
    ledger does not answer."""
    try:
        answer = await call_ledger(stub.GetKeySpend, pb.GetKeySpendRequest(
            tenant_id=tenant_id, api_key_ids=[str(key) for key in key_ids]), timeout_s)
    except Problem:
        return None
    return {UUID(k.api_key_id): KeySpent(k.spent_today, k.spent_this_month) for k in answer.keys}


def cap_problem(key_id: UUID, period: str, cap: int, spent: int, cost: int) -> Problem:
    word, when = ("daily", "today") if period == "day" else ("monthly", "this month")
    return Problem(402, "key-cap-reached",
                   f"API key {key_id} has a {word} spend cap of {cap} credits: {spent} spent {when},"
                   f" and the job costs {cost}; raise the cap (PUT /v1/api-keys/{key_id}/caps) or wait",
                   extra={"cap": word, "cap_credits": cap, "spent": spent, "cost": cost, "api_key_id": str(key_id)})


def beyond_caps(key_id: UUID, caps: KeySpendCaps, spent: KeySpent, cost: int) -> Problem | None:
    """The 402 for the first cap `cost` more would pass, or None."""
    for period, cap, used in (("day", caps.daily, spent.today), ("month", caps.monthly, spent.this_month)):
        if cap is not None and cost > 0 and used + cost > cap:
            return cap_problem(key_id, period, cap, used, cost)
    return None


async def refusal(stub: LedgerStub, tenant_id: str, key_id: UUID, caps: KeySpendCaps, template: str, tier: str, images: int,
                  use_retry_tokens: bool, timeout_s: float, video: VideoSpec | None = None) -> Problem | None:
    """The 402 a job of this key would get, judged on the key's spend so far and the job's
    quote (a video job's clips by the second); None when it fits, when the key has no cap, or
    when the ledger does not answer (it still enforces the cap when it holds)."""
    if caps.daily is None and caps.monthly is None:
        return None
    clips = {"video_duration_s": video.duration_s, "video_resolution": video.resolution} if video else {}
    try:
        quote = await call_ledger(stub.Quote, pb.QuoteRequest(tenant_id=tenant_id, template=template, tier=tier,
                                                              images=images, use_retry_tokens=use_retry_tokens,
                                                              **clips),
                                  timeout_s)
    except Problem:
        return None
    spent = await spent_by_keys(stub, tenant_id, [key_id], timeout_s)
    if quote is None or spent is None:
        return None
    return beyond_caps(key_id, caps, spent.get(key_id, KeySpent(0, 0)), quote.credits)
