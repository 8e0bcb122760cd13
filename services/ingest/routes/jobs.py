"""`/v1/jobs`: submit a job and follow it to its links."""

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID, uuid4

import psycopg
from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common import problems, telemetry
from services.common.api import RequestModel
from services.common.contracts import JobSpec, JobSubmitted, OutputReported, Tier
from services.common.problems import Problem
from services.ingest import domain, screening
from services.ingest.deps import Runtime, Settings, Store, Tenant
from services.scorer.profiles import ProfileError, QualityRules, job_profile, profile_names

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt": "a red bicycle against a brick wall", "template": "generic", "images": 2, "candidates": 4,
         "seed": 7, "quality": {"thresholds": {"sharpness": {"min": 80}}}}]})

    prompt: str = Field(min_length=1, max_length=2000)
    template: Literal["generic", "headshot", "product"] = "generic"
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

    width: int | None = Field(None, ge=64, le=2048, description="image width in pixels (with height)")
    height: int | None = Field(None, ge=64, le=2048, description="image height in pixels (with width)")
    model: str | None = Field(None, min_length=1, max_length=128,
                              description="pin a model; only providers that serve it are used")
    model_version: str | None = Field(None, min_length=1, max_length=128,
                                      description="pin the model's version too (needs model)")

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


class JobAccepted(BaseModel):
    id: UUID
    state: str
    created_at: datetime
    url: str


def job_spec(tenant_id: str, body: JobRequest, settings, reference_key: str | None = None) -> JobSpec:
    candidates = domain.plan_candidates(body.images, body.candidates, settings.default_oversample)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    return JobSpec(job_id=uuid4(), tenant_id=tenant_id, template=body.template, tier=body.tier,
                   use_retry_tokens=body.use_retry_tokens, prompt=body.prompt,
                   images=body.images, candidates=candidates, candidates_fixed=body.candidates is not None,
                   seed=seed, submitted_at=datetime.now(UTC),
                   profile=body.profile, quality_rules=quality_rules(body), reference_key=reference_key,
                   width=body.width, height=body.height, model=body.model, model_version=body.model_version)


def quality_rules(body: JobRequest) -> dict | None:
    """The rules as the client wrote them, without the defaults of what it left out."""
    return body.quality.model_dump(mode="json", exclude_unset=True) if body.quality is not None else None


def check_scoring(body: JobRequest, settings) -> None:
    """Refuse at submission what the scorer would refuse later: an unknown profile, invalid
    rules, or a dimension that must be computed without the model it needs."""
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


async def store_reference(store, tenant_id: str, body: JobRequest, settings) -> str | None:
    """The screened reference photo in the internal bucket, stored by content, so a retried
    submission stores nothing new."""
    if body.reference_image is None:
        return None
    photo = screening.screened_photo(body.reference_image, settings.max_reference_pixels)
    key = f"{tenant_id}/references/{photo.sha256}.{photo.extension}"
    await store.put(store.internal_bucket, key, photo.data, photo.media_type)
    return key


async def insert_job(conn: psycopg.AsyncConnection, view: domain.JobView) -> None:
    await conn.execute(
        "INSERT INTO jobs (id, tenant_id, state, view, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
        [view.id, view.tenant_id, view.state, view.model_dump_json(), view.created_at, view.updated_at],
    )


async def replay_of(conn, tenant_id: str, key: str, fingerprint: str) -> UUID | None:
    row = await (await conn.execute(
        "SELECT job_id, request_hash FROM idempotency_keys WHERE tenant_id = %s AND key = %s", [tenant_id, key]
    )).fetchone()
    if row and row["request_hash"] != fingerprint:
        raise Problem(422, "idempotency-key-reused", f"Idempotency-Key {key!r} was used with a different request")
    return row["job_id"] if row else None


async def read_view(conn, tenant_id: str, job_id: UUID) -> domain.JobView | None:
    row = await (await conn.execute(
        "SELECT view FROM jobs WHERE id = %s AND tenant_id = %s", [job_id, tenant_id]
    )).fetchone()
    return domain.JobView.model_validate(row["view"]) if row else None


async def record_submission(runtime, tenant: str, body: JobRequest, settings, idempotency_key: str | None,
                            fingerprint: str, reference_key: str | None) -> domain.JobView:
    async with runtime.pool.connection() as conn, conn.transaction():
        if idempotency_key and (existing := await replay_of(conn, tenant, idempotency_key, fingerprint)):
            return await read_view(conn, tenant, existing)
        spec = job_spec(tenant, body, settings, reference_key)
        view = domain.submitted_view(spec)
        await insert_job(conn, view)
        if idempotency_key:
            await conn.execute(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id) VALUES (%s, %s, %s, %s)",
                [tenant, idempotency_key, fingerprint, spec.job_id],
            )
        await runtime.emit(conn, JobSubmitted(job_id=spec.job_id, tenant_id=tenant, job=spec))
    runtime.relay.notify()
    telemetry.JOBS_SUBMITTED.labels(view.template).inc()
    return view


@router.post("", status_code=202, response_model=JobAccepted, responses=problems.responses(413))
async def submit_job(body: JobRequest, request: Request, response: Response, tenant: Tenant, runtime: Runtime,
                     settings: Settings, store: Store,
                     idempotency_key: Annotated[str | None, Header(max_length=255)] = None):
    """Accept a job (202); it moves on asynchronously. Retries with the same `Idempotency-Key`
    and body return the first job instead of submitting another. A profile, quality rules or
    reference photo the scorer could not use are refused here (422)."""
    check_scoring(body, settings)
    reference_key = await store_reference(store, tenant, body, settings)
    fingerprint = domain.request_fingerprint(await request.body())
    submit = (runtime, tenant, body, settings, idempotency_key, fingerprint, reference_key)
    try:
        view = await record_submission(*submit)
    except psycopg.errors.UniqueViolation:
        view = await record_submission(*submit)  # a concurrent retry won the key: answer with its job
    response.headers["Location"] = f"/v1/jobs/{view.id}"
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
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    outputs = [o.model_copy(update={"url": store.presign_get(store.public_bucket, o.key, ttl_s),
                                    "expires_at": expires_at}) for o in view.outputs]
    return view.model_copy(update={"outputs": outputs})


@router.get("/{job_id}", response_model=domain.JobView,
            responses=problems.responses(404) | {200: {"content": {"application/json": {"example": JOB_EXAMPLE}}}})
async def get_job(job_id: str, tenant: Tenant, runtime: Runtime, settings: Settings, store: Store):
    try:
        parsed = UUID(job_id)
    except ValueError:
        parsed = None
    view = None
    if parsed is not None:
        async with runtime.pool.connection() as conn:
            view = await read_view(conn, tenant, parsed)
    if view is None:  # another tenant's job is as unknown as a job that never existed
        raise Problem(404, "job-not-found", f"no job {job_id!r}")
    return fresh_links(view, store, settings.link_ttl_s)


class OutputReport(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "the bicycle has three wheels"}]})

    reason: str = Field(min_length=1, max_length=1000)


class ReportAccepted(BaseModel):
    job_id: UUID
    n: int
    state: Literal["reported"]


@router.post("/{job_id}/outputs/{n}/report", status_code=202, response_model=ReportAccepted,
             responses=problems.responses(404, 409))
async def report_output(job_id: str, n: int, body: OutputReport, tenant: Tenant, runtime: Runtime):
    """Report a delivered image as bad: within the window it is refunded or earns a retry
    token, by the tenant's setting; the outcome shows on the job."""
    try:
        parsed = UUID(job_id)
    except ValueError:
        raise Problem(404, "job-not-found", f"no job {job_id!r}") from None
    async with runtime.pool.connection() as conn, conn.transaction():
        view = await read_view(conn, tenant, parsed)
        if view is None:
            raise Problem(404, "job-not-found", f"no job {job_id!r}")
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
