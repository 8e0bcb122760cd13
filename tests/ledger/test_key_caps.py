"""Spend caps per API key, enforced in the hold's own transaction on the real PostgreSQL:
holds that race on one key, on two ledger replicas, never pass its cap together."""

import asyncio
import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest

from services.common.bus.envelope import envelop
from services.common.contracts import CreditsReserved, JobSpec, JobSubmitted, KeySpendCaps, ScoringFailed
from services.ledger.key_caps import KeyHold, KeySpend
from services.ledger.replay import LedgerReplay, replay_ledger
from tests.ledger.test_reservations import account, grant, published

REJECTED = "genline.credits.reservation_rejected.v1"


def submitted_with_key(tenant: str, key: uuid.UUID, caps: KeySpendCaps | None, images: int = 1) -> JobSubmitted:
    job_id = uuid.uuid4()
    spec = JobSpec(job_id=job_id, tenant_id=tenant, template="generic", prompt="p", images=images,
                   candidates=images + 1, seed=1, submitted_at=datetime.now(UTC), api_key_id=key, key_caps=caps)
    return JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec)


async def key_spent(ledger, key: uuid.UUID) -> dict[str, int]:
    async with ledger.runtime.pool.connection() as conn:
        rows = await (await conn.execute("SELECT period, spent FROM key_spend WHERE api_key_id = %s",
                                         [key])).fetchall()
    return {row["period"]: row["spent"] for row in rows}


async def test_200_racing_holds_on_a_key_capped_at_20_credits_hold_20(ledger, replica):
    await grant(ledger, "cap1", 10_000)
    key = uuid.uuid4()
    jobs = [submitted_with_key("cap1", key, KeySpendCaps(daily=20)) for _ in range(200)]
    await asyncio.gather(*((ledger, replica)[n % 2].runtime.consumer.apply(envelop(job, "/test"))
                           for n, job in enumerate(jobs)))
    reserved = await published(ledger, CreditsReserved.event_type)
    rejected = await published(ledger, REJECTED)
    assert sum(r["amount"] for r in reserved) == 20 and len(reserved) == 2  # 10 credits a generic image
    assert len(rejected) == 198 and {r["reason_code"] for r in rejected} == {"key_cap_reached"}
    assert "daily spend cap of 20 credits" in rejected[0]["reason"]
    assert await key_spent(ledger, key) == {"day": 20, "month": 20}
    assert (await account(ledger, "cap1"))["pending"] == 20


async def test_a_released_hold_gives_its_spend_back_to_the_key(ledger):
    await grant(ledger, "cap2", 1_000)
    key, caps = uuid.uuid4(), KeySpendCaps(daily=10, monthly=15)
    first = submitted_with_key("cap2", key, caps)
    await ledger.runtime.consumer.apply(envelop(first, "/test"))
    await ledger.runtime.consumer.apply(envelop(submitted_with_key("cap2", key, caps), "/test"))  # over the day's 10
    failed = ScoringFailed(job_id=first.job_id, tenant_id="cap2", attempt=1, failure_code="no_candidate_passed",
                           reason="none passed", scores=[])
    await ledger.runtime.consumer.apply(envelop(failed, "/test"))
    assert await key_spent(ledger, key) == {"day": 0, "month": 0}
    await ledger.runtime.consumer.apply(envelop(submitted_with_key("cap2", key, caps), "/test"))
    reasons = [r["reason"] for r in await published(ledger, REJECTED)]
    assert len(await published(ledger, CreditsReserved.event_type)) == 2 and len(reasons) == 1
    assert "daily spend cap of 10 credits: 10 spent today" in reasons[0]


async def test_the_monthly_cap_counts_too_and_other_keys_are_untouched(ledger):
    await grant(ledger, "cap3", 1_000)
    capped, free = uuid.uuid4(), uuid.uuid4()
    for _ in range(3):
        await ledger.runtime.consumer.apply(envelop(submitted_with_key("cap3", capped, KeySpendCaps(monthly=25)), "/t"))
        await ledger.runtime.consumer.apply(envelop(submitted_with_key("cap3", free, None), "/t"))
    rejected = await published(ledger, REJECTED)
    assert [r["reason_code"] for r in rejected] == ["key_cap_reached"]
    assert "monthly spend cap of 25 credits: 20 spent this month" in rejected[0]["reason"]
    assert await key_spent(ledger, capped) == {"day": 20, "month": 20}
    assert await key_spent(ledger, free) == {"day": 30, "month": 30}


async def test_the_database_refuses_spend_beyond_the_cap_whatever_the_code_does(ledger):
    async with ledger.runtime.pool.connection() as conn:
        await conn.execute("INSERT INTO key_spend (api_key_id, period, starts_on, tenant_id, spent, cap)"
                           " VALUES (%s, 'day', %s, 'cap4', 10, 20)", [uuid.uuid4(), date.today()])
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute("UPDATE key_spend SET spent = 21 WHERE tenant_id = 'cap4'")


def test_a_cap_is_judged_on_what_was_read_plus_what_the_batch_held():
    key, day = uuid.uuid4(), date(2026, 11, 26)
    spend = KeySpend(loaded={(key, "day", day): 5, (key, "month", date(2026, 11, 1)): 50})
    caps = KeySpendCaps(daily=20, monthly=60)
    assert spend.beyond_cap(KeyHold(tenant_id="t", api_key_id=key, day=day, amount=10, caps=caps)) is None
    spend.hold(KeyHold(tenant_id="t", api_key_id=key, day=day, amount=10, caps=caps))
    beyond = spend.beyond_cap(KeyHold(tenant_id="t", api_key_id=key, day=day, amount=1, caps=caps))
    assert beyond is not None and (beyond.period, beyond.spent, beyond.cap) == ("month", 60, 60)
    assert spend.changes() == [(key, "day", day, "t", 10, 20, False),
                               (key, "month", date(2026, 11, 1), "t", 10, 60, False)]


async def test_replay_rebuilds_each_keys_spend_from_the_journal_and_tells_a_difference(ledger):
    """`genline replay ledger` folds holds and releases into each key's spend per day and
    month, as the live key_spend keeps it, and reports a row that differs."""
    await grant(ledger, "cap5", 1_000)
    key = uuid.uuid4()
    held = [submitted_with_key("cap5", key, KeySpendCaps(daily=100), images=n) for n in (1, 2, 3)]
    for job in held:
        await ledger.runtime.consumer.apply(envelop(job, "/test"))
    failed = ScoringFailed(job_id=held[0].job_id, tenant_id="cap5", attempt=1, failure_code="no_candidate_passed",
                           reason="none passed", scores=[])
    await ledger.runtime.consumer.apply(envelop(failed, "/test"))
    assert await key_spent(ledger, key) == {"day": 50, "month": 50}

    agreed: list[str] = []
    assert replay_ledger(ledger.settings, LedgerReplay(ledger.runtime.name), out=agreed.append) == 0, agreed
    assert any("key spend" in line for line in agreed), agreed
    async with ledger.runtime.pool.connection() as conn:
        await conn.execute("UPDATE key_spend SET spent = spent + 5 WHERE api_key_id = %s AND period = 'month'", [key])
    differs: list[str] = []
    assert replay_ledger(ledger.settings, LedgerReplay(ledger.runtime.name), out=differs.append) == 1
    assert any(f"key={key} month" in line and "live=55 replayed=50" in line for line in differs), differs
