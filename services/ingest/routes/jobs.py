"""`/v1/jobs`: submit a job and follow it to its links."""

import asyncio
import hashlib
import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

import psycopg
from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common import problems, targets, telemetry
from services.common.api import RequestModel, Timestamp
from services.common.audit import record_action
from services.common.bus import erase_prompt_from_outbox
from services.common.contracts import JobErased, JobSpec, JobSubmitted, OutputReported, Tier, WebhookEvent
from services.common.problems import Problem
from services.common.sealing import seal
from services.common.storage import signed_links
from services.common.templates import load_catalogue
from services.ingest import data_keys, domain, guidance, limits, request_rules, screening, store as jobs_store
from services.ingest.deps import JobsReader, JobsWriter, Plans, Runtime, Settings, Store
from services.ingest.view_parts import Billing, Failure
from services.scorer.profiles import Profile, ProfileError, QualityRules, job_profile, profile_names

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
log = logging.getLogger(__name__)


TemplateName = Literal[tuple(load_catalogue().templates)]


class JobRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt": "a red bicycle against a brick wall", "template": "generic", "images": 2, "candidates": 4,
         "seed": 7, "quality": {"thresholds": {"sharpness": {"min": 80}}}}]})

    prompt: str = Field(min_length=1, max_length=2000)
    template: TemplateName = Field("generic", description="a template of GET /v1/templates")
    tier: Tier = Field("stable", description="quality tier: stable, fast or low-cost")
    use_retry_tokens: bool = Field(False, description="spend retry tokens earned by reported images first")
    images: int = Field(1, ge=1, le=16, description="K: images to deliver")
    candidates: int | None = Field(None, ge=1, le=64, description="N: candidates to generate (N >= K)")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    profile: str | None = Field(None, max_length=64,
                                description="scoring profile (generic, headshot, product); the template's by default")
    quality: QualityRules | None = Field(None, description="quality rules on top of the profile")
    reference_image: str | None = Field(
        None, max_length=screening.MAX_REFERENCE_BASE64,
        description="base64 JPEG, PNG or WebP reference photo; a headshot's identity and skin tone are compared with it")
    input_upload: UUID | None = Field(
        None, strict=False, description="id of an upload (POST /v1/uploads) to use as the job's input photo, instead of "
                          "reference_image; checked against the template's input requirements")

    width: int | None = Field(None, ge=64, le=2048, description="image width in pixels (with height)")
    height: int | None = Field(None, ge=64, le=2048, description="image height in pixels (with width)")
    model: str | None = Field(None, min_length=1, max_length=128,
                              description="pin a model; only providers that serve it are used")
    model_version: str | None = Field(None, min_length=1, max_length=128,
                                      description="pin the model's version too (needs model)")
    deadline_s: int | None = Field(None, ge=1, le=7 * 24 * 3600,
                                   description="seconds the job may take; the tier's default when left out")
    min_images: int | None = Field(None, ge=1, le=16,
                                   description="at the deadline, deliver if at least this many passed (default: images)")
    webhook_url: str | None = Field(None, min_length=1, max_length=2000,
                                    description="http(s) URL that gets this job's webhooks, signed with the secret of"
                                                " GET /v1/webhooks/default/secret; public addresses only")
    webhook_events: list[WebhookEvent] | None = Field(None, max_length=6,
                                                      description="events sent to webhook_url; all final events by default")

    @model_validator(mode="after")
    def candidates_cover_images(self) -> "JobRequest":
        if self.candidates is not None and self.candidates < self.images:
            raise ValueError(f"candidates ({self.candidates}) must be at least images ({self.images})")
        return self

    @model_validator(mode="after")
    def size_and_pin_are_whole(self) -> "JobRequest":
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together: give both or neither")
        if self.model_version is not None and self.model is None:
            raise ValueError("model_version needs model")
        return self

    @model_validator(mode="after")
    def one_input_photo(self) -> "JobRequest":
        if self.input_upload is not None and self.reference_image is not None:
            raise ValueError("give the input photo once: input_upload or reference_image, not both")
        return self

    @model_validator(mode="after")
    def min_images_within_images(self) -> "JobRequest":
        if self.min_images is not None and self.min_images > self.images:
            raise ValueError(f"min_images ({self.min_images}) cannot exceed images ({self.images})")
        return self


class JobAccepted(BaseModel):
    id: UUID
    state: str
    created_at: datetime
    url: str


def with_deadline(body: JobRequest, cancel_after: str | None, settings) -> JobRequest:
    """The body's `deadline_s`, else the `Cancel-After` header, else the tier's default."""
    if body.deadline_s is not None:
        return body
    if cancel_after is not None:
        try:
            deadline_s = request_rules.parse_duration(cancel_after)
        except ValueError as error:
            raise Problem(422, "invalid-cancel-after", str(error)) from None
    else:
        deadline_s = settings.tier_deadline_s.get(body.tier)
    return body.model_copy(update={"deadline_s": deadline_s})


def job_spec(tenant_id: str, body: JobRequest, settings, data_key: bytes, profile: Profile,
             reference_key: str | None = None, priority: int = 0) -> JobSpec:
    """What the job asks for, its prompt sealed with its own `data_key`."""
    candidates = request_rules.plan_candidates(body.images, body.candidates, settings.default_oversample)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    job_id = uuid4()
    return JobSpec(job_id=job_id, tenant_id=tenant_id, template=body.template, tier=body.tier,
                   deadline_s=body.deadline_s, min_images=body.min_images,
                   use_retry_tokens=body.use_retry_tokens, prompt=seal(data_key, job_id, "prompt", body.prompt),
                   template_version=load_catalogue().version, profile_name=profile.name,
                   profile_version=profile_version(profile),
                   images=body.images, candidates=candidates, candidates_fixed=body.candidates is not None,
                   seed=seed, submitted_at=datetime.now(UTC),
                   profile=body.profile, quality_rules=quality_rules(body), reference_key=reference_key,
                   width=body.width, height=body.height, model=body.model, model_version=body.model_version,
                   webhook_url=body.webhook_url, webhook_events=body.webhook_events,
                   priority=priority)


def quality_rules(body: JobRequest) -> dict | None:
    """The rules as the client wrote them, without the defaults of what it left out."""
    return body.quality.model_dump(mode="json", exclude_unset=True) if body.quality is not None else None


def profile_version(profile: Profile) -> str:
    """A digest of the checks a profile applies (its thresholds, weights, required and
    forbidden dimensions, the job's rules included): it changes exactly when they do."""
    return hashlib.sha256(repr(profile).encode()).hexdigest()[:16]


def check_scoring(body: JobRequest, settings) -> Profile:
    """Refuse at submission what the scorer would refuse later: an unknown profile, invalid
    rules, or a dimension that must be computed without the model it needs; the profile the
    job will be scored with."""
    if body.profile is not None and body.profile not in profile_names():
        raise Problem(422, "unknown-profile", f"unknown profile {body.profile!r}; known: {profile_names()}")
    try:
        profile = job_profile(body.template, body.profile, quality_rules(body))
    except ProfileError as error:
        raise Problem(422, "invalid-quality-rules", str(error)) from None
    capabilities = frozenset({"clip_model"}) if settings.clip_model_dir else frozenset()
    missing = profile.missing_capabilities(capabilities)
    if missing:
        raise Problem(422, "dimension-unavailable",
                      f"profile {profile.name!r} with these rules requires {', '.join(missing)}, but no CLIP model"
                      " is configured on this platform, so it could not be scored; do not require it",
                      unavailable=missing)
    return profile


async def check_webhook_url(url: str, settings) -> None:
    """A webhook URL must be http(s) and resolve to public addresses only (SSRF), unless the
    deployment allows the network; delivery checks again when it sends."""
    try:
        await targets.checked_address(url, targets.allowed_networks(settings.webhook_allowed_networks))
    except targets.RefusedTarget as refused:
        raise Problem(422, "webhook-url-refused", f"webhooks cannot be sent to {url!r}: {refused}") from None


async def input_photo(runtime, store, tenant_id: str, body: JobRequest, settings) -> str | None:
    """The key of the job's input photo in the internal bucket, after screening and the
    template's input checks: an upload of the tenant's, or the base64 reference photo, screened
    like an upload and stored by content, so a retried submission stores nothing new."""
    template = load_catalogue().templates[body.template]
    if template.needs_input and body.input_upload is None and body.reference_image is None:
        raise Problem(422, "input-required", f"template {body.template!r} works on your photo: give input_upload"
                      f" ({template.input.description if template.input else 'an upload'})")
    if body.input_upload is not None:
        async with runtime.pool.connection() as conn:
            upload = await jobs_store.read_upload(conn, body.input_upload, tenant_id)
        if upload is None:
            raise Problem(422, "unknown-upload", f"input_upload: you have no upload {body.input_upload}")
        await guidance.check_input(settings, body.template, await store.get(store.internal_bucket, upload["key"]))
        return upload["key"]
    if body.reference_image is None:
        return None
    limits = screening.ScreeningLimits(settings.max_upload_bytes, settings.max_reference_pixels)
    photo = await asyncio.to_thread(screening.screened_photo, body.reference_image, limits)
    await guidance.check_input(settings, body.template, photo.data)
    key = f"{tenant_id}/references/{photo.sha256}.{photo.extension}"
    await store.put(store.internal_bucket, key, photo.data, photo.media_type)
    return key


async def replay_of(conn, tenant_id: str, key: str, fingerprint: str, ttl_s: int) -> UUID | None:
    bound = await jobs_store.job_of_key(conn, tenant_id, key, ttl_s)
    if bound and bound[1] != fingerprint:
        raise Problem(422, "idempotency-key-reused", f"Idempotency-Key {key!r} was used with a different request")
    return bound[0] if bound else None


async def record_submission(runtime, plans, tenant: str, body: JobRequest, settings, idempotency_key: str | None,
                            fingerprint: str, reference_key: str | None, profile: Profile) -> domain.JobView:
    """The job, written with its JobSubmitted; a retry with the same key gets the first job,
    and a job past the plan's limits is refused before anything is written."""
    ttl_s = settings.idempotency_key_ttl_s
    async with runtime.pool.connection() as conn, conn.transaction():
        plan = await limits.lock_plan(conn, tenant, plans)
        if idempotency_key and (existing := await replay_of(conn, tenant, idempotency_key, fingerprint, ttl_s)):
            return await jobs_store.read_view(conn, existing, tenant)
        await limits.check_submission(conn, tenant, plan, body.images, datetime.now(UTC))
        key = data_keys.new_data_key()
        spec = job_spec(tenant, body, settings, key, profile, reference_key, plan.priority)
        await data_keys.insert(conn, spec.job_id, tenant, key)
        view = domain.submitted_view(spec, body.prompt)
        await jobs_store.record(conn, None, view, None, spec.submitted_at)
        if reference_key:
            await jobs_store.remember_reference(conn, view.id, reference_key)
        if idempotency_key:
            await jobs_store.remember_key(conn, tenant, idempotency_key, fingerprint, spec.job_id, ttl_s)
        await runtime.emit(conn, JobSubmitted(job_id=spec.job_id, tenant_id=tenant, job=spec))
    runtime.relay.notify()
    telemetry.JOBS_SUBMITTED.labels(view.template).inc()
    return view


@router.post("", status_code=202, response_model=JobAccepted, responses=problems.responses(413, 415, 503))
async def submit_job(body: JobRequest, response: Response, tenant: JobsWriter, runtime: Runtime,
                     settings: Settings, store: Store, plans: Plans,
                     idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
                     cancel_after: Annotated[str | None, Header(max_length=32)] = None):
    """Accept a job (202); it moves on asynchronously. Retries with the same `Idempotency-Key`
    and the same request (the JSON parsed, so spacing and key order do not matter) within
    24 hours return the first job instead of submitting another. A profile, quality rules
    or reference photo the scorer could not use are refused here (422), and so is an input photo
    (`input_upload` or `reference_image`) that fails its template's input checks, with a
    sentence per failed check saying what to change (422 `input-guidance`). The job's deadline is
    `deadline_s`, or the `Cancel-After` header (`90`, `90s`, `5m`, `1h30m`), or its tier's.
    A job beyond your plan's jobs in progress or images per day is refused (429, with the
    reason and `Retry-After`) and nothing is held; an accepted job is never dropped by a limit."""
    telemetry.bind_prompt(body.prompt)
    body = with_deadline(body, cancel_after, settings)
    profile = check_scoring(body, settings)
    if body.webhook_url is not None:
        await check_webhook_url(body.webhook_url, settings)
    reference_key = await input_photo(runtime, store, tenant, body, settings)
    fingerprint = request_rules.request_fingerprint(body.model_dump(mode="json"))
    submit = (runtime, plans, tenant, body, settings, idempotency_key, fingerprint, reference_key, profile)
    try:
        view = await record_submission(*submit)
    except (psycopg.errors.UniqueViolation, jobs_store.IdempotencyKeyTaken):
        view = await record_submission(*submit)  # a concurrent retry won the key: answer with its job
    response.headers["Location"] = f"/v1/jobs/{view.id}"
    log.info("accepted job %s: %d image(s) of template %s", view.id, view.images, view.template,
             extra={"prompt": body.prompt})
    return JobAccepted(id=view.id, state=view.state, created_at=view.created_at, url=f"/v1/jobs/{view.id}")


JOB_ID = "0f6c2d4e-9b1a-4c3e-8f7d-2a5b6c7d8e9f"
JOB_EXAMPLE = {
    "id": JOB_ID, "tenant_id": "acme", "state": "succeeded", "template": "generic",
    "prompt": "a red bicycle against a brick wall", "images": 1, "candidates": 2, "seed": 7,
    "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:09Z",
    "timestamps": {"submitted": "2026-11-02T10:00:00Z", "succeeded": "2026-11-02T10:00:09Z"},
    "attempts": 1, "selected": [0],
    "scores": [{"index": 0, "attempt": 1, "provider": "local-fast", "key": f"acme/candidates/{JOB_ID}/0.png",
                "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size_bytes": 48213,
                "media_type": "image/png", "passed": True, "score": 0.91, "failed": [],
                "dimensions": {"sharpness": {"value": 212.4, "threshold": 80, "passed": True, "reason": "sharp enough"}}}],
    "outputs": [{"n": 0, "key": f"acme/2026/11/{JOB_ID}/0.png", "url": "https://…/0.png?X-Amz-Signature=…",
                 "expires_at": "2026-11-02T11:00:09Z", "size_bytes": 48213, "media_type": "image/png",
                 "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
    "billing": {"state": "settled", "reserved": 10, "charged": 10, "released": 0, "price_book_version": "2026-01"},
    "provider_cost_micro_usd": 4000,
}


def fresh_links(view: domain.JobView, store, ttl_s: int) -> domain.JobView:
    """Links are signed on every read, so a client never gets one that has already expired."""
    outputs = [o.model_copy(update=signed_links(store, o.key, o.thumbnail_key, ttl_s)) for o in view.outputs]
    return view.model_copy(update={"outputs": outputs})


def parse_job_id(job_id: str) -> UUID:
    try:
        return UUID(job_id)
    except ValueError:
        raise Problem(404, "job-not-found", f"no job {job_id!r}") from None


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


JOB_PAGE_EXAMPLE = {
    "data": [{"id": JOB_ID, "state": "succeeded", "template": "generic", "images": 1, "delivered": 1,
              "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:09Z", "failure": None,
              "billing": JOB_EXAMPLE["billing"], "url": f"/v1/jobs/{JOB_ID}"}],
    "next": "eyJ0IjoiMjAyNi0xMS0wMlQxMDowMDowMFoiLCJpZCI6IjBmNmMifQ",
}
CANCELED_EXAMPLE = JOB_EXAMPLE | {
    "state": "canceled", "outputs": [], "selected": [],
    "timestamps": {"submitted": "2026-11-02T10:00:00Z", "canceled": "2026-11-02T10:00:04Z"},
    "billing": {"state": "settled", "reserved": 10, "charged": 0, "released": 10, "price_book_version": "2026-01"},
}

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
                    created_after: Timestamp | None = None, created_before: Timestamp | None = None):
    """Your jobs, newest first, `limit` per page; pass the body's `next` as `cursor` for the
    next page. Jobs submitted while you page appear on no later page, so a walk through the
    pages sees every job once."""
    try:
        after = jobs_store.Cursor.decode(cursor) if cursor else None
    except jobs_store.InvalidCursor as error:
        raise Problem(422, "invalid-cursor", str(error)) from None
    where = jobs_store.JobFilter(state, template, created_after, created_before)
    async with runtime.pool.connection() as conn:
        views, more = await jobs_store.list_views(conn, tenant, where, after, limit)
    return JobPage(data=[summary(v) for v in views], next=more.encode() if more else None)


@router.get("/{job_id}", response_model=domain.JobView,
            responses=problems.responses(404, 410) | {200: {"content": {"application/json": {"example": JOB_EXAMPLE}}}})
async def get_job(job_id: str, tenant: JobsReader, runtime: Runtime, settings: Settings, store: Store):
    async with runtime.pool.connection() as conn:
        view = await jobs_store.read_view(conn, parse_job_id(job_id), tenant)
        if view is None:
            await refuse_missing(conn, job_id, tenant)
    return fresh_links(view, store, settings.link_ttl_s)


async def refuse_missing(conn, job_id: str, tenant: str) -> None:
    """410 for a job its tenant erased; 404 otherwise: another tenant's job is as unknown as
    a job that never existed."""
    if await jobs_store.was_erased(conn, parse_job_id(job_id), tenant):
        raise Problem(410, "job-erased", f"job {job_id} and its data were deleted at its owner's request")
    raise Problem(404, "job-not-found", f"no job {job_id!r}")


class JobErasure(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": JOB_ID, "state": "erasing"}]})

    id: UUID
    state: Literal["erasing"] = Field("erasing", description="every service is erasing the job's images and prompt")


@router.delete("/{job_id}", status_code=202, response_model=JobErasure, responses=problems.responses(404, 409, 410))
async def erase_job(job_id: str, tenant: JobsWriter, runtime: Runtime):
    """Delete a final job's data: its images (candidates, outputs, the reference photo no
    other job uses) and its prompt, in every service; the key its prompt was sealed with in
    every event is destroyed, so no copy of those events can show it again. The billing record
    and the job's receipt (which holds no prompt) stay. The job answers 410 from then on. A
    job still running answers 409: cancel it first."""
    now = datetime.now(UTC)
    async with runtime.pool.connection() as conn, conn.transaction():
        view = await jobs_store.read_view(conn, parse_job_id(job_id), tenant, lock=True)
        if view is None:
            await refuse_missing(conn, job_id, tenant)
        if not view.final:
            raise Problem(409, "job-not-final", f"job {job_id} is {view.state}; cancel it and delete it once it has"
                          " ended", state=view.state)
        reference_key = await jobs_store.reference_to_delete(conn, view.id)
        await jobs_store.erase_job(conn, view, now)
        await data_keys.destroy(conn, view.id)  # every sealed copy of the prompt, anywhere, is now unreadable
        await erase_prompt_from_outbox(conn, view.id)  # clear prompts of events from before sealing
        await runtime.emit(conn, JobErased(job_id=view.id, tenant_id=tenant, requested_at=now,
                                           reference_key=reference_key))
        await record_action(runtime, conn, f"tenant:{tenant}", "job.erase", f"job:{view.id}", tenant)
    runtime.relay.notify()
    return JobErasure(id=view.id)


@router.post("/{job_id}/cancel", status_code=202, response_model=domain.JobView,
             responses=problems.responses(404, 409, 410) | {202: {"content": {"application/json": {"example": CANCELED_EXAMPLE}}}})
async def cancel_job(job_id: str, tenant: JobsWriter, runtime: Runtime, settings: Settings, store: Store):
    """Cancel a job that is not final (202 with the job; asking again is harmless). Generation
    stops and nothing more is charged; images delivered before the cancel reached delivery
    stay delivered and charged. A final job answers 409 and stays as it is, unless its cancel
    was asked for before: asking again answers 202 with the job as it ended."""
    async with runtime.pool.connection() as conn, conn.transaction():
        before = await jobs_store.read_view(conn, parse_job_id(job_id), tenant, lock=True)
        if before is None:
            await refuse_missing(conn, job_id, tenant)
        try:
            view, event = domain.request_cancel(before, datetime.now(UTC), "canceled by the client")
        except domain.JobIsFinal as error:
            raise Problem(409, "job-final", str(error), state=before.state) from None
        if event is not None:
            await jobs_store.record(conn, before, view, event, event.requested_at)
            await runtime.emit(conn, event)
    runtime.relay.notify()
    return fresh_links(view, store, settings.link_ttl_s)


class OutputReport(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "the bicycle has three wheels"}]})

    reason: str = Field(min_length=1, max_length=1000)


class ReportAccepted(BaseModel):
    job_id: UUID
    n: int
    state: Literal["reported"]


@router.post("/{job_id}/outputs/{n}/report", status_code=202, response_model=ReportAccepted,
             responses=problems.responses(404, 409, 410))
async def report_output(job_id: str, n: int, body: OutputReport, tenant: JobsWriter, runtime: Runtime):
    """Report a delivered image as bad: within the window it is refunded or earns a retry
    token, by the tenant's setting; the outcome shows on the job."""
    parsed = parse_job_id(job_id)
    async with runtime.pool.connection() as conn, conn.transaction():
        view = await jobs_store.read_view(conn, parsed, tenant)
        if view is None:
            await refuse_missing(conn, job_id, tenant)
        if not any(o.n == n for o in view.outputs):
            raise Problem(404, "output-not-found", f"job {job_id} has no delivered image {n}")
        cur = await conn.execute("INSERT INTO output_reports (job_id, n, reason) VALUES (%s, %s, %s)"
                                 " ON CONFLICT DO NOTHING", [parsed, n, body.reason])
        if cur.rowcount == 0:
            raise Problem(409, "already-reported", f"image {n} of job {job_id} was reported before")
        await runtime.emit(conn, OutputReported(job_id=parsed, tenant_id=tenant, n=n, reason=body.reason,
                                                reported_at=datetime.now(UTC)))
    runtime.relay.notify()
    return ReportAccepted(job_id=parsed, n=n, state="reported")
