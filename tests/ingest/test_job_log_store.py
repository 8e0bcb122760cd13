"""The event log on the real PostgreSQL: a redelivered event adds nothing, concurrent events
number their entries without gaps, and a commit wakes the streams watching its tenant."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.bus.envelope import envelop
from services.common.contracts import AttemptStarted, CreditsReserved, JobSpec, JobSubmitted
from services.common.db import migrate
from services.common.runtime import ServiceRuntime
from services.ingest.jobs import handlers, projection, store
from services.ingest.jobs.domain import submitted_view
from services.ingest.jobs.live import LogWatch
from services.ingest.receipts.document import ReceiptSigner
from services.ingest.store.data_keys import WrappedDataKey
from tests.conftest import settings_for

TENANT = "t-log"


@pytest.fixture
async def ingest(endpoints):
    settings = settings_for(endpoints)
    runtime = ServiceRuntime(f"ingest_log_{uuid.uuid4().hex[:8]}", settings, migrations_package="services.ingest")
    handlers.register(runtime.consumer, handlers.Projection(ReceiptSigner(Ed25519PrivateKey.generate()), settings))
    await migrate(runtime.database_url, runtime.name, packages=runtime.migrations)
    await runtime.pool.open(wait=True)
    async with runtime.pool.connection() as conn:
        await conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", [TENANT, TENANT])
    yield runtime
    await runtime.pool.close()


async def submit(runtime) -> JobSpec:
    spec = JobSpec(job_id=uuid.uuid4(), tenant_id=TENANT, template="generic", prompt="a red fox", images=1,
                   candidates=2, seed=7, submitted_at=datetime.now(UTC))
    written = store.Submission(data_key=WrappedDataKey(job_id=spec.job_id, tenant_id=TENANT, wrapped=bytes(32), kek_id=None),
                               binding=None, outbox_row=runtime.outbox_row(JobSubmitted(job_id=spec.job_id, tenant_id=TENANT,
                                                                                        job=spec)))
    async with runtime.pool.connection() as conn, conn.transaction():
        await projection.record_submitted(conn, submitted_view(spec), at=spec.submitted_at, submission=written)
    return spec


def reserved(spec: JobSpec) -> CreditsReserved:
    return CreditsReserved(job_id=spec.job_id, tenant_id=TENANT, job=spec, transfer_id=uuid.uuid4(), amount=10,
                           unit_price=10)


def started(spec: JobSpec) -> AttemptStarted:
    return AttemptStarted(job_id=spec.job_id, tenant_id=TENANT, attempt=1, images_needed=1,
                          started_at=datetime.now(UTC))


async def job_log(runtime, job_id) -> list[dict]:
    async with runtime.pool.connection() as conn:
        return await store.read_log(conn, job_id, after=0, limit=1000)


async def test_a_redelivered_event_adds_no_entry(ingest):
    spec = await submit(ingest)
    envelope = envelop(reserved(spec), "/test")
    assert await ingest.consumer.apply(envelope) is True
    assert await ingest.consumer.apply(envelope) is False
    log = await job_log(ingest, spec.job_id)
    assert [(e["seq"], e["type"]) for e in log] == [(1, "state"), (2, "billing.reserved"), (3, "state")]
    assert [e["payload"]["state"] for e in log if e["type"] == "state"] == ["submitted", "admitted"]


async def test_concurrent_events_number_entries_without_gaps_per_job_and_per_tenant(ingest):
    specs = [await submit(ingest) for _ in range(6)]
    await asyncio.gather(*(ingest.consumer.apply(envelop(reserved(s), "/test")) for s in specs))
    await asyncio.gather(*(ingest.consumer.apply(envelop(started(s), "/test")) for s in specs))
    for spec in specs:
        log = await job_log(ingest, spec.job_id)
        assert [e["seq"] for e in log] == [1, 2, 3, 4, 5]
        assert [e["payload"]["state"] for e in log if e["type"] == "state"] == ["submitted", "admitted", "generating"]
    async with ingest.pool.connection() as conn:
        everything = await store.read_tenant_log(conn, TENANT, after=0, limit=1000)
        position = await store.tenant_log_position(conn, TENANT)
    assert [e["tenant_seq"] for e in everything] == list(range(1, 6 * 5 + 1)) and position == 30


async def test_a_commit_wakes_the_streams_watching_its_tenant_only(ingest):
    spec = await submit(ingest)
    watch = LogWatch(ingest, poll_s=1)
    with watch.watching(TENANT) as mine, watch.watching("someone-else") as theirs:
        await watch.start()
        try:
            await asyncio.wait_for(mine.wait(), 60)  # listening started: every watcher looks once
            mine.clear(), theirs.clear()
            await ingest.consumer.apply(envelop(reserved(spec), "/test"))
            await asyncio.wait_for(mine.wait(), 60)
            assert not theirs.is_set()
        finally:
            await watch.stop()


async def test_a_batch_tells_each_job_what_its_events_one_by_one_would(ingest):
    """Ingest applies a fetch's events in one transaction: each job's entries and view come
    out as if its events had been applied one at a time, and nothing is applied twice."""
    batched, single = [await submit(ingest) for _ in range(2)], [await submit(ingest) for _ in range(2)]
    early = envelop(reserved(batched[0]), "/test")
    assert await ingest.consumer.apply(early)
    for spec in single:
        for event in (reserved(spec), started(spec)):
            assert await ingest.consumer.apply(envelop(event, "/test"))
    late = envelop(started(batched[0]), "/test")
    batch = [early, envelop(reserved(batched[1]), "/test"), late, late, envelop(started(batched[1]), "/test")]
    applied = await ingest.consumer.apply_batch(batch)

    assert applied == [batch[1], late, batch[4]]  # the early one was applied before, `late` once
    told = [[(e["seq"], e["type"], e["payload"].get("state")) for e in await job_log(ingest, s.job_id)]
            for s in batched + single]
    assert told[0] == told[1] == told[2] == told[3] and [seq for seq, _, _ in told[0]] == [1, 2, 3, 4, 5]
    async with ingest.pool.connection() as conn:
        views = [await store.read_view(conn, s.job_id) for s in batched + single]
        everything = await store.read_tenant_log(conn, TENANT, after=0, limit=1000)
    assert {(v.state, v.billing.state, v.billing.reserved) for v in views} == {("generating", "reserved", 10)}
    assert [e["tenant_seq"] for e in everything] == list(range(1, 4 * 5 + 1))
