"""Reservations and settlements through the ledger's handlers on the real PostgreSQL."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from services.common.bus.envelope import envelop
from services.common.contracts import (
    CreditsReserved,
    DeliveredImage,
    JobDelivered,
    JobSpec,
    JobSubmitted,
    ScoringFailed,
)
from services.common.db import migrate
from services.common.runtime import ServiceRuntime
from services.ledger import handlers
from services.ledger.app import LedgerApp
from services.ledger.records import CreditGrant
from services.ledger.settings import LedgerSettings
from tests.conftest import settings_for


def scratch_ledger(endpoints, **overrides) -> LedgerApp:
    """The ledger on a schema of its own; without `start()`, no broker: events are applied
    directly and what it would publish stays in its outbox, where the test reads it."""
    settings = settings_for(endpoints, LedgerSettings, **overrides)
    ledger = LedgerApp(settings, ServiceRuntime(f"ledger_{uuid.uuid4().hex[:8]}", settings, migrations_package="services.ledger"))
    ledger.runtime.consumer.on_batch(handlers.CONSUMES.handled, ledger.ledger.apply_events)
    return ledger


async def open_scratch(ledger: LedgerApp) -> LedgerApp:
    runtime = ledger.runtime
    await migrate(runtime.database_url, runtime.name, packages=runtime.migrations)
    await runtime.pool.open(wait=True)
    return ledger


@pytest.fixture
async def ledger(endpoints):
    app = await open_scratch(scratch_ledger(endpoints))
    yield app
    await app.runtime.pool.close()


async def grant(ledger: LedgerApp, tenant: str, credits: int, **terms) -> None:
    await ledger.grant(CreditGrant(tenant_id=tenant, amount=credits, source="admin", reason="test", **terms))


async def apply(ledger: LedgerApp, event) -> bool:
    return await ledger.runtime.consumer.apply(envelop(event, "/test"))


def submitted(tenant: str, images: int = 1, template: str = "generic") -> JobSubmitted:
    job_id = uuid.uuid4()
    spec = JobSpec(job_id=job_id, tenant_id=tenant, template=template, prompt="p", images=images,
                   candidates=images + 1, seed=1, submitted_at=datetime.now(UTC))
    return JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec)


def delivered(event: JobSubmitted, count: int) -> JobDelivered:
    image = DeliveredImage(n=1, key="k", url="u", expires_at=datetime.now(UTC), sha256="s", size_bytes=1,
                           media_type="image/png")
    return JobDelivered(job_id=event.job_id, tenant_id=event.tenant_id, requested=event.job.images,
                        images=[image.model_copy(update={"n": n}) for n in range(1, count + 1)])


async def published(ledger: LedgerApp, event_type: str) -> list[dict]:
    async with ledger.runtime.pool.connection() as conn:
        rows = await (await conn.execute("SELECT body FROM outbox WHERE event_type = %s", [event_type])).fetchall()
    return [json.loads(bytes(r["body"])) for r in rows]


async def account(ledger: LedgerApp, tenant: str) -> dict:
    async with ledger.runtime.pool.connection() as conn:
        return await (await conn.execute(
            "SELECT posted, pending, posted - pending AS available FROM accounts WHERE tenant_id = %s", [tenant]
        )).fetchone()


async def test_concurrent_reservations_admit_exactly_what_the_balance_covers(ledger):
    await grant(ledger, "t1", 170)  # 17 generic images at 10 credits
    jobs = [submitted("t1") for _ in range(60)]
    await asyncio.gather(*(ledger.runtime.consumer.apply(envelop(job, "/test")) for job in jobs))
    reserved = await published(ledger, CreditsReserved.event_type)
    rejected = await published(ledger, "genline.credits.reservation_rejected.v1")
    assert len(reserved) == 17 and len(rejected) == 43
    assert {r["reason_code"] for r in rejected} == {"insufficient_credits"}
    assert await account(ledger, "t1") == {"posted": 170, "pending": 170, "available": 0}


async def test_the_database_refuses_an_overdraft_whatever_the_code_does(ledger):
    await grant(ledger, "t2", 10)
    async with ledger.runtime.pool.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute("UPDATE accounts SET pending = 11 WHERE tenant_id = 't2'")


async def test_delivery_is_charged_once_and_only_for_what_was_delivered(ledger):
    await grant(ledger, "t3", 100)
    job = submitted("t3", images=3)
    await ledger.runtime.consumer.apply(envelop(job, "/test"))
    first, second = envelop(delivered(job, 2), "/test"), envelop(delivered(job, 2), "/test")
    assert await ledger.runtime.consumer.apply(first) is True
    assert await ledger.runtime.consumer.apply(first) is False  # redelivered: same event id
    await ledger.runtime.consumer.apply(second)  # the same fact under another event id
    settled = await published(ledger, "genline.credits.reservation_settled.v1")
    assert len(settled) == 1 and (settled[0]["charged"], settled[0]["released"]) == (20, 10)
    assert await account(ledger, "t3") == {"posted": 80, "pending": 0, "available": 80}


async def test_a_platform_failure_costs_nothing(ledger):
    await grant(ledger, "t4", 50)
    job = submitted("t4", images=2, template="headshot")
    await ledger.runtime.consumer.apply(envelop(job, "/test"))
    assert (await account(ledger, "t4"))["available"] == 10
    failure = ScoringFailed(job_id=job.job_id, tenant_id="t4", attempt=1, failure_code="no_candidate_passed",
                            reason="r", scores=[])
    await ledger.runtime.consumer.apply(envelop(failure, "/test"))
    assert await account(ledger, "t4") == {"posted": 50, "pending": 0, "available": 50}


async def test_the_database_allows_one_settlement_per_reservation(ledger):
    await grant(ledger, "t5", 10)
    job = submitted("t5")
    await ledger.runtime.consumer.apply(envelop(job, "/test"))
    await ledger.runtime.consumer.apply(envelop(delivered(job, 1), "/test"))
    async with ledger.runtime.pool.connection() as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute("INSERT INTO entries (tenant_id, transfer_id, kind, amount, debit_account, credit_account)"
                               " SELECT tenant_id, id, 'charge', 0, 'platform:holds', 'platform:revenue'"
                               " FROM transfers WHERE job_id = %s", [job.job_id])



ENTRY = ("INSERT INTO entries (tenant_id, transfer_id, kind, amount, debit_account, credit_account)"
         " VALUES (%s, %s, 'reserve', 1, 'tenant:x', 'platform:holds')")


async def test_the_database_refuses_a_transfer_or_entry_that_names_no_account_or_transfer(ledger):
    """Checked once per statement over every row it writes, as a foreign key would check each."""
    await grant(ledger, "t6", 10)
    job = submitted("t6")
    await ledger.runtime.consumer.apply(envelop(job, "/test"))
    async with ledger.runtime.pool.connection() as conn:
        transfer = (await (await conn.execute("SELECT id FROM transfers WHERE job_id = %s", [job.job_id])).fetchone())["id"]
        await conn.execute(ENTRY, ["t6", transfer])  # both exist: taken
        for tenant, transfer_id in (("nobody", transfer), ("t6", uuid.uuid4()), ("nobody", None)):
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                await conn.execute(ENTRY, [tenant, transfer_id])
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # one bad row among good ones
            await conn.execute("INSERT INTO entries (tenant_id, transfer_id, kind, amount, debit_account, credit_account)"
                               " SELECT tenant, %s, 'reserve', 1, 'tenant:x', 'platform:holds'"
                               " FROM unnest(%s::text[]) AS tenant", [transfer, ["t6", "t6", "nobody", "t6"]])
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            await conn.execute("INSERT INTO transfers (id, job_id, tenant_id, amount, unit_price, images, state,"
                               " timeout_at) VALUES (%s, %s, 'nobody', 10, 10, 1, 'pending', now())",
                               [uuid.uuid4(), uuid.uuid4()])
        count = (await (await conn.execute("SELECT count(*) AS n FROM entries WHERE tenant_id = 't6' AND kind = 'reserve'"
                                           " AND amount = 1")).fetchone())["n"]
    assert count == 1


@pytest.mark.parametrize("statement", [
    "DELETE FROM accounts WHERE tenant_id = 't7'",
    "TRUNCATE accounts CASCADE",
    "UPDATE accounts SET tenant_id = 't7-renamed' WHERE tenant_id = 't7'",
    "DELETE FROM transfers WHERE tenant_id = 't7'",
    "TRUNCATE transfers CASCADE",
    "UPDATE transfers SET id = gen_random_uuid() WHERE tenant_id = 't7'",
    "UPDATE transfers SET tenant_id = 'other' WHERE tenant_id = 't7'",
    "UPDATE entries SET transfer_id = NULL WHERE tenant_id = 't7' AND kind = 'reserve'",
    "UPDATE entries SET tenant_id = 'other' WHERE tenant_id = 't7'",
])
async def test_accounts_transfers_and_their_references_stay(ledger, statement):
    """What a check made when a reference is written relies on; a change of anything else passes."""
    await grant(ledger, "t7", 10)
    await grant(ledger, "other", 10)
    await ledger.runtime.consumer.apply(envelop(submitted("t7"), "/test"))
    async with ledger.runtime.pool.connection() as conn:
        with pytest.raises(psycopg.errors.RestrictViolation):
            await conn.execute(statement)
        await conn.execute("UPDATE accounts SET retry_tokens = retry_tokens WHERE tenant_id = 't7'")
        await conn.execute("UPDATE transfers SET id = id, tenant_id = tenant_id WHERE tenant_id = 't7'")
        rows = (await (await conn.execute("SELECT count(*) AS n FROM transfers WHERE tenant_id = 't7'")).fetchone())["n"]
    assert rows == 1

async def test_unknown_template_is_rejected(ledger):
    await grant(ledger, "t6", 100)
    await ledger.runtime.consumer.apply(envelop(submitted("t6", template="poster"), "/test"))
    rejected = await published(ledger, "genline.credits.reservation_rejected.v1")
    assert [r["reason_code"] for r in rejected] == ["unknown_template"]
