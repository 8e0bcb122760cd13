"""A plan's limits, enforced on the shared database so they hold across ingest replicas:
the request rate (GCRA, one row per tenant), and at submission the concurrent jobs and
images per day (counted under the tenant's row lock, so two replicas cannot both admit
the last slot). A refusal reserves nothing: the job is never written."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.db import Conn
from services.common.problems import Problem
from services.ingest.accounts import store
from services.ingest.plans import Plan, PlanBook

# Seconds a client is told to wait when it has as many jobs running as its plan allows:
# a job takes about this long to finish.
CONCURRENCY_RETRY_AFTER_S = 10


async def lock_plan(conn: Conn, tenant_id: str, *, plans: PlanBook) -> Plan:
    """The tenant's plan, its row locked until the transaction ends: submissions of one
    tenant are counted one after another, on every replica."""
    return plans.get(await store.lock_tenant_plan(conn, tenant_id))


@dataclass(frozen=True, kw_only=True)
class LimitCounts:
    """What the plan's limits count, as of `counted_at`: jobs not yet final, and images asked
    for since `day_start` (midnight UTC) by jobs that were not rejected."""

    active: int
    images_today: int
    day_start: datetime
    counted_at: datetime

    @property
    def resets_at(self) -> datetime:
        return self.day_start + timedelta(days=1)


def day_start_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def count_usage(conn: Conn, tenant_id: str, *, now: datetime) -> LimitCounts:
    """The counts the limits are checked against (and `GET /v1/usage` shows): one query."""
    day_start = day_start_of(now)
    active, images_today = await store.count_usage(conn, tenant_id, day_start=day_start)
    return LimitCounts(active=active, images_today=images_today, day_start=day_start, counted_at=now)


def check_order_size(plan: Plan, images: int, *, candidates: int | None) -> None:
    """Refuse (422, naming the limit) an order larger than the plan lets one job place."""
    if images > plan.images_per_job:
        raise Problem(status=422, slug="order-too-large", detail=f"plan {plan.name!r} allows at most {plan.images_per_job} images per job;"
                      f" this job asks for {images}",
                      extra={"plan": plan.name, "limit": plan.images_per_job, "field": "images"})
    if candidates is not None and candidates > plan.candidates_per_job:
        raise Problem(status=422, slug="order-too-large", detail=f"plan {plan.name!r} allows at most {plan.candidates_per_job} candidates"
                      f" per job; this job asks for {candidates}", extra={"plan": plan.name, "limit": plan.candidates_per_job,
                                                                          "field": "candidates"})


def check_submission(plan: Plan, usage: LimitCounts, *, images: int) -> None:
    """Refuse (429, with the reason) a job of `images` that would pass the plan's concurrent
    jobs or images per day; count the usage under `lock_plan`."""
    if plan.concurrent_jobs is not None and usage.active >= plan.concurrent_jobs:
        raise Problem(status=429, slug="concurrent-jobs-limit",
                      detail=f"plan {plan.name!r} allows {plan.concurrent_jobs} jobs in progress at once and"
                      f" {usage.active} are; submit again when one has finished",
                      headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)}, extra={"retry_after": CONCURRENCY_RETRY_AFTER_S,
                      "plan": plan.name, "limit": plan.concurrent_jobs, "active": usage.active})
    if plan.images_per_day is not None and usage.images_today + images > plan.images_per_day:
        retry_after = max(1, int((usage.resets_at - usage.counted_at).total_seconds()))
        raise Problem(status=429, slug="daily-images-limit",
                      detail=f"plan {plan.name!r} allows {plan.images_per_day} images a day (UTC); {usage.images_today}"
                      f" were asked for today and this job asks for {images}",
                      headers={"Retry-After": str(retry_after)}, extra={"retry_after": retry_after,
                      "plan": plan.name, "limit": plan.images_per_day, "used": usage.images_today})
