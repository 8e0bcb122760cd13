"""A claim lives only as long as the task that holds it: an attempt whose task died while
the database was away is not renewed once the database is back, its claim lapses, and
another router's scheduler takes the attempt."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from services.common.db import COMMON_MIGRATIONS, migrate, open_pool
from services.common.supervision import BACKGROUND_FAILURES
from services.router import store
from services.router.domain import AdmittedJob
from services.router.scheduler import AttemptScheduler
from services.router.store import QueuedAttempt
from tests.db_proxy import DatabaseProxy
from tests.polling import eventually
from tests.router.service import job_spec

LEASE_S = 1.5


class RoomForAll:
    """The scheduler asks the engine only whether a provider has room."""

    def has_capacity(self) -> bool:
        return True


@pytest.fixture
async def schema(endpoints):
    name = f"router_claims_{uuid.uuid4().hex[:8]}"
    await migrate(endpoints.database_url, name, packages=[COMMON_MIGRATIONS, "services.router"])
    return name


async def claim_row(pool, job_id) -> dict:
    async with pool.connection() as conn:
        return await (await conn.execute(
            "SELECT claimed_by, claimed_until > now() AS held, tries, state FROM attempt_requests WHERE job_id = %s",
            [job_id])).fetchone()


def outcome_of(request: QueuedAttempt) -> store.AttemptRecord:
    """An attempt that generated nothing, as closing it records it."""
    return store.AttemptRecord(job_id=request.job_id, attempt=request.attempt, tenant_id=request.tenant_id,
                               providers="", candidates=0, cost_micro_usd=0, expected_cost_micro_usd=0,
                               started_at=datetime.now(UTC), next_index=0, stop_reason=None)


async def test_a_task_that_died_with_the_database_down_leaves_a_claim_another_scheduler_takes(endpoints, schema):
    proxy = DatabaseProxy(endpoints.database_url)
    await proxy.open()
    direct = open_pool(endpoints.database_url, schema, size=2)
    through_proxy = open_pool(proxy.url, schema, size=2)
    await direct.open()
    await through_proxy.open()
    spec = job_spec()
    async with direct.connection() as conn:
        await store.admit_job(conn, AdmittedJob(spec=spec, budget_micro_usd=0))
    died, taken_by_b = asyncio.Event(), asyncio.Event()

    async def run_in_a(request: QueuedAttempt) -> None:
        # Router A claims the attempt, then loses its database mid-run: whatever it does next fails.
        async with through_proxy.connection() as conn:
            assert await store.claim_attempt(conn, request, owner="router-a", lease_s=LEASE_S) == 1
        await proxy.cut()
        died.set()
        async with through_proxy.connection(timeout=1) as conn:
            await store.close_attempt(conn, request, owner="router-a", record=outcome_of(request))

    async def run_in_b(request: QueuedAttempt) -> None:
        async with direct.connection() as conn, conn.transaction():
            if await store.claim_attempt(conn, request, owner="router-b", lease_s=LEASE_S) is not None:
                assert await store.close_attempt(conn, request, owner="router-b", record=outcome_of(request)) is not None
                taken_by_b.set()

    failures_before = BACKGROUND_FAILURES.labels("router-attempt")._value.get()
    # A looks for attempts once, at its start; B only once A's task is dead and A's database back.
    a = AttemptScheduler(pool=through_proxy, engine=RoomForAll(), run=run_in_a, owner="router-a", max_queued=10, max_running=2,
                         poll_interval_s=600, lease_s=LEASE_S)
    b = AttemptScheduler(pool=direct, engine=RoomForAll(), run=run_in_b, owner="router-b", max_queued=10, max_running=2,
                         poll_interval_s=0.2, lease_s=LEASE_S)
    a.start()
    try:
        await asyncio.wait_for(died.wait(), 30)
        await eventually(lambda: not a.running, 30)
        assert BACKGROUND_FAILURES.labels("router-attempt")._value.get() == failures_before + 1  # counted, not lost

        await proxy.open()  # A's database is back: its renewer runs again, for the tasks it runs (none)
        await asyncio.sleep(LEASE_S)
        b.start()
        await asyncio.wait_for(taken_by_b.wait(), 30)
    finally:
        await a.stop(grace_s=1)
        await b.stop(grace_s=1)
        await proxy.cut()
        await through_proxy.close()
    row = await claim_row(direct, spec.job_id)
    await direct.close()
    assert (row["claimed_by"], row["tries"], row["state"]) == ("router-b", 2, "done")


async def test_only_the_claims_of_running_attempts_are_renewed(endpoints, schema):
    pool = open_pool(endpoints.database_url, schema, size=2)
    await pool.open()
    running, abandoned = job_spec(), job_spec()
    async with pool.connection() as conn:
        for spec in (running, abandoned):
            await store.admit_job(conn, AdmittedJob(spec=spec, budget_micro_usd=0))
            await store.claim_attempt(conn, QueuedAttempt(job_id=spec.job_id, attempt=1, images_needed=1, tier="stable", tenant_id=spec.tenant_id),
                                      owner="router-a", lease_s=LEASE_S)
        await store.renew_claims(conn, "router-a", keys=[(running.job_id, 1)], lease_s=60)
    await asyncio.sleep(LEASE_S + 0.2)
    assert (await claim_row(pool, running.job_id))["held"] is True
    assert (await claim_row(pool, abandoned.job_id))["held"] is False
    await pool.close()


async def test_a_lapsed_claim_is_taken_again_while_other_attempts_keep_coming(endpoints, schema):
    """A router under a steady stream of jobs is never a whole poll interval without news of an
    attempt; its look for attempts that no router holds comes every interval all the same."""
    pool = open_pool(endpoints.database_url, schema, size=4)
    await pool.open()
    lapsing = job_spec()
    async with pool.connection() as conn:
        await store.admit_job(conn, AdmittedJob(spec=lapsing, budget_micro_usd=0))
        # A router that died holds it a little longer: the scheduler's first look finds it held.
        await store.claim_attempt(conn, QueuedAttempt(job_id=lapsing.job_id, attempt=1, images_needed=1, tier="stable",
                                                      tenant_id=lapsing.tenant_id), owner="router-gone", lease_s=LEASE_S)
    ran: set = set()
    lapsed_taken = asyncio.Event()

    async def run(request: QueuedAttempt) -> None:
        async with pool.connection() as conn, conn.transaction():
            if await store.claim_attempt(conn, request, owner="router-b", lease_s=LEASE_S) is not None:
                await store.close_attempt(conn, request, owner="router-b", record=outcome_of(request))
                ran.add(request.job_id)
                if request.job_id == lapsing.job_id:
                    lapsed_taken.set()

    async def stream(scheduler: AttemptScheduler, stop: asyncio.Event) -> None:
        """A job's attempt asked for every 0.1 s, a fifth of the poll interval."""
        while not stop.is_set():
            spec = job_spec()
            async with pool.connection() as conn:
                await store.admit_job(conn, AdmittedJob(spec=spec, budget_micro_usd=0))
            scheduler.announce(QueuedAttempt(job_id=spec.job_id, attempt=1, images_needed=1, tier="stable",
                                             tenant_id=spec.tenant_id))
            await asyncio.sleep(0.1)

    scheduler = AttemptScheduler(pool=pool, engine=RoomForAll(), run=run, owner="router-b", max_queued=50, max_running=4,
                                 poll_interval_s=0.5, lease_s=LEASE_S)
    stop = asyncio.Event()
    scheduler.start()
    streaming = asyncio.create_task(stream(scheduler, stop))
    try:
        await asyncio.sleep(0.3)
        assert (await claim_row(pool, lapsing.job_id))["claimed_by"] == "router-gone"  # held at the first look
        await asyncio.wait_for(lapsed_taken.wait(), 15)  # its claim lapses at 1.5 s; the stream goes on
        assert not streaming.done() and len(ran) > 5  # taken while the others kept coming
    finally:
        stop.set()
        await streaming
        await scheduler.stop(grace_s=1)
    row = await claim_row(pool, lapsing.job_id)
    await pool.close()
    assert (row["claimed_by"], row["tries"], row["state"]) == ("router-b", 2, "done")
