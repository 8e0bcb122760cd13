"""Router handlers: an admitted job is generated on the local provider and stored."""

import asyncio
import time
from datetime import UTC, datetime

from services.common import telemetry
from services.common.bus import EventConsumer, HandlerContext
from services.common.contracts import CandidateRef, CandidatesGenerated, CreditsReserved
from services.common.storage import ObjectStore
from services.router import domain
from services.router.providers.local import LocalGenerator, PaintedCandidate
from services.router.settings import RouterSettings

PROVIDER = "local"


async def store_candidate(store: ObjectStore, event: CreditsReserved, attempt: int, painted: PaintedCandidate,
                          settings: RouterSettings) -> CandidateRef:
    key = domain.candidate_key(event.tenant_id, event.job_id, attempt, painted.index)
    stored = await store.put(store.internal_bucket, key, painted.png, "image/png")
    return CandidateRef(index=painted.index, key=key, media_type=stored.media_type, size_bytes=stored.size_bytes,
                        sha256=stored.sha256, width=settings.local_width, height=settings.local_height,
                        provider=PROVIDER, cost_micro_usd=settings.local_cost_micro_usd_per_image)


async def generate_candidates(ctx: HandlerContext, event: CreditsReserved, generator: LocalGenerator,
                              store: ObjectStore, settings: RouterSettings) -> None:
    job, attempt = event.job, 1
    started_at, clock = datetime.now(UTC), time.perf_counter()
    painted = await asyncio.to_thread(generator.paint, job.prompt, job.seed, job.candidates)
    refs = await asyncio.gather(*(store_candidate(store, event, attempt, p, settings) for p in painted))
    cost = domain.attempt_cost(len(refs), settings.local_cost_micro_usd_per_image)
    await ctx.conn.execute(
        "INSERT INTO attempts (job_id, attempt, tenant_id, provider, candidates, cost_micro_usd, started_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [job.job_id, attempt, job.tenant_id, PROVIDER, len(refs), cost, started_at],
    )
    telemetry.STAGE_SECONDS.labels("router", "generate").observe(time.perf_counter() - clock)
    await ctx.emit(CandidatesGenerated(job_id=job.job_id, tenant_id=job.tenant_id, attempt=attempt,
                                       images=job.images, started_at=started_at, candidates=list(refs),
                                       cost_micro_usd=cost))


def register(consumer: EventConsumer, store: ObjectStore, settings: RouterSettings) -> None:
    generator = LocalGenerator(settings.local_width, settings.local_height, settings.local_defect_rate)

    @consumer.on(CreditsReserved)
    async def on_credits_reserved(ctx: HandlerContext, event: CreditsReserved) -> None:
        await generate_candidates(ctx, event, generator, store, settings)
