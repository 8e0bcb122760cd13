"""Delivery handlers: publish the selected images and sign links that expire."""

import asyncio
from datetime import UTC, datetime, timedelta

from services.common.bus import EventConsumer, HandlerContext
from services.common.contracts import CandidateScore, CandidatesScored, DeliveredImage, JobDelivered
from services.common.storage import ObjectStore
from services.delivery import domain
from services.delivery.settings import DeliverySettings


async def publish_image(ctx: HandlerContext, event: CandidatesScored, n: int, candidate: CandidateScore,
                        store: ObjectStore, settings: DeliverySettings) -> DeliveredImage:
    # The key derives from the scored event's time, so a redelivered event writes the same object.
    key = domain.public_key(event.tenant_id, ctx.envelope.time, event.job_id, n, candidate.media_type)
    await store.copy(store.internal_bucket, candidate.key, store.public_bucket, key, candidate.size_bytes)
    await ctx.conn.execute(
        "INSERT INTO delivered_images (job_id, n, tenant_id, key, source_key, sha256, size_bytes)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [event.job_id, n, event.tenant_id, key, candidate.key, candidate.sha256, candidate.size_bytes],
    )
    return DeliveredImage(n=n, key=key, url=store.presign_get(store.public_bucket, key, settings.link_ttl_s),
                          expires_at=datetime.now(UTC) + timedelta(seconds=settings.link_ttl_s),
                          sha256=candidate.sha256, size_bytes=candidate.size_bytes,
                          media_type=candidate.media_type)


async def deliver_selection(ctx: HandlerContext, event: CandidatesScored, store: ObjectStore,
                            settings: DeliverySettings) -> None:
    by_index = {s.index: s for s in event.scores}
    chosen = [by_index[i] for i in event.selected[: event.images]]
    images = await asyncio.gather(
        *(publish_image(ctx, event, n, c, store, settings) for n, c in enumerate(chosen, start=1))
    )
    await ctx.emit(JobDelivered(job_id=event.job_id, tenant_id=event.tenant_id, requested=event.images,
                                images=list(images)))


def register(consumer: EventConsumer, store: ObjectStore, settings: DeliverySettings) -> None:
    @consumer.on(CandidatesScored)
    async def on_candidates_scored(ctx: HandlerContext, event: CandidatesScored) -> None:
        await deliver_selection(ctx, event, store, settings)
