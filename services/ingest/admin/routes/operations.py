"""The ingest admin API: tenants' retention, and the calibration report.

`/admin/v1/tenants/{tenant}/retention`: how long a tenant's images are kept (RetentionSet,
which delivery's sweeper enforces) and its subjects after their last order (ingest's own
sweeper erases them), recorded in the audit trail.

`/admin/v1/calibration`: how the scorer's thresholds fare against what customers said.

`/admin/v1/margins`: per template, over jobs settled in a time range, what was charged
(credits and their worth) against what the providers cost, stage by stage.

For a tenant and a time range (jobs created in it), every delivered image is judged good
or bad: bad when its customer reported it and was refunded or given a retry token. Per
profile and dimension: images, bad ones, the pass rate, the bad ones it let through, and a
threshold suggestion, which the scorer computes on its internal API
(`POST /internal/v1/calibration`). It is served here because the job read model is where
scores, deliveries and reports meet. Behind the admin token; not part
of the public OpenAPI document.
"""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from services.common.admin import Operator, OperatorWith
from services.common.api import RequestModel, StorableText
from services.common.audit import Action, operator_actor, record_action
from services.common.contracts import RetentionSet
from services.common.problems import Problem
from services.common.quality.calibration import Judged
from services.common.quality.profiles import profile_names
from services.ingest import subjects
from services.ingest.deps import Runtime, Settings
from services.ingest.inputs import calibrate
from services.ingest.jobs import JobView, Period, settled_views, tenant_exists, views_with_outputs

router = APIRouter(prefix="/admin/v1", include_in_schema=False)
# Each route's operator scope; to the type checker, the Operator the dependency yields.
if TYPE_CHECKING:
    TenantsManager: TypeAlias = Operator
    CalibrationReader: TypeAlias = Operator
    BillingReader: TypeAlias = Operator
else:
    TenantsManager = OperatorWith("tenants:manage")
    CalibrationReader = OperatorWith("calibration:read")
    BillingReader = OperatorWith("billing:read")

BAD_OUTCOMES = {"refunded", "retry_token"}
DEFAULT_RANGE = timedelta(days=30)


class Retention(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"outputs_days": 30, "candidates_days": 7}]})

    outputs_days: int | None = Field(None, ge=1, le=36500, description="delivered images; null keeps them")
    candidates_days: int | None = Field(None, ge=1, le=36500,
                                        description="candidates (rejected ones at least the audit period)")
    subjects_days: int | None = Field(None, ge=1, le=36500,
                                      description="subjects' photos, embeddings and identities, after their last"
                                                  " order (those the tenant keeps aside); null: the platform's"
                                                  " default (30)")


class RetentionApplied(BaseModel):
    tenant_id: str
    outputs_days: int | None
    candidates_days: int | None
    subjects_days: int | None = None


@router.put("/tenants/{tenant_id}/retention", response_model=RetentionApplied)
async def set_retention(runtime: Runtime, operator: TenantsManager, body: Retention,
                        tenant_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]) -> RetentionApplied:
    async with runtime.pool.connection() as conn, conn.transaction():
        if not await tenant_exists(conn, tenant_id):
            raise Problem(status=404, slug="tenant-not-found", detail=f"no tenant {tenant_id!r}")
        await subjects.set_subject_retention(conn, tenant_id, days=body.subjects_days)
        await runtime.emit(conn, RetentionSet(tenant_id=tenant_id, outputs_days=body.outputs_days,
                                              candidates_days=body.candidates_days, subjects_days=body.subjects_days,
                                              set_at=datetime.now(UTC)))
        await record_action(runtime, conn, action=Action(actor=operator_actor(operator.name), name="retention.set", target=f"tenant:{tenant_id}",
                                                  tenant_id=tenant_id, details={"outputs_days": body.outputs_days,
                                                              "candidates_days": body.candidates_days}
                                                  | ({"subjects_days": body.subjects_days}
                                                     if body.subjects_days is not None else {})))
    runtime.relay.notify()
    return RetentionApplied(tenant_id=tenant_id, **body.model_dump())


@router.get("/calibration")
async def calibration_report(runtime: Runtime, settings: Settings, _: CalibrationReader, tenant_id: Annotated[StorableText, Query(max_length=63)],
                             since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    since, until = report_range(since, until)
    async with runtime.pool.connection() as conn:
        views = await views_with_outputs(conn, tenant_id, period=Period(since, until))
    judged = [image for view in views for image in delivered_images(view)]
    return {"tenant_id": tenant_id, "since": since, "until": until, "images": len(judged),
            "reported_bad": sum(image.bad for image in judged),
            "dimensions": await calibrate(settings, judged)}


@router.get("/margins")
async def margin_report(runtime: Runtime, _: BillingReader, since: datetime | None = None,
                        until: datetime | None = None) -> dict[str, Any]:
    since, until = report_range(since, until)
    async with runtime.pool.connection() as conn:
        views = await settled_views(conn, Period(since, until))
    return {"since": since, "until": until, "templates": template_margins(views)}


def template_margins(views: list[JobView]) -> list[dict[str, Any]]:
    """Per template: jobs, outputs delivered (a video job's seconds charged), credits charged and
    their worth, provider cost in total, per stage and per delivered output, and the margin.
    Every candidate made is paid to its provider, passing or not, so the cost per delivered
    output (a clip's especially) is what routing keeps low."""
    by_template: dict[str, dict[str, Any]] = {}
    for view in views:
        row = by_template.setdefault(view.template, {"template": view.template, "jobs": 0, "delivered": 0,
                                                     "seconds_charged": 0, "charged_credits": 0,
                                                     "revenue_micro_usd": 0, "provider_cost_micro_usd": 0,
                                                     "stage_cost_micro_usd": {}})
        row["jobs"] += 1
        row["delivered"] += len(view.outputs)
        row["seconds_charged"] += view.billing.seconds_charged or 0
        row["charged_credits"] += view.billing.charged or 0
        row["revenue_micro_usd"] += view.billing.revenue_micro_usd or 0
        row["provider_cost_micro_usd"] += view.provider_cost_micro_usd
        for stage in view.stages:
            costs = row["stage_cost_micro_usd"]
            costs[stage.stage] = costs.get(stage.stage, 0) + stage.cost_micro_usd
    for row in by_template.values():
        row["margin_micro_usd"] = row["revenue_micro_usd"] - row["provider_cost_micro_usd"]
        delivered = row["delivered"]
        row["provider_cost_per_delivered_micro_usd"] = row["provider_cost_micro_usd"] // delivered if delivered else None
    return sorted(by_template.values(), key=lambda row: row["template"])


def delivered_images(view: JobView) -> list[Judged]:
    """Each delivered image of a job with the scores it was selected on; output n is the
    n-th selected candidate."""
    profile = view.profile or (view.template if view.template in profile_names() else "generic")
    bad = {report.n for report in view.reports if report.outcome in BAD_OUTCOMES}
    scores = {score.index: score for score in view.scores}
    judged = []
    for output in view.outputs:
        score = scores.get(view.selected[output.n - 1]) if output.n <= len(view.selected) else None
        if score is not None:
            judged.append(Judged(profile=profile, bad=output.n in bad,
                                 dimensions={name: (d.value, d.passed) for name, d in score.dimensions.items()},
                                 threshold={name: d.threshold for name, d in score.dimensions.items()}))
    return judged


def report_range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """A report's [since, until): until defaults to now and since to DEFAULT_RANGE before it."""
    until = _aware(until) or datetime.now(UTC)
    since = _aware(since) or until - DEFAULT_RANGE
    if since >= until:
        raise Problem(status=422, slug="invalid-range", detail=f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    return since, until


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)
