"""Alerts a tenant receives, raised by the ledger on the real PostgreSQL: each once per
crossing, on however many replicas look at once."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.common.bus.envelope import envelop
from services.common.contracts import JobSpec, JobSubmitted, KeySpendCaps
from services.ledger.alerts import FailedTopUp
from services.ledger.store import alerts as alert_store
from tests.ledger.test_reservations import grant, published

ALERTED = "genline.account.alerted.v1"


async def alerts_of(ledger, tenant: str) -> list[dict]:
    return [a for a in await published(ledger, ALERTED) if a["tenant_id"] == tenant]


async def settings(ledger, tenant: str, below: int | None, days: int = 7) -> None:
    async with ledger.runtime.pool.connection() as conn:
        await alert_store.set_alert_settings(conn, tenant, balance_low_below=below, grant_expiring_days=days)


def job(tenant: str, key: uuid.UUID | None = None, caps: KeySpendCaps | None = None) -> JobSubmitted:
    job_id = uuid.uuid4()
    spec = JobSpec(job_id=job_id, tenant_id=tenant, template="generic", prompt="p", images=1, candidates=1, seed=1,
                   submitted_at=datetime.now(UTC), api_key_id=key, key_caps=caps)
    return JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec)


async def test_a_low_balance_is_alerted_once_per_crossing_whatever_the_replicas(ledger, replica):
    await grant(ledger, "al1", 30)
    await settings(ledger, "al1", below=25)
    assert await ledger.alert_once() == 0
    await ledger.runtime.consumer.apply(envelop(job("al1"), "/t"))  # 20 available: below 25
    counts = await asyncio.gather(*(app.alert_once() for app in (ledger, replica, ledger, replica)))
    assert sum(counts) == 1
    await ledger.runtime.consumer.apply(envelop(job("al1"), "/t"))  # 10: still the same crossing
    assert await ledger.alert_once() == 0
    alerts = await alerts_of(ledger, "al1")
    assert [(a["alert"], a["details"]) for a in alerts] == [("account.balance_low", {"available": 20, "threshold": 25})]
    await grant(ledger, "al1", 100)  # back above: the alert is cleared, and the next fall is a new crossing
    assert await ledger.alert_once() == 0
    await settings(ledger, "al1", below=200)
    assert await ledger.alert_once() == 1
    assert [a["details"]["available"] for a in await alerts_of(ledger, "al1")] == [20, 110]


async def test_a_grant_expiring_within_the_notice_is_alerted_once(ledger):
    soon, later = datetime.now(UTC) + timedelta(days=3), datetime.now(UTC) + timedelta(days=30)
    await grant(ledger, "al2", 50, expires_at=soon)
    await grant(ledger, "al2", 70, expires_at=later)
    assert await ledger.alert_once() == 1 and await ledger.alert_once() == 0
    [alert] = await alerts_of(ledger, "al2")
    assert alert["alert"] == "account.grant_expiring" and alert["details"]["remaining"] == 50
    await settings(ledger, "al2", below=None, days=45)  # a longer notice reaches the second grant, once
    assert await ledger.alert_once() == 1 and await ledger.alert_once() == 0


async def test_a_key_reaching_its_cap_is_alerted_once_per_period(ledger):
    await grant(ledger, "al3", 1_000)
    key, caps = uuid.uuid4(), KeySpendCaps(daily=25)
    for _ in range(2):
        await ledger.runtime.consumer.apply(envelop(job("al3", key, caps), "/t"))
    assert await ledger.alert_once() == 0  # 20 of 25: not reached
    await ledger.runtime.consumer.apply(envelop(job("al3", key, caps), "/t"))  # refused: 30 > 25
    await ledger.runtime.consumer.apply(envelop(job("al3", key, caps), "/t"))
    assert await ledger.alert_once() == 1 and await ledger.alert_once() == 0
    [alert] = await alerts_of(ledger, "al3")
    assert alert["alert"] == "account.key_cap_reached"
    assert {k: alert["details"][k] for k in ("api_key_id", "period", "cap", "spent")} == {
        "api_key_id": str(key), "period": "day", "cap": 25, "spent": 20}


async def test_a_failed_top_up_is_alerted_once_per_payment(ledger):
    failed = FailedTopUp(tenant_id="al4", payment_id="pi_123", reason="card_declined", amount_minor=2000, currency="eur")
    assert await ledger.topup_failed(failed) is True
    assert await ledger.topup_failed(failed) is False
    [alert] = await alerts_of(ledger, "al4")
    assert alert["alert"] == "billing.topup_failed" and alert["details"]["payment_id"] == "pi_123"
