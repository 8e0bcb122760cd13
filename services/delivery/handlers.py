"""Delivery handlers: publish the selected images and sign links that expire, or answer a
cancel; each job gets one outcome (see domain). A finished job's webhooks are queued."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from services.common import contracts, telemetry
from services.common.bus import Consumption, Envelope, EventConsumer, HandlerContext, erase_prompt_from_outbox
from services.common.contracts import (
    AccountAlerted,
    CandidateScore,
    CandidatesScored,
    DeliveredImage,
    JobCancelRequested,
    JobDelivered,
    JobErased,
    JobFinished,
    JobProgressed,
    RetentionSet,
    SubjectChanged,
)
from services.common.db import Pool
from services.common.storage import ObjectStore, candidate_prefix, provider_copies_prefix
from services.common.templates import Delivery, load_catalogue
from services.common.turns import Turn, job_turn
from services.delivery import domain, postprocess, provenance, rendering, store
from services.delivery.settings import DeliverySettings
from services.delivery.webhooks import WebhookSender, queue_alert_webhooks, queue_subject_webhooks, queue_webhooks

log = logging.getLogger(__name__)
T = TypeVar("T")


async def with_retries(settings: DeliverySettings, operation: Callable[[], Awaitable[T]]) -> T:
    """`operation()`, tried again with backoff when it fails, `settings.copy_attempts` times in all."""
    for attempt in range(1, settings.copy_attempts + 1):
        try:
            return await operation()
        except Exception:
            if attempt == settings.copy_attempts:
                raise
            await asyncio.sleep(domain.copy_backoff_s(attempt, settings.copy_backoff_s, max_s=settings.copy_backoff_max_s))
    raise AssertionError("copy_attempts must be at least 1")


@dataclass(frozen=True)
class SelectedImages:
    """A scored job's selected images, as they are published: the scored event's envelope,
    whose time names the job's folder (so a redelivered event writes the same objects), and
    the template's delivery."""

    envelope: Envelope
    delivery: Delivery

    @property
    def event(self) -> CandidatesScored:
        event = self.envelope.event
        assert isinstance(event, CandidatesScored), "published for a CandidatesScored only"
        return event

    @property
    def folder(self) -> str:
        return domain.job_folder(self.event.tenant_id, self.envelope.time, job_id=self.event.job_id)

    @property
    def turn(self) -> Turn:
        """The job's turn at the rendering workers: its tenant's, by plan, then its own priority."""
        envelope = self.envelope
        return job_turn(self.event.tenant_id, plan_priority=envelope.plan_priority, job_priority=envelope.job_priority)


def chosen_candidates(event: CandidatesScored) -> list[CandidateScore]:
    by_index = {s.index: s for s in event.selected_scores}
    return [by_index[i] for i in event.selected[: event.images]]


@dataclass(frozen=True, kw_only=True)
class Publisher:
    """Publishes a scored job's selected images and decides its outcome, with the database,
    the buckets, the settings, and the workers that render and sign every file."""

    pool: Pool
    objects: ObjectStore
    settings: DeliverySettings
    renderer: rendering.Renderer

    @classmethod
    def of(cls, pool: Pool, objects: ObjectStore, *, settings: DeliverySettings) -> "Publisher":
        marker = provenance.Marker.from_settings(settings)
        return cls(pool=pool, objects=objects, settings=settings, renderer=rendering.Renderer(marker, settings.render_workers, spare_lane=settings.render_spare_lane))

    async def publish_image(self, selection: SelectedImages, n: int, *, candidate: CandidateScore) -> DeliveredImage:
        """Render one selected candidate in its tenant's turn at the workers (format, both
        watermarks, thumbnail; a clip re-encoded, its poster; signed last), and store the image
        (or clip) and its thumbnail side by side in the public bucket."""
        event, delivery, objects, settings = selection.event, selection.delivery, self.objects, self.settings

        async def order() -> rendering.FileToRender:
            source = await with_retries(settings, lambda: objects.get_part(objects.internal_bucket, candidate))
            origin = provenance.Origin(job_id=event.job_id, n=n, provider=candidate.provider, template=event.template, created_at=selection.envelope.time,
                                       source=source, model=candidate.model, model_version=candidate.model_version)
            return rendering.FileToRender(origin, delivery, candidate.media_type.startswith("video/"))

        with telemetry.timed_stage("delivery", "render"):
            done = (await self.renderer.render(selection.turn, order)).done
        key = domain.public_key(selection.folder, n, media_type=done.image.media_type)
        thumbnail_key = domain.thumbnail_key(key, done.thumbnail.media_type)
        await asyncio.gather(
            with_retries(settings, lambda: objects.put(objects.public_bucket, key, content=done.image)),
            with_retries(settings, lambda: objects.put(objects.public_bucket, thumbnail_key, content=done.thumbnail)))
        links = objects.signed_links(key, thumbnail_key, ttl_s=settings.link_ttl_s)
        return domain.delivered_image(domain.Published(n=n, key=key, thumbnail_key=thumbnail_key, links=links), done, delivery=delivery)

    async def prepare_delivery(self, envelope: Envelope) -> list[DeliveredImage] | Exception | None:
        """Publish the selected images before the transaction opens, so that no transaction (nor
        a pooled connection) waits on S3, post-processing or copy retries: the images, or the
        error that kept them from being published; None for a job with an outcome already
        (canceled), whose images are not published. Safe to repeat: the keys are the same."""
        event = envelope.event
        assert isinstance(event, CandidatesScored), "the prepare step of CandidatesScored only"
        async with self.pool.connection() as conn:
            if await store.has_outcome(conn, event.job_id):
                return None
        selection = SelectedImages(envelope, domain.as_asked(load_catalogue().delivery(event.template), event))
        try:
            return list(await asyncio.gather(*(self.publish_image(selection, n, candidate=c)
                                               for n, c in enumerate(chosen_candidates(event), start=1))))
        except Exception as error:  # judged under the outcome's claim, in the transaction
            return error

    async def deliver_selection(self, ctx: HandlerContext, event: CandidatesScored) -> None:
        """Decide the job's outcome from what `prepare_delivery` published, under the outcome's
        claim, made in the statement that claims the event on the inbox: a cancel committed
        meanwhile wins, and the images published for nothing go. (An outcome is never removed, so
        a job `prepare_delivery` found decided loses the claim.) A duplicate does nothing at all:
        the images its preparation published again are the delivered ones."""
        claim = ctx.claim
        assert claim is not None  # registered with claims=True
        published = ctx.prepared
        if published is None:  # prepare_delivery found the outcome decided, and an outcome stays
            if await claim.alone(ctx.conn):  # fresh
                decided_before(event)
            return
        if isinstance(published, list):
            rows = [store.DeliveredRow(n=image.n, key=image.key, source_key=candidate.key, source_offset=candidate.offset, source_size=candidate.size_bytes,
                                       sha256=image.sha256, size_bytes=image.size_bytes)
                    for image, candidate in zip(published, chosen_candidates(event), strict=True)]
            delivered = JobDelivered(job_id=event.job_id, tenant_id=event.tenant_id, requested=event.images,
                                     images=published)
            won = await store.claim_delivered(
                ctx.conn, store.DeliveredJob(job_id=event.job_id, tenant_id=event.tenant_id, images=rows, announces=ctx.announcing(delivered)), claim=claim)
            if won or ctx.applied_before:
                return
            decided_before(event)
            await asyncio.gather(*(self.objects.delete(self.objects.public_bucket, key) for image in published
                                   for key in (image.key, image.thumbnail_key) if key))
            return
        won = await store.claim_outcome(ctx.conn, store.JobOutcome(event.job_id, event.tenant_id, "delivered"),
                                        claim=claim)
        if ctx.applied_before:
            return
        if not won:
            decided_before(event)
            return
        if isinstance(published, postprocess.UnpublishableImage):
            log.warning("job %s selected an image delivery cannot publish: %s", event.job_id, published)
            await store.set_outcome(ctx.conn, event.job_id, outcome="failed")
            await ctx.emit(domain.unpublishable(event, published))
            return
        if isinstance(published, Exception):
            log.warning("publishing the images of job %s failed: %s", event.job_id, published)
            await store.set_outcome(ctx.conn, event.job_id, outcome="failed")
            await ctx.emit(domain.copy_failed(event, self.settings.copy_attempts, error=published))
            return


def decided_before(event: CandidatesScored) -> None:
    log.info("job %s has its outcome already (canceled or delivered); its images are not published", event.job_id)


async def answer_cancel(ctx: HandlerContext, event: JobCancelRequested) -> None:
    if await store.claim_outcome(ctx.conn, store.JobOutcome(event.job_id, event.tenant_id, event.final_state)):
        await ctx.emit(domain.canceled(event))


async def erase_images(ctx: HandlerContext, event: JobErased, *, objects: ObjectStore) -> None:
    """Delete every object of the job, in both buckets: its candidates (all attempts), the
    router's copies of hosted providers' outputs, its delivered images and whatever lies beside
    them (thumbnails), and the reference photo ingest names. Deleting again deletes nothing, so
    a redelivered event is harmless."""
    delivered = await store.delivered_keys(ctx.conn, event.job_id)
    public = {obj.key for folder in {domain.folder_of(key) for key in delivered}
              for obj in await objects.list_objects(objects.public_bucket, folder)} | set(delivered)
    internal = {obj.key for prefix in (candidate_prefix(event.tenant_id, event.job_id),
                                       provider_copies_prefix(event.job_id))
                for obj in await objects.list_objects(objects.internal_bucket, prefix)}
    internal |= {event.reference_key} if event.reference_key else set()
    await asyncio.gather(*(objects.delete(objects.public_bucket, key) for key in public),
                         *(objects.delete(objects.internal_bucket, key) for key in internal))
    await store.erase_job(ctx.conn, event.job_id)
    await erase_prompt_from_outbox(ctx.conn, event.job_id)
    log.info("erased job %s: %d public and %d internal objects", event.job_id, len(public), len(internal))


# What delivery consumes, declared once: the events it handles (each has its handler in
# `register`) and those on the topics it reads that it has no use for. Its subscription is derived
# from it, and a type on those topics in neither union keeps the service from starting.
Consumed: TypeAlias = (
    contracts.CandidatesScored | contracts.JobCancelRequested | contracts.JobProgressed
    | contracts.JobFinished | contracts.AccountAlerted | contracts.SubjectChanged | contracts.RetentionSet
    | contracts.JobErased
)
PassedOver: TypeAlias = (
    contracts.JobSubmitted | contracts.OutputReported | contracts.JobClosed | contracts.AuditRecorded
    | contracts.CreditsReserved | contracts.ReservationRejected | contracts.ReservationSettled
    | contracts.CreditsGranted | contracts.CreditsExpired | contracts.CreditsReclaimed
    | contracts.AutoTopUpFailed | contracts.CreditsRefunded | contracts.RetryTokenIssued
    | contracts.ReportDeclined | contracts.CandidatesChecked | contracts.RegenerationRequested
    | contracts.ScoringFailed | contracts.TrainingSettled | contracts.EvaluationCharged
)
CONSUMES = Consumption.of("delivery", Consumed, passed_over=PassedOver)


def register(consumer: EventConsumer, publisher: Publisher, *, sender: WebhookSender) -> None:
    @consumer.on(CandidatesScored, prepare=publisher.prepare_delivery, claims=True)
    async def on_candidates_scored(ctx: HandlerContext, event: CandidatesScored) -> None:
        await publisher.deliver_selection(ctx, event)

    @consumer.on(JobCancelRequested)
    async def on_cancel_requested(ctx: HandlerContext, event: JobCancelRequested) -> None:
        await answer_cancel(ctx, event)

    @consumer.on(JobProgressed, claims=True)
    async def on_job_progressed(ctx: HandlerContext, event: JobProgressed) -> None:
        assert ctx.claim is not None
        if await queue_webhooks(ctx.conn, event, claim=ctx.claim):
            ctx.after_commit(sender.notify)

    @consumer.on(JobFinished, claims=True)
    async def on_job_finished(ctx: HandlerContext, event: JobFinished) -> None:
        assert ctx.claim is not None  # registered with claims=True
        if await queue_webhooks(ctx.conn, event, claim=ctx.claim):
            ctx.after_commit(sender.notify)

    @consumer.on(AccountAlerted, claims=True)
    async def on_account_alerted(ctx: HandlerContext, event: AccountAlerted) -> None:
        assert ctx.claim is not None  # registered with claims=True
        if await queue_alert_webhooks(ctx.conn, event, claim=ctx.claim):
            ctx.after_commit(sender.notify)

    @consumer.on(SubjectChanged, claims=True)
    async def on_subject_changed(ctx: HandlerContext, event: SubjectChanged) -> None:
        assert ctx.claim is not None  # registered with claims=True
        if await queue_subject_webhooks(ctx.conn, event, claim=ctx.claim):
            ctx.after_commit(sender.notify)

    @consumer.on(RetentionSet)
    async def on_retention_set(ctx: HandlerContext, event: RetentionSet) -> None:
        await store.set_retention(ctx.conn, event)

    @consumer.on(JobErased)
    async def on_job_erased(ctx: HandlerContext, event: JobErased) -> None:
        await erase_images(ctx, event, objects=publisher.objects)
        ctx.after_commit(lambda: sender.data_keys.forget(event.job_id))
