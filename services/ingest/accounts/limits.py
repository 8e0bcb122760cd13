"""A plan's limits, enforced on the shared database so they hold across ingest replicas:
the request rate (GCRA, one row per tenant), and at submission the concurrent jobs and
images per day (counted under the tenant's row lock, so two replicas cannot both admit
the last slot). A refusal reserves nothing: the job is never written."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.contracts import FINAL_STATES
from services.common.db import Conn
from services.common.problems import Problem
from services.ingest.accounts.plans import Plan, PlanBook, RateDecision, rate_decision

# Seconds a client is told to wait when it has as many jobs running as its plan allows:
# a job takes about this long to finish.
CONCURRENCY_RETRY_AFTER_S = 10


# The UTC day of the database's clock, which every counter here reads.
TODAY = "(now() AT TIME ZONE 'UTC')::date"


async def take_request(conn: Conn, tenant_id: str, plan: Plan) -> RateDecision:
    """Count one request against the tenant's rate, and among the requests it was answered
    today; the row moves only when the request is allowed."""
    row = await (await conn.execute(
        "INSERT INTO rate_limits AS r (tenant_id, tat, day, requests)"
        f" VALUES (%(tenant)s, now() + make_interval(secs => %(t)s), {TODAY}, 1)"
        " ON CONFLICT (tenant_id) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => %(t)s),"
        " requests = CASE WHEN r.day = EXCLUDED.day THEN r.requests + 1 ELSE 1 END, day = EXCLUDED.day"
        " WHERE greatest(r.tat, now()) + make_interval(secs => %(t)s) <= now() + make_interval(secs => %(tol)s)"
        " RETURNING extract(epoch FROM tat - now())::float8 AS ahead",
        {"tenant": tenant_id, "t": plan.interval_s, "tol": plan.tolerance_s})).fetchone()
    if row is not None:
        return rate_decision(plan, True, row["ahead"])
    row = await (await conn.execute("SELECT extract(epoch FROM tat - now())::float8 AS ahead FROM rate_limits"
                                    " WHERE tenant_id = %s", [tenant_id])).fetchone()
    return rate_decision(plan, False, row["ahead"] if row else 0.0)


async def lock_plan(conn: Conn, tenant_id: str, plans: PlanBook) -> Plan:
    """The tenant's plan, its row locked until the transaction ends: submissions of one
    tenant are counted one after another, on every replica."""
    row = await (await conn.execute("SELECT plan FROM tenants WHERE id = %s FOR UPDATE", [tenant_id])).fetchone()
    return plans.get(row["plan"] if row else None)


@dataclass(frozen=True)
class Usage:
    """What the plan's limits count, as of `now`: jobs not yet final, and images asked for
    since `day_start` (midnight UTC) by jobs that were not rejected."""

    active: int
    images_today: int
    day_start: datetime

    @property
    def resets_at(self) -> datetime:
        return self.day_start + timedelta(days=1)


def day_start_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def count_usage(conn: Conn, tenant_id: str, now: datetime) -> Usage:
    """The counts the limits are checked against (and `GET /v1/usage` shows): one query."""
    day_start = day_start_of(now)
    row = await (await conn.execute(
        "SELECT count(*) FILTER (WHERE state <> ALL(%(final)s)) AS active,"
        " coalesce(sum((view->>'images')::int) FILTER (WHERE created_at >= %(day)s AND state <> 'rejected'), 0)"
        " AS images_today FROM jobs WHERE tenant_id = %(tenant)s"
        " AND (state <> ALL(%(final)s) OR created_at >= %(day)s)",
        {"final": sorted(FINAL_STATES), "day": day_start, "tenant": tenant_id})).fetchone()
    assert row is not None, "an aggregate gives one row"
    return Usage(row["active"], row["images_today"], day_start)


async def requests_today(conn: Conn, tenant_id: str) -> tuple[int, float]:
    """Requests answered today (UTC), and how far the rate's TAT runs ahead of now (seconds)."""
    row = await (await conn.execute(
        f"SELECT CASE WHEN day = {TODAY} THEN requests ELSE 0 END AS requests,"
        " extract(epoch FROM tat - now())::float8 AS ahead FROM rate_limits WHERE tenant_id = %s",
        [tenant_id])).fetchone()
    return (row["requests"], row["ahead"]) if row else (0, 0.0)


def check_order_size(plan: Plan, images: int, candidates: int | None) -> None:
    """Refuse (422, naming the limit) an order larger than the plan lets one job place."""
    if images > plan.images_per_job:
        raise Problem(422, "order-too-large", f"plan {plan.name!r} allows at most {plan.images_per_job} images per job;"
                      f" this job asks for {images}", plan=plan.name, limit=plan.images_per_job, field="images")
    if candidates is not None and candidates > plan.candidates_per_job:
        raise Problem(422, "order-too-large", f"plan {plan.name!r} allows at most {plan.candidates_per_job} candidates"
                      f" per job; this job asks for {candidates}", plan=plan.name, limit=plan.candidates_per_job,
                      field="candidates")


async def check_submission(conn: Conn, tenant_id: str, plan: Plan, images: int,
                           now: datetime) -> None:
    """Refuse (429, with the reason) a job that would pass the plan's concurrent jobs or
    images per day; call it under `lock_plan`."""
    usage = await count_usage(conn, tenant_id, now)
    if plan.concurrent_jobs is not None and usage.active >= plan.concurrent_jobs:
        raise Problem(429, "concurrent-jobs-limit",
                      f"plan {plan.name!r} allows {plan.concurrent_jobs} jobs in progress at once and"
                      f" {usage.active} are; submit again when one has finished",
                      {"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)}, retry_after=CONCURRENCY_RETRY_AFTER_S,
                      plan=plan.name, limit=plan.concurrent_jobs, active=usage.active)
    if plan.images_per_day is not None and usage.images_today + images > plan.images_per_day:
        retry_after = max(1, int((usage.resets_at - now).total_seconds()))
        raise Problem(429, "daily-images-limit",
                      f"plan {plan.name!r} allows {plan.images_per_day} images a day (UTC); {usage.images_today}"
                      f" were asked for today and this job asks for {images}",
                      {"Retry-After": str(retry_after)}, retry_after=retry_after,
                      plan=plan.name, limit=plan.images_per_day, used=usage.images_today)
