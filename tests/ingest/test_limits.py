"""A plan's limits on the real database: the GCRA row, taken in the statement that finds the
caller's key, allows a burst of the caller's plan, then one request per interval, and says when
to retry (a tenant on a plan no longer offered is held to the default's); submissions count the jobs in progress and the
images asked for today (UTC), leaving out what is final or rejected or was yesterday."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common.db import COMMON_MIGRATIONS, migrate
from services.common.problems import Problem
from services.ingest.accounts import limits
from services.ingest.accounts.tenants import Tenant, create_tenant, tenants_transaction
from services.ingest.plans import Plan, PlanBook, RateDecision, rate_decision
from services.ingest.session_auth import hash_api_key
from services.ingest.settings import IngestSettings
from services.ingest.store import callers

PLAN = Plan(name="small", requests_per_s=5, burst=3, concurrent_jobs=2, images_per_day=20, priority=0)
# The default is far faster than PLAN: a burst of PLAN's size shows which plan held the caller.
BOOK = PlanBook(default="large", plans={"small": PLAN, "large": PLAN.model_copy(update={"requests_per_s": 100, "burst": 50})})
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


def keyed_tenant(settings, plan: str) -> tuple[str, str]:
    """A new tenant on `plan` (one BOOK offers, or not), and its API key."""
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(create_tenant(settings, Tenant(tenant_id)))
    run_in_transaction(settings, lambda conn: conn.execute("UPDATE tenants SET plan = %s WHERE id = %s", [plan, tenant_id]))
    return tenant_id, key


async def take_request(conn, key: str) -> RateDecision:
    """A request of the key's, as ingest takes it: the key found and the request taken in one
    statement."""
    row = await callers.key_caller(conn, hash_api_key(key), rates=BOOK.rates())
    return rate_decision(BOOK.get(row["plan"]), row["allowed"], ahead_s=row["ahead"])


def test_a_burst_then_one_request_per_interval(settings):
    tenant, key = keyed_tenant(settings, "small")

    async def burst(conn):
        return [await take_request(conn, key) for _ in range(4)]

    decisions = run_in_transaction(settings, burst)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == 1 and decisions[3].headers(PLAN)["Retry-After"] == "1"

    async def later(conn):  # 0.4 s after the burst was spent: two intervals of 0.2 s have passed, two more fit
        await conn.execute("UPDATE rate_limits SET tat = now() + interval '0.2 seconds' WHERE tenant_id = %s", [tenant])
        return [(await take_request(conn, key)).allowed for _ in range(3)]

    assert run_in_transaction(settings, later) == [True, True, False]


def test_a_tenant_on_a_plan_no_longer_offered_is_held_to_the_default(settings):
    tenant, key = keyed_tenant(settings, "retired")

    async def burst(conn):
        return [(await take_request(conn, key)).allowed for _ in range(5)]

    assert run_in_transaction(settings, burst) == [True] * 5  # the default's burst of 50, not PLAN's 3


def test_a_key_that_is_not_live_takes_no_request(settings):
    tenant, key = keyed_tenant(settings, "small")

    async def unknown(conn):
        row = await callers.key_caller(conn, hash_api_key(key + "x"), rates=BOOK.rates())
        return row, await callers.requests_today(conn, tenant)

    row, (requests, _) = run_in_transaction(settings, unknown)
    assert row is None and requests == 0


def add_job(settings, tenant: str, state: str, images: int, created_at: datetime) -> None:
    async def insert(conn):
        await conn.execute(
            "INSERT INTO jobs (id, tenant_id, state, template, view, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'generic', %s, %s, %s)",
            [uuid.uuid4(), tenant, state, json.dumps({"images": images}), created_at, created_at])
    run_in_transaction(settings, insert)


def set_state(settings, tenant: str, state: str) -> None:
    """Every job of the tenant's moved to `state`, as the read model moves them."""
    run_in_transaction(settings, lambda conn: conn.execute("UPDATE jobs SET state = %s WHERE tenant_id = %s", [state, tenant]))


def delete_jobs(settings, tenant: str) -> None:
    run_in_transaction(settings, lambda conn: conn.execute("DELETE FROM jobs WHERE tenant_id = %s", [tenant]))


def refusal(settings, tenant: str, images: int, *, now: datetime = NOW) -> Problem | None:
    async def check(conn):
        try:
            plan = await limits.lock_plan(conn, tenant, plans=_Book())
            assert plan.name == "free"  # the tenant's own plan, by name, from the book
            limits.check_submission(PLAN, await limits.count_usage(conn, tenant, now=now), images=images)
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


def test_the_day_count_follows_a_job_rejected_after_it_was_counted_and_one_deleted(settings, tenant):
    """The images of the day are kept as the jobs are written (a row a day): a job counted when
    placed and rejected later (the ledger refused it) gives its images back, a job taken back
    from rejection counts again, and a job deleted counts no more."""
    today = NOW.replace(hour=0, minute=0, second=1, microsecond=0)
    add_job(settings, tenant, "submitted", 15, today)
    assert refusal(settings, tenant, 6).extra["used"] == 15
    set_state(settings, tenant, "rejected")
    assert refusal(settings, tenant, 20) is None
    set_state(settings, tenant, "admitted")
    assert refusal(settings, tenant, 6).extra["used"] == 15
    set_state(settings, tenant, "generating")  # no move into or out of rejection: counted once
    assert refusal(settings, tenant, 6).extra["used"] == 15
    delete_jobs(settings, tenant)
    assert refusal(settings, tenant, 20) is None


def test_the_day_count_starts_from_the_jobs_written_before_it_was_kept(settings, tenant):
    """Migration 0033 counts the jobs already written on the days a submission may read (today,
    and yesterday for one counted at midnight): a release upgraded at noon refuses what the day's
    earlier jobs leave no room for. Earlier days are not counted; a rejected job not at all.
    Its days are the database's when it runs, so this test's are taken when it runs too, not
    when the module was loaded (a run that crosses midnight)."""
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=1, microsecond=0)
    add_job(settings, tenant, "succeeded", 5, today)
    add_job(settings, tenant, "rejected", 4, today)
    add_job(settings, tenant, "succeeded", 3, today - timedelta(seconds=2))  # yesterday
    add_job(settings, tenant, "succeeded", 7, today - timedelta(days=3))

    async def as_before_the_migration(conn):  # the counter gone, the migration not applied
        await conn.execute("DROP TABLE daily_images")
        await conn.execute("DROP TRIGGER daily_images_on_write ON jobs; DROP TRIGGER daily_images_on_rejection ON jobs;"
                           " DROP FUNCTION daily_images_counted()")
        await conn.execute("DELETE FROM schema_migrations WHERE version = 'services.ingest:0033_daily_images'")
    run_in_transaction(settings, as_before_the_migration)
    asyncio.run(migrate(settings.database_url.get_secret_value(), settings.schema_name, packages=[COMMON_MIGRATIONS, "services.ingest"]))

    async def days(conn):
        rows = await (await conn.execute("SELECT day, images FROM daily_images WHERE tenant_id = %s ORDER BY day",
                                         [tenant])).fetchall()
        return [(row["day"], row["images"]) for row in rows]
    assert run_in_transaction(settings, days) == [((today - timedelta(days=1)).date(), 3), (today.date(), 5)]
    assert refusal(settings, tenant, 16, now=now).extra["used"] == 5
