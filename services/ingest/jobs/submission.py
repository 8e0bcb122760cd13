"""Submitting a job: the request, the checks that refuse at once what would fail later (the
scoring profile and rules, the webhook URL, the input photo), and the idempotent write of the
job with its JobSubmitted.

1. Check: the deadline (`deadline_s`, `Cancel-After` or the tier's), the profile and rules the
   scorer will apply, a video job's clips (video_request; clip_makers asks the router whether
   any model makes them), the webhook URL, the input photo or first frame (screened, then the
   template's checks).
2. Record: in one transaction under the tenant's plan lock, answer a retried `Idempotency-Key`
   with its first job, or check the plan's limits and write the job, its data key and event.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias
from uuid import UUID

import psycopg
from pydantic import ConfigDict, Field, StringConstraints, model_validator

from services.common import telemetry
from services.common.api import RequestModel, StorableText
from services.common.bus import EventWriter
from services.common.contracts import (
    WEBHOOK_EVENTS,
    ImageFormat,
    JobPriority,
    JobSpec,
    JobSubmitted,
    SubjectRef,
    Tier,
    WebhookEvent,
)
from services.common.problems import Problem
from services.common.quality.profiles import Profile, QualityRules, with_subject_checks
from services.common.releases import RELEASE
from services.common.runtime import ServiceRuntime
from services.common.sealing import JobField, seal
from services.common.storage import ObjectStore, StorageError
from services.common.templates import Template, load_catalogue
from services.ingest import data_keys
from services.ingest.accounts import Submitter, check_order_size, check_submission, count_usage, refusal
from services.ingest.inputs import (
    MAX_REFERENCE_BASE64,
    ScreeningGate,
    ScreeningLimits,
    Sent,
    check_input,
    read_upload,
    reference_photo_bytes,
)
from services.ingest.jobs import clip_makers, domain, projection, request_rules, store, subject_order, video_request
from services.ingest.jobs.examples import CLIP_FROM_IMAGE_EXAMPLE, JOB_REQUEST_EXAMPLE, VIDEO_JOB_REQUEST_EXAMPLE
from services.ingest.jobs.scoring_checks import check_scoring, profile_version, quality_rules
from services.ingest.jobs.video_request import VideoRequest
from services.ingest.key_encryption import keyring_of
from services.ingest.ledger_calls import LedgerClient, QuoteAsk, SubjectQuote
from services.ingest.plans import PlanBook
from services.ingest.settings import IngestSettings
from services.ingest.store.data_keys import WrappedDataKey
from services.ingest.webhooks import check_webhook_url

# The catalogue's names, as the OpenAPI document lists them; to the type checker, a string.
if TYPE_CHECKING:
    TemplateName: TypeAlias = str
else:
    TemplateName = Literal[tuple(load_catalogue().templates)]
# The largest order the platform takes; each plan allows at most its own (plans.yaml).
MAX_IMAGES, MAX_CANDIDATES = 100, 1000
# A job's own labels are bounded before they cost memory or rows: so many keys, so long each.
METADATA_KEYS, METADATA_KEY_LENGTH, METADATA_VALUE_LENGTH = 16, 40, 256
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=METADATA_KEY_LENGTH,
                                               pattern=r"^[A-Za-z0-9_.\-]+$")]
MetadataValue = Annotated[StorableText, StringConstraints(max_length=METADATA_VALUE_LENGTH)]


class JobRequest(RequestModel, subject_order.SubjectFields):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_REQUEST_EXAMPLE, VIDEO_JOB_REQUEST_EXAMPLE,
                                                              CLIP_FROM_IMAGE_EXAMPLE]})

    prompt: str = Field(min_length=1, max_length=2000)
    template: TemplateName = Field("generic", description="a template of GET /v1/templates")
    tier: Tier = Field("stable", description="quality tier: stable, fast or low-cost")
    priority: JobPriority = Field("interactive", description="among your own jobs: interactive ones are served ahead"
                                                             " of bulk ones at every stage; other tenants' turns are"
                                                             " not affected")
    use_retry_tokens: bool = Field(False, description="spend retry tokens earned by reported images first")
    images: int = Field(1, ge=1, le=MAX_IMAGES, description="K: images to deliver (the plan's images_per_job at most)")
    candidates: int | None = Field(None, ge=1, le=MAX_CANDIDATES,
                                   description="N: candidates to generate (N >= K; the plan's candidates_per_job at most)")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    profile: str | None = Field(None, max_length=64,
                                description="scoring profile (generic, headshot, product); the template's by default")
    quality: QualityRules | None = Field(None, description="quality rules on top of the profile")
    reference_image: str | None = Field(
        None, max_length=MAX_REFERENCE_BASE64,
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
    min_images: int | None = Field(None, ge=1, le=MAX_IMAGES,
                                   description="at the deadline, deliver if at least this many passed (default: images)")
    webhook_url: str | None = Field(None, min_length=1, max_length=2000,
                                    description="http(s) URL that gets this job's webhooks, signed with the secret of"
                                                " GET /v1/webhooks/default/secret; public addresses only")
    webhook_events: list[WebhookEvent] | None = Field(
        None, max_length=len(WEBHOOK_EVENTS),
        description="events sent to webhook_url; all final events by default (job.progress only when named)")
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        None, max_length=METADATA_KEYS, examples=[{"campaign": "spring", "customer_plan": "pro"}],
        description=f"your own labels (at most {METADATA_KEYS} keys of letters, digits, '_', '-' and '.', up to"
                    f" {METADATA_KEY_LENGTH} characters; values up to {METADATA_VALUE_LENGTH}): in the job, its"
                    " events and receipt, and GET /v1/usage/attribution groups spend by any of them")
    end_user: Annotated[StorableText, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="your customer the job is for (an id of yours, not personal data): in the job, its"
                          " events and receipt, and GET /v1/usage/attribution groups spend by it")
    video: VideoRequest | None = Field(
        None, description="ask for video clips (MP4) instead of images: `images` clips delivered out of `candidates`"
                          " made, each `duration_s` long, charged by the delivered second; templates text-to-video"
                          " and image-to-video require it, motion takes it")
    output_format: ImageFormat | None = Field(
        None, description="deliver the images encoded so (png, jpeg or webp) rather than in the template's format,"
                          " watermark and Content Credentials as ever; JPEG has no transparency; not for clips")

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
    def images_have_formats(self) -> "JobRequest":
        if self.output_format is not None and (self.video is not None or template_of(self).delivery.format == "mp4"):
            raise ValueError("output_format is for images: a clip is delivered as MP4")
        return self

    @model_validator(mode="after")
    def one_input_photo(self) -> "JobRequest":
        given = [self.input_upload is not None, self.reference_image is not None,
                 self.video is not None and self.video.first_frame is not None]
        if sum(given) > 1:
            raise ValueError("give the input photo once: input_upload, reference_image or video.first_frame")
        return self

    @model_validator(mode="after")
    def min_images_within_images(self) -> "JobRequest":
        if self.min_images is not None and self.min_images > self.images:
            raise ValueError(f"min_images ({self.min_images}) cannot exceed images ({self.images})")
        return self


def template_of(body: JobRequest) -> Template:
    return load_catalogue().templates[body.template]


def with_deadline(body: JobRequest, cancel_after: str | None, *, settings: IngestSettings) -> JobRequest:
    """The body's `deadline_s`, else the `Cancel-After` header, else the tier's default."""
    if body.deadline_s is not None:
        return body
    deadline_s: int | None
    if cancel_after is not None:
        try:
            deadline_s = request_rules.parse_duration(cancel_after)
        except ValueError as error:
            raise Problem(status=422, slug="invalid-cancel-after", detail=str(error)) from None
    else:
        deadline_s = settings.tier_deadline_s.get(body.tier)
    return body.model_copy(update={"deadline_s": deadline_s})


def job_spec(body: JobRequest, *, tenant_id: str, job_key: data_keys.JobKey, profile: Profile,
             reference_key: str | None, submitter: Submitter | None, subject: subject_order.SubjectOrder,
             settings: IngestSettings) -> JobSpec:
    """What the job asks for, its prompt sealed with its own data key; a video job's first
    frame is its input photo (`reference_key`) where its template starts from one. Its plan's
    priority is set when the job is recorded, under the plan's lock."""
    candidates = request_rules.plan_candidates(body.images, body.candidates, oversample=settings.default_oversample)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    job_id = job_key.job_id
    return JobSpec(job_id=job_id, tenant_id=tenant_id, template=body.template, tier=body.tier,
                   deadline_s=body.deadline_s, min_images=body.min_images, use_retry_tokens=body.use_retry_tokens,
                   prompt=seal(job_key.key, JobField(job_id, "prompt"), text=body.prompt),
                   template_version=load_catalogue().version, profile_name=profile.name,
                   profile_version=profile_version(profile),
                   images=body.images, candidates=candidates, candidates_fixed=body.candidates is not None,
                   seed=seed, submitted_at=datetime.now(UTC),
                   profile=body.profile, quality_rules=quality_rules(body), reference_key=reference_key,
                   width=body.width, height=body.height, model=body.model, model_version=body.model_version,
                   webhook_url=body.webhook_url, webhook_events=body.webhook_events,
                   job_priority=body.priority, metadata=body.metadata, end_user=body.end_user,
                   api_key_id=submitter.key_id if submitter else None, key_caps=submitter.caps if submitter else None,
                   video=video_request.video_spec(body.video, template_of(body), input_key=reference_key),
                   subject=subject.subject, identity=body.identity, styles=subject.styles,
                   output_format=body.output_format)


# While the platform writes its events for the previous release (a rolling update), a job
# asking for what that release cannot carry waits: an answer to try again later, not a job
# whose option is lost on the way (services/common/bus/writing.py).
UPGRADE_RETRY_AFTER_S = 60


def check_carried(spec: JobSpec, writer: EventWriter) -> None:
    """Refuse (503, `upgrade-in-progress`) a job whose request sets a member the release its
    events are written for cannot carry (`output_format` while 0.1.0's services still run)."""
    withheld = writer.withheld(JobSubmitted(job_id=spec.job_id, tenant_id=spec.tenant_id, job=spec))
    if not withheld:
        return
    options = sorted({path.rsplit(".", 1)[-1] for path in withheld})
    raise Problem(status=503, slug="upgrade-in-progress",
                  detail=f"{', '.join(options)}: not honoured until the platform's upgrade to {RELEASE} is done (its"
                         f" services still write their events for release {writer.readers}, which cannot carry"
                         " it); try again later, or without it",
                  headers={"Retry-After": str(UPGRADE_RETRY_AFTER_S)}, extra={"options": options})


@dataclass(frozen=True, kw_only=True)
class JobAdmission:
    """What checks and records a job: the service's runtime and settings, the object store its
    input photo goes to, the plans that bound it, the gate that screens photos, and the ledger
    (a key's spend caps) and router (who makes clips) it asks, where they are connected."""

    runtime: ServiceRuntime
    settings: IngestSettings
    objects: ObjectStore
    plans: PlanBook
    gate: ScreeningGate
    ledger: object | None = None
    router: object | None = None

    async def submit(self, body: JobRequest, *, tenant_id: str, idempotency_key: str | None,
                     submitter: Submitter | None, cancel_after: str | None = None) -> domain.JobView:
        """The job `body` asks for, checked and recorded (or the first job of a retried key):
        the tenant's, sent with that `Idempotency-Key` and `Cancel-After` header by that key
        (None where no key's caps apply)."""
        settings = self.settings
        body = with_deadline(body, cancel_after, settings=settings)
        video_request.check_video(body.template, template_of(body), video=body.video)
        profile = check_scoring(body, settings)
        subject = await self.subject_order(tenant_id, body)
        if subject.subject is not None:  # checked against it, as the scorer will: the version says so
            profile = with_subject_checks(profile, subject.subject.kind)
        clips = clip_makers.ClipOrder(body.video, template_of(body), body.model) if body.video is not None else None
        await clip_makers.check_clip_makers(self.router, settings.router_grpc_timeout_s, order=clips)
        if body.webhook_url is not None:
            await check_webhook_url(body.webhook_url, settings)
        reference_key = await self.input_photo(tenant_id, body)
        over_cap = await self.over_cap(body, tenant_id=tenant_id, submitter=submitter, subject=subject.subject)
        job_key = await data_keys.job_key(keyring_of(settings))  # before the transaction: see data_keys.job_key
        spec = job_spec(body, tenant_id=tenant_id, job_key=job_key, profile=profile, reference_key=reference_key,
                        submitter=submitter, subject=subject, settings=settings)
        check_carried(spec, self.runtime.writer)
        fingerprint = request_rules.request_fingerprint(body.model_dump(mode="json"))
        binding = None if idempotency_key is None else store.KeyBinding(
            tenant_id=tenant_id, key=idempotency_key, request_hash=fingerprint, job_id=job_key.job_id,
            ttl_s=settings.idempotency_key_ttl_s)
        data_key = WrappedDataKey(job_id=job_key.job_id, tenant_id=tenant_id, wrapped=job_key.wrapped,
                                        kek_id=job_key.kek_id)
        try:
            return await self.record(spec, body, binding=binding, data_key=data_key, over_cap=over_cap)
        except (psycopg.errors.UniqueViolation, store.IdempotencyKeyTaken):
            # A concurrent retry won the key: answer with its job. The first attempt rolled back,
            # so its job id and wrapped key are free to use again.
            return await self.record(spec, body, binding=binding, data_key=data_key, over_cap=over_cap)

    async def subject_order(self, tenant_id: str, body: JobRequest) -> subject_order.SubjectOrder:
        """The job's subject and styles, checked (422 for one it cannot have)."""
        template = template_of(body)
        styles = subject_order.resolved_styles(body.template, template, asked=body.styles)
        asked = subject_order.Asked(tenant_id=tenant_id, template_name=body.template, template=template, subject_id=body.subject)
        return subject_order.SubjectOrder(await subject_order.resolved_subject(self.runtime, asked), styles)

    async def over_cap(self, body: JobRequest, *, tenant_id: str, submitter: Submitter | None,
                       subject: SubjectRef | None = None) -> Problem | None:
        """The 402 this job gets at the door (the account owes credits, or the submitting key's
        spend caps leave no room for it, its training line included), where the ledger is there:
        one quote answers both."""
        if self.ledger is None:
            return None
        video = video_request.video_spec(body.video, template_of(body), input_key=None)
        quote = QuoteAsk(tenant_id=tenant_id, template=body.template, tier=body.tier, images=body.images, use_retry_tokens=body.use_retry_tokens,
                      video_duration_s=video.duration_s if video else None,
                      video_resolution=video.resolution if video else None,
                      subject=SubjectQuote.of(subject, body.identity))
        return await refusal(LedgerClient(self.ledger, self.settings.ledger_grpc_timeout_s), submitter,
                                        quote=quote)

    async def input_photo(self, tenant_id: str, body: JobRequest) -> str | None:
        """The key of the job's input photo in the internal bucket, after screening and the
        template's input checks: an upload of the tenant's, or the base64 reference photo, screened
        like an upload and stored by content, so a retried submission stores nothing new."""
        template = load_catalogue().templates[body.template]
        first_frame = body.video.first_frame if body.video is not None else None
        if template.needs_input and body.input_upload is None and body.reference_image is None and first_frame is None:
            also = " or video.first_frame" if template.video != "never" else ""
            raise Problem(status=422, slug="input-required", detail=f"template {body.template!r} works on your photo: give"
                          f" input_upload{also} ({template.input.description if template.input else 'an upload'})")
        if first_frame is not None:
            return await self.first_frame_photo(tenant_id, body.template, first_frame=first_frame)
        if body.input_upload is not None:
            async with self.runtime.pool.connection() as conn:
                upload = await read_upload(conn, body.input_upload, tenant_id=tenant_id)
            if upload is None:
                raise Problem(status=422, slug="unknown-upload", detail=f"input_upload: you have no upload {body.input_upload}")
            objects = self.objects
            await check_input(self.settings, body.template,
                                       photo=await objects.get(objects.internal_bucket, upload["key"]))
            return str(upload["key"])
        if body.reference_image is None:
            return None
        photo = Sent(reference_photo_bytes(body.reference_image), "reference_image")
        return await self.stored_reference(tenant_id, body.template, sent=photo)

    async def stored_reference(self, tenant_id: str, template: str, *, sent: Sent) -> str:
        """A photo screened like an upload, judged by the template's checks, and stored by content
        in the internal bucket (a retried submission stores nothing new); its key."""
        settings, objects = self.settings, self.objects
        limits = ScreeningLimits(settings.max_upload_bytes, settings.max_reference_pixels)
        photo = await self.gate.screen(sent.data, limits, name=sent.name)
        await check_input(settings, template, photo=photo.data)
        key = f"{tenant_id}/references/{photo.sha256}.{photo.extension}"
        await objects.put(objects.internal_bucket, key, content=photo)
        return key

    async def first_frame_photo(self, tenant_id: str, template: str, *, first_frame: video_request.FirstFrame) -> str:
        """An image the tenant was delivered, as a video job's first frame: copied from the public
        bucket into the internal one like a reference photo, after the same screening and checks."""
        async with self.runtime.pool.connection() as conn:
            public_key, _ = await video_request.delivered_still(conn, tenant_id, first_frame=first_frame)
        try:
            data = await self.objects.get(self.objects.public_bucket, public_key)
        except StorageError:
            raise Problem(status=422, slug="unknown-first-frame", detail=f"video.first_frame: image {first_frame.n} of job"
                          f" {first_frame.job_id} is no longer stored (erased, or past retention)",
                          extra={"field": "video.first_frame"}) from None
        return await self.stored_reference(tenant_id, template, sent=Sent(data, "video.first_frame"))

    async def record(self, spec: JobSpec, body: JobRequest, *, binding: store.KeyBinding | None,
                     data_key: WrappedDataKey, over_cap: Problem | None) -> domain.JobView:
        """The job, written with its JobSubmitted; a retry with the same key (`binding`) gets the
        first job, and a job past the plan's limits or its key's spend cap (`over_cap`, raised
        after the idempotency check, so a retry still gets its first job) is refused before
        anything is written."""
        runtime, tenant = self.runtime, spec.tenant_id
        async with runtime.pool.connection() as conn, conn.transaction():
            plan_name, bound = await store.lock_plan_and_key(conn, tenant, key=binding.key if binding else None,
                                                             ttl_s=self.settings.idempotency_key_ttl_s)
            plan = self.plans.get(plan_name)
            if bound is not None and binding is not None:
                if bound[1] != binding.request_hash:
                    raise Problem(status=422, slug="idempotency-key-reused", detail=f"Idempotency-Key {binding.key!r}"
                                  " was used with a different request")
                first = await store.read_view(conn, bound[0], tenant_id=tenant)
                assert first is not None, "a live Idempotency-Key names a job that is not erased (erasure forgets it)"
                return first
            check_order_size(plan, body.images, candidates=body.candidates)
            video_request.check_plan_limits(body.video, plan)
            if over_cap is not None:
                raise over_cap
            check_submission(plan, await count_usage(conn, tenant, now=datetime.now(UTC)), images=body.images)
            spec = spec.model_copy(update={"priority": plan.priority})
            view = domain.submitted_view(spec, body.prompt)
            await subject_order.note_ordered(conn, spec.subject, at=spec.submitted_at)
            announced = runtime.outbox_row(JobSubmitted(job_id=spec.job_id, tenant_id=tenant, job=spec))
            await projection.record_submitted(conn, view, at=spec.submitted_at, submission=store.Submission(
                data_key=data_key, binding=binding, outbox_row=announced, reference_key=spec.reference_key or None))
        runtime.relay.notify()
        telemetry.JOBS_SUBMITTED.labels(view.template).inc()
        return view
