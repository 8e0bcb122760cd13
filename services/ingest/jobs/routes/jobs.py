"""`/v1/jobs`: submit a job and follow it to its links."""

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems, telemetry
from services.common.api import RequestModel, Timestamp
from services.common.audit import Action, record_action
from services.common.bus import erase_prompt_from_outbox
from services.common.contracts import JobErased, OutputReported
from services.common.db import Conn
from services.common.problems import Problem
from services.common.sealing import JobField, open_sealed
from services.common.storage import ObjectStore
from services.ingest import data_keys
from services.ingest.accounts import PromptScreen, Submitter
from services.ingest.deps import (
    JobsReader,
    JobsSubmitter,
    JobsWriter,
    Objects,
    Plans,
    Runtime,
    Settings,
)
from services.ingest.inputs import Screening
from services.ingest.jobs import domain, projection, store, submission
from services.ingest.jobs.clip_makers import Router
from services.ingest.jobs.examples import (
    CANCELED_EXAMPLE,
    ERASURE_EXAMPLE,
    JOB_EXAMPLE,
    JOB_PAGE_EXAMPLE,
    REPORT_EXAMPLE,
)
from services.ingest.jobs.job_lookup import parse_job_id, refuse_missing
from services.ingest.jobs.submission import JobRequest
from services.ingest.jobs.view import Billing, Failure, JobView
from services.ingest.key_encryption import Keyring, keyring_of
from services.ingest.ledger_calls import Ledger


async def with_prompt(conn: Conn, view: JobView, *, keyring: Keyring) -> JobView:
    """The job's view with its prompt opened, for its tenant: the read model keeps it sealed
    (JobView.stored_json); an erased job's reads as erased."""
    if not view.prompt_sealed or view.sealed_prompt is None:
        return view
    key = await data_keys.key_of(conn, view.id, keyring=keyring)
    return view.model_copy(update={"prompt": open_sealed(key, JobField(view.id, "prompt"), sealed=view.sealed_prompt)})


router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
log = logging.getLogger(__name__)


class JobAccepted(BaseModel):
    id: UUID
    state: str
    created_at: datetime
    url: str


REFUSED_AT_THE_DOOR = problems.shown(
    402, "Payment required: the account owes credits (`account-in-debt`: `owed`, and `settle`, how to pay it), or the"
         " API key's spend cap has no room for the job (`key-cap-reached`: `cap`, `cap_credits`, `spent`, `cost`,"
         " `api_key_id`)",
    {"type": "/problems/account-in-debt", "instance": "/v1/jobs", "owed": 120, "settle": "POST /v1/billing/checkout",
     "detail": "the account owes 120 credits (a refund or a lost dispute took back credits already spent); no job is"
               " accepted until it is paid: buy credits (POST /v1/billing/checkout, or the console's billing page),"
               " which pay the debt first"},
    {"type": "/problems/key-cap-reached", "instance": "/v1/jobs", "cap": "daily", "cap_credits": 500, "spent": 480,
     "cost": 40, "api_key_id": "2c1f6b0e-8a44-4c39-9d0e-51c7a2f9e6b3",
     "detail": "API key 2c1f6b0e-8a44-4c39-9d0e-51c7a2f9e6b3 has a daily spend cap of 500 credits: 480 spent today,"
               " and the job costs 40; raise the cap (PUT /v1/api-keys/2c1f6b0e-8a44-4c39-9d0e-51c7a2f9e6b3/caps)"
               " or wait"})


@router.post("", status_code=202, response_model=JobAccepted,
             responses=problems.responses(413, 415, 422, 503) | REFUSED_AT_THE_DOOR)
async def submit_job(body: JobRequest, response: Response, caller: JobsSubmitter, runtime: Runtime,
                     settings: Settings, objects: Objects, plans: Plans, gate: Screening, ledger: Ledger,
                     prompts: PromptScreen, routing: Router,
                     idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
                     cancel_after: Annotated[str | None, Header(max_length=32)] = None) -> JobAccepted:
    """Accept a job (202); it moves on asynchronously. Retries with the same `Idempotency-Key`
    and the same request (the JSON parsed, so spacing and key order do not matter) within
    24 hours return the first job instead of submitting another. A profile, quality rules
    or reference photo the scorer could not use are refused here (422), and so is an input photo
    (`input_upload` or `reference_image`) that fails its template's input checks, with a
    sentence per failed check saying what to change (422 `input-guidance`). The job's deadline is
    `deadline_s`, or the `Cancel-After` header (`90`, `90s`, `5m`, `1h30m`), or its tier's.
    A job beyond your plan's jobs in progress or images per day is refused (429, with the
    reason and `Retry-After`) and nothing is held; an accepted job is never dropped by a limit.
    While the account owes credits (a refund or a lost dispute took back credits already spent:
    `owed` in `GET /v1/account`) a job is refused (402 `account-in-debt`, naming `owed` and how
    to settle it: buy credits, which pay the debt first). A job the API key's spend cap (daily or
    monthly, `PUT /v1/api-keys/{id}/caps`) has no room for is refused (402 `key-cap-reached`,
    naming the cap). Under a race the ledger decides when it holds the credits, and the job is
    then rejected (`account_in_debt`, `key_cap_reached`).
    The prompt is screened first, before anything is held or generated: the platform's rules,
    yours (`PUT /v1/account/prompt-screening`), then the hosted moderation provider where one is
    configured; a refused prompt gets 422 `prompt-refused` naming the category, and while the
    provider is down your policy decides (fail open, or 503 `prompt-screening-unavailable`).

    Video clips (`video`; `images` clips delivered out of `candidates` made) are refused at once
    (422) when the template makes none (`video-not-allowed`, field `video`) or must
    (`video-required`), when a clip is longer or sharper than your plan allows
    (`video-not-allowed` naming `limit`, `plan` and `field`: `video_seconds_max`,
    `video_resolution_max`; or the platform's 60 seconds), when no video model on the platform
    can make it (`no-video-model`, with each provider's reason), and when `video.first_frame`
    names no image you were delivered (`unknown-first-frame`); a first frame is checked like an
    input photo (`input-guidance`). A video job is charged by the delivered second (each clip's
    length rounded up, at most `duration_s`)."""
    telemetry.bind_prompt(body.prompt)
    await prompts.check(runtime.pool, caller.tenant_id, prompt=body.prompt)
    intake = submission.JobAdmission(runtime=runtime, settings=settings, objects=objects, plans=plans, gate=gate, ledger=ledger, router=routing)
    view = await intake.submit(body, tenant_id=caller.tenant_id, idempotency_key=idempotency_key, cancel_after=cancel_after,
                               submitter=Submitter(caller.key_id, caller.caps))
    response.headers["Location"] = f"/v1/jobs/{view.id}"
    log.info("accepted job %s: %d image(s) of template %s", view.id, view.images, view.template,
             extra={"prompt": body.prompt})
    return JobAccepted(id=view.id, state=view.state, created_at=view.created_at, url=f"/v1/jobs/{view.id}")


def fresh_links(view: domain.JobView, objects: ObjectStore, *, ttl_s: int) -> domain.JobView:
    """Links are signed on every read, so a client never gets one that has already expired."""
    outputs = [o.model_copy(update=objects.signed_links(o.key, o.thumbnail_key, ttl_s=ttl_s)) for o in view.outputs]
    return view.model_copy(update={"outputs": outputs})


class JobSummary(BaseModel):
    id: UUID
    state: domain.State
    template: str
    images: int
    delivered: int
    created_at: datetime
    updated_at: datetime
    failure: Failure | None
    billing: Billing
    url: str


class JobPage(BaseModel):
    data: list[JobSummary]
    next: str | None = Field(description="cursor of the next (older) page; null on the last page")


def summary(view: domain.JobView) -> JobSummary:
    return JobSummary(id=view.id, state=view.state, template=view.template, images=view.images,
                      delivered=len(view.outputs), created_at=view.created_at, updated_at=view.updated_at,
                      failure=view.failure, billing=view.billing, url=f"/v1/jobs/{view.id}")


@router.get("", response_model=JobPage, responses={200: {"content": {"application/json": {"example": JOB_PAGE_EXAMPLE}}}})
async def list_jobs(tenant: JobsReader, runtime: Runtime,
                    limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    cursor: Annotated[str | None, Query(max_length=200)] = None,
                    state: domain.State | None = None,
                    template: Annotated[str | None, Query(max_length=64)] = None,
                    created_after: Timestamp | None = None, created_before: Timestamp | None = None) -> JobPage:
    """Your jobs, newest first, `limit` per page; pass the body's `next` as `cursor` for the
    next page. Jobs submitted while you page appear on no later page, so a walk through the
    pages sees every job once."""
    try:
        after = store.Cursor.decode(cursor) if cursor else None
    except store.InvalidCursor as error:
        raise Problem(status=422, slug="invalid-cursor", detail=str(error)) from None
    where = store.JobFilter(state=state, template=template, created_after=created_after, created_before=created_before)
    async with runtime.pool.connection() as conn:
        views, more = await store.list_views(conn, tenant, where=where, page=store.Page(after, limit))
    return JobPage(data=[summary(v) for v in views], next=more.encode() if more else None)


@router.get("/{job_id}", response_model=domain.JobView,
            responses=problems.responses(404, 410) | {200: {"content": {"application/json": {"example": JOB_EXAMPLE}}}})
async def get_job(job_id: str, tenant: JobsReader, runtime: Runtime, settings: Settings,
                  objects: Objects) -> domain.JobView:
    async with runtime.pool.connection() as conn:
        view = await store.read_view(conn, parse_job_id(job_id), tenant_id=tenant)
        if view is None:
            await refuse_missing(conn, job_id, tenant=tenant)
        view = await with_prompt(conn, view, keyring=keyring_of(settings))
    return fresh_links(view, objects, ttl_s=settings.link_ttl_s)


class JobErasure(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ERASURE_EXAMPLE]})

    id: UUID
    state: Literal["erasing"] = Field("erasing", description="every service is erasing the job's images and prompt")


@router.delete("/{job_id}", status_code=202, response_model=JobErasure, responses=problems.responses(404, 409, 410))
async def erase_job(job_id: str, tenant: JobsWriter, runtime: Runtime) -> JobErasure:
    """Delete a final job's data: its images (candidates, outputs, the reference photo no
    other job uses) and its prompt, in every service; the key its prompt was sealed with in
    every event is destroyed, so no copy of those events can show it again. The billing record
    and the job's receipt (which holds no prompt) stay. The job answers 410 from then on. A
    job still running answers 409: cancel it first."""
    now = datetime.now(UTC)
    async with runtime.pool.connection() as conn, conn.transaction():
        view = await store.read_view(conn, parse_job_id(job_id), tenant_id=tenant, lock=True)
        if view is None:
            await refuse_missing(conn, job_id, tenant=tenant)
        if not view.final:
            raise Problem(status=409, slug="job-not-final", detail=f"job {job_id} is {view.state}; cancel it and delete it once it has"
                          " ended", extra={"state": view.state})
        reference_key = await store.reference_to_delete(conn, view.id)
        await store.erase_job(conn, view, now=now)
        await data_keys.destroy(conn, view.id)  # every sealed copy of the prompt, anywhere, is now unreadable
        await erase_prompt_from_outbox(conn, view.id)  # clear prompts of events from before sealing
        await runtime.emit(conn, JobErased(job_id=view.id, tenant_id=tenant, requested_at=now,
                                           reference_key=reference_key))
        await record_action(runtime, conn, action=Action(actor=f"tenant:{tenant}", name="job.erase", target=f"job:{view.id}", tenant_id=tenant))
    runtime.relay.notify()
    return JobErasure(id=view.id)


@router.post("/{job_id}/cancel", status_code=202, response_model=domain.JobView,
             responses=problems.responses(404, 409, 410) | {202: {"content": {"application/json": {"example": CANCELED_EXAMPLE}}}})
async def cancel_job(job_id: str, tenant: JobsWriter, runtime: Runtime, settings: Settings,
                     objects: Objects) -> domain.JobView:
    """Cancel a job that is not final (202 with the job; asking again is harmless). Generation
    stops and nothing more is charged; images delivered before the cancel reached delivery
    stay delivered and charged. A final job answers 409 and stays as it is, unless its cancel
    was asked for before: asking again answers 202 with the job as it ended."""
    async with runtime.pool.connection() as conn, conn.transaction():
        before = await store.read_view(conn, parse_job_id(job_id), tenant_id=tenant, lock=True)
        if before is None:
            await refuse_missing(conn, job_id, tenant=tenant)
        try:
            view, event = domain.request_cancel(before, datetime.now(UTC), reason="canceled by the client")
        except domain.JobIsFinal as error:
            raise Problem(status=409, slug="job-final", detail=str(error), extra={"state": before.state}) from None
        if event is not None:
            await projection.record(conn, store.Change(before=before, after=view, event=event, at=event.requested_at))
            await runtime.emit(conn, event)
        view = await with_prompt(conn, view, keyring=keyring_of(settings))
    runtime.relay.notify()
    return fresh_links(view, objects, ttl_s=settings.link_ttl_s)


class OutputReport(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [REPORT_EXAMPLE]})

    reason: str = Field(min_length=1, max_length=1000)


class ReportAccepted(BaseModel):
    job_id: UUID
    n: int
    state: Literal["reported"]


@router.post("/{job_id}/outputs/{n}/report", status_code=202, response_model=ReportAccepted,
             responses=problems.responses(404, 409, 410))
async def report_output(job_id: str, n: int, body: OutputReport, tenant: JobsWriter,
                        runtime: Runtime) -> ReportAccepted:
    """Report a delivered image as bad: within the window it is refunded or earns a retry
    token, by the tenant's setting; the outcome shows on the job."""
    parsed = parse_job_id(job_id)
    async with runtime.pool.connection() as conn, conn.transaction():
        view = await store.read_view(conn, parsed, tenant_id=tenant)
        if view is None:
            await refuse_missing(conn, job_id, tenant=tenant)
        if not any(o.n == n for o in view.outputs):
            raise Problem(status=404, slug="output-not-found", detail=f"job {job_id} has no delivered image {n}")
        if not await store.insert_output_report(conn, parsed, n=n, reason=body.reason):
            raise Problem(status=409, slug="already-reported", detail=f"image {n} of job {job_id} was reported before")
        await runtime.emit(conn, OutputReported(job_id=parsed, tenant_id=tenant, n=n, reason=body.reason,
                                                reported_at=datetime.now(UTC)))
    runtime.relay.notify()
    return ReportAccepted(job_id=parsed, n=n, state="reported")
