"""`GET /v1/usage`: the tenant's plan, its limits and where it stands against each, counted
exactly as the limits count when they refuse a request or a job (services.ingest.accounts.limits, and the kernel's rate: deps.py).
`GET /v1/usage/attribution`: spend per end user or per metadata value, summed from receipts."""

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.common.problems import Problem
from services.ingest.accounts import LimitCounts, count_usage, tenant_plan
from services.ingest.deps import AccountReader, Plans, Runtime, Settings
from services.ingest.jobs import Period
from services.ingest.ledger_calls import call_ledger, pb
from services.ingest.plans import Plan, rate_decision
from services.ingest.receipts import attributed_totals, daily_totals
from services.ingest.settings import IngestSettings
from services.ingest.store import callers

router = APIRouter(prefix="/v1", tags=["account"])


class PlanLimits(BaseModel):
    name: str
    requests_per_s: float = Field(description="the request rate, with `burst` on top")
    burst: int
    concurrent_jobs: int | None = Field(description="jobs in progress at once; null: no limit")
    images_per_day: int | None = Field(description="images asked for per UTC day; null: no limit")
    priority: int = Field(description="queue priority: a larger share at every stage, twice per step")
    images_per_job: int = Field(description="the most images one job may ask for")
    candidates_per_job: int = Field(description="the most candidates one job may ask for")
    video_seconds_max: float = Field(description="the longest clip a video job may ask for, in seconds")
    video_resolution_max: str = Field(description="the sharpest resolution tier a clip may be asked at")
    evaluation_batch_images: int = Field(description="the most images one evaluation batch may hold")


class Limit(BaseModel):
    """One limit of the plan and where the tenant stands against it: a bar in the console."""

    name: str = Field(description="requests_burst, concurrent_jobs or images_per_day")
    used: int
    limit: int | None = Field(description="null: this plan sets no limit")
    remaining: int | None
    resets_at: datetime | None = Field(description="when `used` starts again from zero; null: as jobs finish")


class Day(BaseModel):
    """One UTC day of the tenant's history, summed from the receipts of the jobs that ended
    that day: a bar of the console's usage chart."""

    date: date
    jobs: int = Field(description="jobs that ended this day (each has a signed receipt)")
    images: int = Field(description="images those jobs delivered")
    credits: int = Field(description="credits those jobs were charged")


class Usage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tenant_id": "acme", "plan": {"name": "free", "requests_per_s": 5, "burst": 10, "concurrent_jobs": 3,
                                      "images_per_day": 100, "priority": 0, "images_per_job": 60,
                                      "candidates_per_job": 240, "video_seconds_max": 10,
                                      "video_resolution_max": "720p", "evaluation_batch_images": 100},
        "requests_today": 212, "images_today": 40, "jobs_in_progress": 2, "credits_held": 30,
        "resets_at": "2026-11-03T00:00:00Z",
        "limits": [{"name": "requests_burst", "used": 1, "limit": 10, "remaining": 9, "resets_at": None},
                   {"name": "concurrent_jobs", "used": 2, "limit": 3, "remaining": 1, "resets_at": None},
                   {"name": "images_per_day", "used": 40, "limit": 100, "remaining": 60,
                    "resets_at": "2026-11-03T00:00:00Z"}],
        "daily": [{"date": "2026-11-01", "jobs": 12, "images": 30, "credits": 300},
                  {"date": "2026-11-02", "jobs": 15, "images": 36, "credits": 360}]}]})

    tenant_id: str
    plan: PlanLimits
    requests_today: int = Field(description="requests answered today (UTC), this one included")
    images_today: int = Field(description="images asked for today (UTC) by jobs not rejected: the daily limit's count")
    jobs_in_progress: int = Field(description="jobs not yet final: the concurrent-jobs limit's count")
    credits_held: int | None = Field(description="credits the ledger holds for jobs in progress; null when it does"
                                                 " not answer")
    resets_at: datetime = Field(description="midnight UTC, when the daily counters start again")
    limits: list[Limit]
    daily: list[Day] = Field(description="the last `days` UTC days, oldest first, today last; days without a"
                                         " finished job are zeros")


def limit_bars(plan: Plan, usage: LimitCounts, *, burst_remaining: int) -> list[Limit]:
    def bar(name: str, used: int, *, limit: int | None) -> Limit:
        return Limit(name=name, used=used, limit=limit, remaining=None if limit is None else max(0, limit - used),
                     resets_at=None)

    daily = bar("images_per_day", usage.images_today, limit=plan.images_per_day)
    return [bar("requests_burst", plan.burst - burst_remaining, limit=plan.burst),
            bar("concurrent_jobs", usage.active, limit=plan.concurrent_jobs),
            daily.model_copy(update={"resets_at": usage.resets_at})]


async def credits_held(request: Request, tenant: str, *, settings: IngestSettings) -> int | None:
    try:
        balance = await call_ledger(request.app.state.ledger_stub.GetBalance, pb.GetBalanceRequest(tenant_id=tenant),
                                    timeout_s=settings.ledger_grpc_timeout_s)
    except Problem:  # the ledger is away: the limits, which ingest counts, are still shown
        return None
    pending: int = balance.pending if balance is not None else 0
    return pending


def days_of(totals: dict[date, dict[str, int]], first: date, *, days: int) -> list[Day]:
    """`days` days from `first`, a day without a finished job as zeros."""
    return [Day(date=day, **totals.get(day, {"jobs": 0, "images": 0, "credits": 0}))
            for day in (first + timedelta(days=n) for n in range(days))]


@router.get("/usage", response_model=Usage)
async def usage(request: Request, tenant: AccountReader, runtime: Runtime, plans: Plans, settings: Settings,
                days: Annotated[int, Query(ge=1, le=366, description="how many UTC days of history, today"
                                                                      " included")] = 30) -> Usage:
    """Your plan, its limits, and where you stand against each: requests and images today,
    jobs in progress, credits held, and when the daily counters reset. The counts are those
    the limits check (a job is refused with 429 exactly when it would pass one). `daily`:
    the jobs that ended, images delivered and credits charged on each of the last `days` UTC
    days, summed from your signed receipts."""
    now = datetime.now(UTC)
    first_day = now.date() - timedelta(days=days - 1)
    async with runtime.pool.connection() as conn:
        plan_name = await tenant_plan(conn, tenant)
        assert plan_name is not None, "the caller's key belongs to a tenant"
        plan = plans.get(plan_name)
        counted = await count_usage(conn, tenant, now=now)
        requests, ahead_s = await callers.requests_today(conn, tenant)
        totals = await daily_totals(conn, tenant, since=datetime.combine(first_day, time(), UTC))
    held = await credits_held(request, tenant, settings=settings)
    burst_remaining = rate_decision(plan, True, ahead_s=ahead_s).remaining
    return Usage(tenant_id=tenant, plan=PlanLimits(**plan.model_dump()), requests_today=requests,
                 images_today=counted.images_today, jobs_in_progress=counted.active, credits_held=held,
                 resets_at=counted.resets_at, limits=limit_bars(plan, counted, burst_remaining=burst_remaining),
                 daily=days_of(totals, first_day, days=days))


class AttributedGroup(BaseModel):
    value: str | None = Field(description="the end user, or the metadata key's value; null: jobs without one")
    jobs: int = Field(description="jobs that ended in the window (each has a signed receipt)")
    images: int = Field(description="images those jobs delivered")
    credits: int = Field(description="credits those jobs were charged")


class Attribution(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "group_by": "end_user", "since": "2026-11-01", "until": "2026-11-03",
        "groups": [{"value": "customer-42", "jobs": 3, "images": 6, "credits": 60},
                   {"value": None, "jobs": 1, "images": 1, "credits": 10}],
        "total": {"value": None, "jobs": 4, "images": 7, "credits": 70}}]})

    group_by: str
    since: date = Field(description="the first UTC day counted")
    until: date = Field(description="the last UTC day counted")
    groups: list[AttributedGroup] = Field(description="most credits first")
    total: AttributedGroup = Field(description="every group summed (value null)")


GROUP_BY = r"^(end_user|metadata\.[A-Za-z0-9_.\-]{1,40})$"
CSV_COLUMNS = ("value", "jobs", "images", "credits")


def as_csv(attribution: Attribution) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow((attribution.group_by, *CSV_COLUMNS[1:]))
    for group in attribution.groups:
        writer.writerow((group.value if group.value is not None else "", group.jobs, group.images, group.credits))
    return out.getvalue()


@router.get("/usage/attribution", response_model=Attribution, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"},
                                   "example": "end_user,jobs,images,credits\r\ncustomer-42,3,6,60\r\n"}}},
    422: {"description": "Unprocessable content"}})
async def usage_attribution(
        tenant: AccountReader, runtime: Runtime,
        group_by: Annotated[str, Query(pattern=GROUP_BY, max_length=49, examples=["end_user", "metadata.campaign"],
                                       description="`end_user`, or `metadata.<key>` for one of the jobs'"
                                                   " metadata keys")] = "end_user",
        days: Annotated[int, Query(ge=1, le=366, description="UTC days counted, today included")] = 30,
        format: Annotated[str, Query(pattern="^(json|csv)$", description="`csv` for a CSV export")] = "json",
) -> Attribution | Response:
    """Spend attributed to your own customers and labels: the jobs that ended in the last
    `days` UTC days, the images they delivered and the credits they were charged, grouped by
    the job's `end_user` or by the value of one `metadata` key, summed from your signed
    receipts (so each group is the sum of its jobs' receipts). `format=csv` exports the same."""
    today = datetime.now(UTC).date()
    since = today - timedelta(days=days - 1)
    metadata_key = None if group_by == "end_user" else group_by.removeprefix("metadata.")
    async with runtime.pool.connection() as conn:
        period = Period(datetime.combine(since, time(), UTC), datetime.combine(today + timedelta(days=1), time(), UTC))
        rows = await attributed_totals(conn, tenant, period=period, metadata_key=metadata_key)
    groups = [AttributedGroup(**row) for row in rows]
    total = AttributedGroup(value=None, jobs=sum(g.jobs for g in groups), images=sum(g.images for g in groups),
                            credits=sum(g.credits for g in groups))
    attribution = Attribution(group_by=group_by, since=since, until=today, groups=groups, total=total)
    if format == "csv":
        return Response(as_csv(attribution), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="usage-{group_by}-{since}-{today}.csv"'})
    return attribution
