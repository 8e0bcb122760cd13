"""The router service under load, on the real broker and PostgreSQL, with one slow stub
provider: a small tenant is not starved by a large one, and when the provider is
saturated the router stops consuming instead of queueing everything in memory."""

import asyncio

import pytest

from services.common.contracts import CandidatesGenerated
from tests.router.market import Behaviour
from tests.router.service import credits_reserved, job_spec, publish, router_settings, running_router, until
from tests.router.stubs import stub_provider

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes


def one_slow_provider(stub, concurrency: int = 1) -> dict:
    return {"only": stub_provider(stub, price=1_000, concurrency=concurrency, overall_s=10.0, latency_s=0.3)}


async def router_state(router, sql: str, *params):
    async with router.runtime.pool.connection() as conn:
        return await (await conn.execute(sql, params)).fetchall()


class Waiter:
    """`until` wants a topic to read while it waits; these tests only watch the database."""

    async def read_some(self) -> None:
        await asyncio.sleep(0.2)


async def test_a_small_tenant_is_served_before_a_large_backlog_is(endpoints, object_store, tmp_path, fal):
    fal.market.reset(Behaviour(latency_s=0.3))
    settings = router_settings(endpoints, tmp_path, one_slow_provider(fal), max_concurrent_attempts=1)
    large = [job_spec(tenant_id="tenant-a") for _ in range(400)]
    small = [job_spec(tenant_id="tenant-b") for _ in range(4)]
    await publish(settings, *(credits_reserved(spec) for spec in large + small))
    async with running_router(settings) as router:

        async def small_tenant_done() -> bool:
            rows = await router_state(router, "SELECT count(*) AS n FROM attempts WHERE tenant_id = 'tenant-b'")
            return rows[0]["n"] == 4

        await until(small_tenant_done, Waiter(), timeout_s=120)
        announced = [row["record_key"].decode() for row in await router_state(
            router, "SELECT record_key FROM outbox WHERE event_type = %s ORDER BY seq", CandidatesGenerated.event_type)]
    small_ids = {str(spec.job_id) for spec in small}
    last_of_small = max(i for i, job in enumerate(announced) if job in small_ids)
    # The bar (B's 4 before A's 100th of 1,000), at a scale that runs in seconds.
    assert last_of_small - 3 < 40, f"tenant-b's 4 jobs finished after {last_of_small - 3} of tenant-a's"


async def test_a_saturated_provider_pauses_consumption(endpoints, object_store, tmp_path, fal):
    fal.market.reset(Behaviour(latency_s=0.3))
    settings = router_settings(endpoints, tmp_path, one_slow_provider(fal), max_concurrent_attempts=1,
                               max_queued_attempts=2)
    jobs = [job_spec(tenant_id=f"tenant-{n}") for n in range(12)]
    await publish(settings, *(credits_reserved(spec) for spec in jobs))
    backlog = []
    async with running_router(settings) as router:

        async def all_done() -> bool:
            [row] = await router_state(router, "SELECT (SELECT count(*) FROM inbox) AS consumed,"
                                               " (SELECT count(*) FROM attempts) AS done")
            backlog.append(row["consumed"] - row["done"])
            return row["done"] == len(jobs)

        await until(all_done, Waiter(), timeout_s=120)
    # Consumed but not yet generated: one running, one more started for a tenant with none running
    # (it waits for its turn at the provider), two queued, and no more.
    assert max(backlog) <= 4, backlog
    assert sum(fal.market.generated_candidates().values()) == 2 * len(jobs)
