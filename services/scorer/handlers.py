"""Scorer handlers: score every candidate of an attempt as one batch, select the best K."""

import asyncio
import json
import time

from services.common import telemetry
from services.common.bus import EventConsumer, HandlerContext
from services.common.contracts import CandidatesGenerated, CandidateScore, CandidatesScored, ScoringFailed
from services.common.storage import ObjectStore
from services.scorer import domain
from services.scorer.dimensions import pick_device, score_images, select_best
from services.scorer.settings import ScorerSettings


async def store_scores(ctx: HandlerContext, event: CandidatesGenerated, scores: list[CandidateScore],
                       selected: set[int]) -> None:
    async with ctx.conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO scores (job_id, attempt, index, key, passed, score, dimensions, selected)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(event.job_id, event.attempt, s.index, s.key, s.passed, s.score,
              json.dumps({k: d.model_dump() for k, d in s.dimensions.items()}), s.index in selected)
             for s in scores],
        )


async def score_candidates(ctx: HandlerContext, event: CandidatesGenerated, store: ObjectStore,
                           settings: ScorerSettings, device) -> None:
    clock = time.perf_counter()
    images = await asyncio.gather(*(store.get(store.internal_bucket, c.key) for c in event.candidates))
    verdicts = await asyncio.to_thread(score_images, images, settings.dimensions, device)
    scores = domain.candidate_scores(event.candidates, verdicts)
    selected = [event.candidates[i].index for i in select_best(verdicts, event.images)]
    await store_scores(ctx, event, scores, set(selected))
    telemetry.STAGE_SECONDS.labels("scorer", "score").observe(time.perf_counter() - clock)
    common = dict(job_id=event.job_id, tenant_id=event.tenant_id, attempt=event.attempt, scores=scores)
    if selected:
        await ctx.emit(CandidatesScored(**common, images=event.images, selected=selected))
    else:
        await ctx.emit(ScoringFailed(**common, failure_code="no_candidate_passed",
                                     reason=domain.failure_reason(scores)))


def register(consumer: EventConsumer, store: ObjectStore, settings: ScorerSettings) -> None:
    device = pick_device()

    @consumer.on(CandidatesGenerated)
    async def on_candidates_generated(ctx: HandlerContext, event: CandidatesGenerated) -> None:
        await score_candidates(ctx, event, store, settings, device)
