"""Scorer handlers: score an attempt's candidates as one batch against the job's profile,
then select, ask for more, or fail, counting the job's earlier attempts too.

Candidates are scored tier by tier, and the last tier only until the job's best K are
known, counting the candidates of its earlier attempts that passed (`tiers`); a job or
template that asks for every dimension (`score_all`), or an attempt that comes without
its job, is measured in full."""

import asyncio
import json
import logging
import time

from psycopg_pool import AsyncConnectionPool

from services.common import telemetry
from services.common.consumer import EventConsumer
from services.common.inbox import HandlerContext
from services.common.outbox import erase_prompt_from_outbox
from services.common.contracts import (
    CandidatesGenerated,
    CandidateScore,
    JobErased,
    CandidatesScored,
    JobCancelRequested,
    JobSpec,
    RegenerationRequested,
)
from services.common.data_keys import DataKeys
from services.common.envelope import Envelope
from services.common.storage import ObjectStore
from services.scorer import domain
from services.scorer.dimensions import ImageVerdict, Scorer, UndecodableImage, moderation
from services.scorer.dimensions.tiers import Enough
from services.scorer.profiles import Profile, ProfileError, job_profile, load_profile, profile_names, with_ceiling
from services.scorer.settings import ScorerSettings

log = logging.getLogger(__name__)


def profile_of(spec: JobSpec | None, nsfw_ceiling: float | None = None) -> Profile:
    """The job's profile, its nsfw bound capped at the tenant's ceiling."""
    if spec is None:  # a router that does not pass the job on: technical quality only
        return with_ceiling(job_profile("generic"), "nsfw", nsfw_ceiling)
    return with_ceiling(job_profile(spec.template, spec.profile, spec.quality_rules), "nsfw", nsfw_ceiling)


def score_decodable(scorer: Scorer, images: list[bytes], profile: Profile, enough: Enough | None = None,
                    **inputs) -> list[ImageVerdict]:
    """Verdicts in input order; a candidate that cannot be decoded is rejected as such
    and the others are scored without it. With `enough`, tier by tier (`tiers`)."""
    rejected: dict[int, ImageVerdict] = {}
    while True:
        kept = [i for i in range(len(images)) if i not in rejected]
        try:
            verdicts = scorer.score([images[i] for i in kept], profile, tiered=enough is not None,
                                    enough=enough.of(kept) if enough is not None else None, **inputs)
        except UndecodableImage as error:
            rejected[kept[error.index]] = domain.undecodable_verdict(str(error))
            continue
        by_index = dict(zip(kept, verdicts)) | rejected
        return [by_index[i] for i in range(len(images))]


async def lock_job(ctx: HandlerContext, event: CandidatesGenerated) -> str | None:
    """Take the job's row for this transaction; the outcome already published, if any."""
    row = await (await ctx.conn.execute(
        "INSERT INTO scored_jobs (job_id, attempts) VALUES (%s, %s) ON CONFLICT (job_id)"
        " DO UPDATE SET attempts = GREATEST(scored_jobs.attempts, EXCLUDED.attempts) RETURNING outcome",
        [event.job_id, event.attempt],
    )).fetchone()
    return row["outcome"]


async def store_scores(ctx: HandlerContext, event: CandidatesGenerated, scores: list[CandidateScore]) -> None:
    dumped = [s.model_dump(mode="json") for s in scores]
    async with ctx.conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO scores (job_id, attempt, index, key, provider, passed, score, dimensions, selected, candidate)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, false, %s) ON CONFLICT (job_id, index) DO NOTHING",
            [(event.job_id, s.attempt, s.index, s.key, s.provider, s.passed, s.score,
              json.dumps(d["dimensions"]), json.dumps(d))
             for s, d in zip(scores, dumped, strict=True)],
        )


async def job_scores(ctx: HandlerContext, event: CandidatesGenerated) -> list[CandidateScore]:
    rows = await (await ctx.conn.execute(
        "SELECT candidate FROM scores WHERE job_id = %s AND candidate IS NOT NULL ORDER BY index", [event.job_id]
    )).fetchall()
    return [CandidateScore.model_validate(row["candidate"]) for row in rows]


async def record_outcome(ctx: HandlerContext, event: CandidatesGenerated, outcome: domain.Outcome) -> None:
    if isinstance(outcome, RegenerationRequested):
        return
    await ctx.conn.execute("UPDATE scored_jobs SET outcome = %s, decided_at = now() WHERE job_id = %s",
                           [outcome.event_type, event.job_id])
    if isinstance(outcome, CandidatesScored):
        await ctx.conn.execute("UPDATE scores SET selected = true WHERE job_id = %s AND index = ANY(%s)",
                               [event.job_id, outcome.selected])


async def job_prompt(spec: JobSpec | None, settings: ScorerSettings, data_keys: DataKeys | None) -> str | None:
    """The job's prompt in clear, for prompt alignment: opened (its key asked of ingest) only
    by a scorer with a CLIP model, and the key not kept past this attempt."""
    if spec is None or not settings.clip_model_dir or data_keys is None:
        return None
    try:
        return await data_keys.open(spec.job_id, spec.prompt)
    finally:
        data_keys.forget(spec.job_id)


async def passed_before(conn, event: CandidatesGenerated) -> tuple[tuple[float, int], ...]:
    """(score, index) of the job's candidates of earlier attempts that passed."""
    rows = await (await conn.execute(
        "SELECT score, index FROM scores WHERE job_id = %s AND attempt < %s AND passed", [event.job_id, event.attempt]
    )).fetchall()
    return tuple((row["score"], row["index"]) for row in rows)


def enough_for(event: CandidatesGenerated, profile: Profile, passed: tuple[tuple[float, int], ...]) -> Enough | None:
    """When this attempt may stop measuring; None (measure everything) when the job asks for
    every dimension, did not come with the attempt (its wish is then unknown), or wants no
    image (nothing can be enough)."""
    if event.job is None or profile.score_all or event.images < 1:
        return None
    return Enough(event.images, tuple(c.index for c in event.candidates), passed)


async def score_attempt(event: CandidatesGenerated, store: ObjectStore, scorer: Scorer,
                        settings: ScorerSettings, passed: tuple[tuple[float, int], ...] = (),
                        data_keys: DataKeys | None = None) -> list[CandidateScore]:
    """Score this attempt's candidates in one batch, `passed` being the job's earlier passing
    candidates; ProfileError when the job's profile or rules are invalid."""
    spec, profile = event.job, profile_of(event.job, settings.nsfw_max_by_tenant.get(event.tenant_id))
    missing = scorer.missing_capabilities(profile)
    if missing:
        raise ProfileError(f"profile {profile.name!r} requires {', '.join(missing)}, which this scorer cannot"
                           " compute: no CLIP model is configured")
    images = await asyncio.gather(*(store.get(store.internal_bucket, c.key) for c in event.candidates))
    reference = await store.get(store.internal_bucket, spec.reference_key) if spec and spec.reference_key else None
    clock = time.perf_counter()
    size = (spec.width, spec.height) if spec and spec.width and spec.height else None
    enough = enough_for(event, profile, passed)
    prompt = await job_prompt(spec, settings, data_keys)
    verdicts = await asyncio.to_thread(score_decodable, scorer, list(images), profile, enough,
                                       prompt=prompt, reference=reference, requested_size=size)
    telemetry.STAGE_SECONDS.labels("scorer", "score").observe(time.perf_counter() - clock)
    scores = [domain.candidate_score(c, event.attempt, v) for c, v in zip(event.candidates, verdicts, strict=True)]
    for score in (s for s in scores if s.judged):
        telemetry.CANDIDATES_SCORED.labels(profile.name, "passed" if score.passed else "rejected").inc()
        for dimension in score.failed:
            telemetry.DIMENSION_FAILURES.labels(profile.name, dimension).inc()
    return scores


async def prepare_scores(event: CandidatesGenerated, pool: AsyncConnectionPool, store: ObjectStore,
                         scorer: Scorer, settings: ScorerSettings,
                         data_keys: DataKeys | None = None) -> list[CandidateScore] | ProfileError | None:
    """Fetch and score before the transaction opens, so that no transaction (nor a pooled
    connection) waits on S3 or on the scoring threads; None for a job already decided
    (canceled, or judged before), which is not scored. Safe to repeat."""
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT outcome FROM scored_jobs WHERE job_id = %s",
                                        [event.job_id])).fetchone()
        if row and row["outcome"]:
            return None
        passed = await passed_before(conn, event) if event.attempt > 1 else ()
    try:
        return await score_attempt(event, store, scorer, settings, passed, data_keys)
    except ProfileError as error:
        return error


async def judge_attempt(ctx: HandlerContext, event: CandidatesGenerated) -> None:
    """Judge what `prepare_scores` measured, under the job's row lock: a cancel or another
    attempt's outcome committed since is seen here and wins."""
    decided = await lock_job(ctx, event)
    if decided or ctx.prepared is None:
        log.warning("attempt %d of job %s arrived after its outcome (%s); not judged again",
                    event.attempt, event.job_id, decided or "decided before it was scored")
        return
    if isinstance(ctx.prepared, ProfileError):
        outcome = domain.unscorable(event, "unscorable_profile", str(ctx.prepared))
    else:
        await store_scores(ctx, event, ctx.prepared)
        outcome = domain.decide(event, await job_scores(ctx, event), ctx.prepared)
    await record_outcome(ctx, event, outcome)
    await ctx.emit(outcome)


def count_from_zero() -> None:
    """Pass and rejection counters of the packaged profiles exist before the first score."""
    for name in profile_names():
        telemetry.preinitialise(telemetry.CANDIDATES_SCORED, (name, "passed"), (name, "rejected"))
        telemetry.preinitialise(telemetry.DIMENSION_FAILURES,
                                *((name, dimension) for dimension in load_profile(name).dimension_names))


async def drop_job(ctx: HandlerContext, event: JobCancelRequested) -> None:
    """A canceled job's outcome is decided: candidates that arrive later are not scored."""
    await ctx.conn.execute(
        "INSERT INTO scored_jobs (job_id, outcome, decided_at) VALUES (%s, %s, now()) ON CONFLICT (job_id)"
        " DO UPDATE SET outcome = COALESCE(scored_jobs.outcome, EXCLUDED.outcome),"
        " decided_at = COALESCE(scored_jobs.decided_at, EXCLUDED.decided_at)",
        [event.job_id, event.event_type])


def new_scorer(settings: ScorerSettings) -> Scorer:
    moderated = settings.moderated_classes or moderation.MODERATED_BY_DEFAULT
    return Scorer(settings.device, settings.clip_model_dir, moderated_classes=moderated,
                  threads=settings.scoring_threads)


def register(consumer: EventConsumer, store: ObjectStore, settings: ScorerSettings,
             scorer: Scorer | None = None) -> None:
    count_from_zero()
    scorer = scorer or new_scorer(settings)
    data_keys = DataKeys(settings, "scorer")

    async def prepare(envelope: Envelope) -> list[CandidateScore] | ProfileError | None:
        return await prepare_scores(envelope.event, consumer.pool, store, scorer, settings, data_keys)

    @consumer.on(CandidatesGenerated, prepare=prepare)
    async def on_candidates_generated(ctx: HandlerContext, event: CandidatesGenerated) -> None:
        await judge_attempt(ctx, event)

    @consumer.on(JobCancelRequested)
    async def on_cancel_requested(ctx: HandlerContext, event: JobCancelRequested) -> None:
        await drop_job(ctx, event)

    @consumer.on(JobErased)
    async def on_job_erased(ctx: HandlerContext, event: JobErased) -> None:
        # The scorer keeps no prompt in its tables; its outbox is cleaned all the same.
        await erase_prompt_from_outbox(ctx.conn, event.job_id)
