"""A plan's limits on the real database: the GCRA row allows a burst, then one request
per interval, and says when to retry; submissions count the jobs in progress and the
images asked for today (UTC), leaving out what is final or rejected or was yesterday."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common.problems import Problem
from services.ingest.accounts import limits
from services.ingest.accounts.tenants import Tenant, create_tenant, tenants_transaction
from services.ingest.deps import take_request
from services.ingest.plans import Plan
from services.ingest.settings import IngestSettings

PLAN = Plan(name="small", requests_per_s=5, burst=3, concurrent_jobs=2, images_per_day=20, priority=0)
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def settings(endpoints) -> IngestSettings:
    return endpoints.settings(IngestSettings, environment="test", schema_name=f"limits_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def tenant(settings) -> str:
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_tenant(settings, Tenant(tenant_id)))
    return tenant_id


def run_in_transaction(settings, work):
    async def go():
        async with tenants_transaction(settings) as conn:
            return await work(conn)
    return asyncio.run(go())


def test_a_burst_then_one_request_per_interval(settings, tenant):
    async def burst(conn):
        return [await take_request(conn, tenant, plan=PLAN) for _ in range(4)]

    decisions = run_in_transaction(settings, burst)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == 1 and decisions[3].headers(PLAN)["Retry-After"] == "1"

    async def later(conn):  # 0.4 s after the burst was spent: two intervals of 0.2 s have passed, two more fit
        await conn.execute("UPDATE rate_limits SET tat = now() + interval '0.2 seconds' WHERE tenant_id = %s", [tenant])
        return [(await take_request(conn, tenant, plan=PLAN)).allowed for _ in range(3)]

    assert run_in_transaction(settings, later) == [True, True, False]


def add_job(settings, tenant: str, state: str, images: int, created_at: datetime) -> None:
    async def insert(conn):
        await conn.execute(
            "INSERT INTO jobs (id, tenant_id, state, template, view, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'generic', %s, %s, %s)",
            [uuid.uuid4(), tenant, state, json.dumps({"images": images}), created_at, created_at])
    run_in_transaction(settings, insert)


def refusal(settings, tenant: str, images: int) -> Problem | None:
    async def check(conn):
        try:
            plan = await limits.lock_plan(conn, tenant, plans=_Book())
            assert plan.name == "free"  # the tenant's own plan, by name, from the book
            limits.check_submission(PLAN, await limits.count_usage(conn, tenant, now=NOW), images=images)
        except Problem as problem:
            return problem
        return None
    return run_in_transaction(settings, check)


class _Book:
    def get(self, name):
        return PLAN.model_copy(update={"name": name})


def test_jobs_in_progress_count_and_final_ones_do_not(settings, tenant):
    add_job(settings, tenant, "succeeded", 1, NOW)
    add_job(settings, tenant, "canceled", 1, NOW)
    add_job(settings, tenant, "admitted", 1, NOW)
    assert refusal(settings, tenant, 1) is None
    add_job(settings, tenant, "scoring", 1, NOW - timedelta(days=3))  # old, but still in progress
    problem = refusal(settings, tenant, 1)
    assert (problem.status, problem.slug, problem.extra["active"]) == (429, "concurrent-jobs-limit", 2)
    assert problem.headers["Retry-After"] == str(limits.CONCURRENCY_RETRY_AFTER_S)


def test_images_per_day_count_today_only_and_not_rejected_jobs(settings, tenant):
    today = NOW.replace(hour=0, minute=0, second=1, microsecond=0)
    add_job(settings, tenant, "succeeded", 12, today)
    add_job(settings, tenant, "rejected", 16, today)
    add_job(settings, tenant, "succeeded", 16, today - timedelta(seconds=2))  # yesterday, UTC
    assert refusal(settings, tenant, 8) is None
    problem = refusal(settings, tenant, 9)
    assert (problem.status, problem.slug, problem.extra["used"]) == (429, "daily-images-limit", 12)
    tomorrow = today.replace(second=0) + timedelta(days=1)
    assert 0 < int(problem.headers["Retry-After"]) <= (tomorrow - NOW).total_seconds() + 1
