"""Scorer handlers: score a job's candidates as they are stored, chunk by chunk
(CandidatesStored), and batch by batch within a chunk, against the job's profile; once the
router closes an attempt (CandidatesGenerated), score what no chunk brought, then select, ask
for more, or fail, over every candidate of the job.

Candidates are scored tier by tier, and the tiers after the first best first, only until
the job's best K are known, counting the candidates of its earlier attempts that passed (`tiers`); a job or
template that asks for every dimension (`score_all`), or an attempt that comes without
its job, is measured in full. A job across styles is measured style by style, its styles side
by side, each until its own share's best are known, counting what the selection took of it so
far (`selection.lots`; in an order of different pictures a passing candidate alike a better
one of its style does not count, so the style measures on for a different one; a shortfall
left is asked for again). A job of a subject is judged against it (`subjects`), opened once
for all its chunks and attempts; one whose subject was erased fails."""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

from services.common import contracts, telemetry
from services.common.bus import Consumption, Envelope, EventConsumer, HandlerContext, erase_prompt_from_outbox
from services.common.contracts import (
    CandidateRef,
    CandidateScore,
    CandidatesGenerated,
    CandidatesStored,
    JobCancelRequested,
    JobErased,
    JobSpec,
)
from services.common.data_keys import DataKeys
from services.common.db import Pool
from services.common.quality.dimensions import registered
from services.common.quality.profiles import (
    Profile,
    ProfileError,
    job_profile,
    load_profile,
    profile_names,
    template_profile,
    with_ceiling,
    with_subject_checks,
)
from services.common.storage import ObjectStore, candidate_part
from services.common.turns import Turn, job_turn
from services.scorer import domain, store
from services.scorer.dimensions import Equipment, ImageVerdict, Scorer, Scoring, UndecodableImage, moderation
from services.scorer.dimensions.batch import ClipRequest
from services.scorer.dimensions.subject import Likeness
from services.scorer.dimensions.tiers import Enough
from services.scorer.selection import Lot, SelectionAsk, lots
from services.scorer.settings import ScorerSettings
from services.scorer.subjects import UNREADABLE, Likenesses, SubjectUnavailable

log = logging.getLogger(__name__)


VIDEO_PROFILE = "video"


def profile_of(spec: JobSpec | None, nsfw_ceiling: float | None = None) -> Profile:
    """The job's profile, its nsfw bound capped at the tenant's ceiling. A video job's clips
    are scored by its template's profile where that one reads clips, else by `video`, unless
    the job names its own. A job of a subject is checked against it whatever its profile."""
    if spec is None:  # a router that does not pass the job on: technical quality only
        return with_ceiling(job_profile("generic"), "nsfw", maximum=nsfw_ceiling)
    profile = spec.profile
    if spec.video is not None and profile is None and not reads_clips(template_profile(spec.template)):
        profile = VIDEO_PROFILE
    chosen = job_profile(spec.template, profile, rules=spec.quality_rules)
    if spec.subject is not None:
        chosen = with_subject_checks(chosen, spec.subject.kind)
    return with_ceiling(chosen, "nsfw", maximum=nsfw_ceiling)


def reads_clips(profile: str) -> bool:
    """The profile checks a clip's file (its container), as a video profile does."""
    return any(registered(name).reads == "container" for name in load_profile(profile).dimension_names)


def clip_request(spec: JobSpec | None) -> ClipRequest | None:
    """What a video job asks its clips to be: length, size (the tier's, in its aspect ratio), rate."""
    if spec is None or spec.video is None:
        return None
    width, height = spec.video.size()
    return ClipRequest(duration_s=spec.video.duration_s, width=width, height=height, fps=spec.video.fps)


def reference_key(spec: JobSpec | None) -> str | None:
    """The photo whose person the candidates must show: the job's reference, else a clip's
    first frame (the still it is animated from)."""
    if spec is None:
        return None
    return spec.reference_key or (spec.video.first_frame_key if spec.video is not None else None)


def score_decodable(scorer: Scorer, images: list[bytes], *, scoring: Scoring) -> list[ImageVerdict]:
    """Verdicts in input order; a candidate that cannot be decoded is rejected as such
    and the others are scored without it. With `enough`, tier by tier (`tiers`)."""
    rejected: dict[int, ImageVerdict] = {}
    enough = scoring.enough
    while True:
        kept = [i for i in range(len(images)) if i not in rejected]
        try:
            verdicts = scorer.score([images[i] for i in kept],
                                    replace(scoring, enough=enough.of(kept) if enough is not None else None))
        except UndecodableImage as error:
            rejected[kept[error.index]] = domain.undecodable_verdict(str(error))
            continue
        by_index = dict(zip(kept, verdicts)) | rejected
        return [by_index[i] for i in range(len(images))]


async def job_prompt(spec: JobSpec | None, settings: ScorerSettings, *, data_keys: DataKeys | None) -> str | None:
    """The job's prompt in clear, for prompt alignment: opened (its key asked of ingest) only
    by a scorer with a CLIP model, and the key not kept past this attempt."""
    if spec is None or not settings.clip_model_dir or data_keys is None:
        return None
    try:
        return await data_keys.open(spec.job_id, spec.prompt)
    finally:
        data_keys.forget(spec.job_id)


def scoring_turn(event: CandidatesGenerated | CandidatesStored) -> Turn:
    """The job's turn at the scorer's workers (`TakingTurns`): its tenant's, by plan, then its
    own priority; a batch that came without its job waits as its tenant's, at its plan's least."""
    spec = event.job
    if spec is None:
        return Turn(tenant=event.tenant_id)
    return job_turn(event.tenant_id, plan_priority=spec.priority, job_priority=spec.job_priority)


def until_enough(event: CandidatesGenerated | CandidatesStored, profile: Profile) -> bool:
    """Whether a batch may stop measuring once the job has enough (`Enough`): not when the
    job asks for every dimension, did not come with the attempt (its wish is then unknown),
    or wants no image (nothing can be enough)."""
    return event.job is not None and not profile.score_all and event.images >= 1


async def candidate_images(objects: ObjectStore, candidates: Sequence[CandidateRef]) -> list[bytes]:
    """The candidates' bytes: each object read once, whether it holds a chunk of candidates
    one after another or one candidate alone."""
    keys = list(dict.fromkeys(c.key for c in candidates))
    found = dict(zip(keys, await asyncio.gather(*(objects.get(objects.internal_bucket, key) for key in keys)),
                     strict=True))
    return [candidate_part(found[c.key], c.offset, size_bytes=c.size_bytes) for c in candidates]


@dataclass(frozen=True, kw_only=True)
class Workbench:
    """What the handlers score with: the object store the candidates are read from, the
    Scorer, the service's settings, the keys that open a job's prompt, and the subjects
    jobs are of, opened with theirs."""

    objects: ObjectStore
    scorer: Scorer
    settings: ScorerSettings
    data_keys: DataKeys | None = None
    subjects: Likenesses | None = None


@dataclass(frozen=True)
class Scored:
    """What scoring some of a job's candidates measured, before the transaction."""

    scores: list[CandidateScore]
    seconds: float  # the scoring's own time, for the job's ETA


def batches_of(candidates: Sequence[CandidateRef], size: int) -> list[Sequence[CandidateRef]]:
    return [candidates[i: i + size] for i in range(0, len(candidates), max(1, size))]


async def job_scoring(event: CandidatesGenerated | CandidatesStored, bench: Workbench) -> Scoring:
    """What the job's candidates are judged against: its profile, with what the job gives
    its dimensions to compare with; ProfileError when the job's profile or rules are invalid,
    or ask for what this scorer cannot compute."""
    spec = event.job
    profile = profile_of(spec, bench.settings.nsfw_max_by_tenant.get(event.tenant_id))
    missing = bench.scorer.missing_capabilities(profile)
    if missing:
        raise ProfileError(f"profile {profile.name!r} requires {', '.join(missing)}, which this scorer cannot"
                           " compute: no CLIP model is configured")
    key = reference_key(spec)
    reference = await bench.objects.get(bench.objects.internal_bucket, key) if key else None
    size = (spec.width, spec.height) if spec and spec.width and spec.height else None
    prompt = await job_prompt(spec, bench.settings, data_keys=bench.data_keys)
    return Scoring(profile=profile, prompt=prompt, reference=reference, requested_size=size, requested_clip=clip_request(spec),
                   subject=await job_subject(spec, bench), turn=scoring_turn(event))


async def job_subject(spec: JobSpec | None, bench: Workbench) -> Likeness | None:
    """What the job's candidates are compared with when it is of a subject, opened once and
    kept for its chunks and attempts (`subjects`); SubjectUnavailable once it was erased."""
    if spec is None or spec.subject is None:
        return None
    if bench.subjects is None:
        raise SubjectUnavailable(UNREADABLE, "this scorer has no data keys to open the job's subject with")
    return await bench.subjects.likeness(spec.subject)


async def score_candidates(event: CandidatesGenerated | CandidatesStored, so_far: domain.ScoredSoFar,
                           *, bench: Workbench) -> Scored:
    """Score the event's candidates the job has no score for yet, batch by batch (one
    batch's images in memory at a time), against the job's passing candidates so far, which
    grow with each batch; ProfileError when the job's profile or rules are invalid."""
    scoring = await job_scoring(event, bench)
    tiered = until_enough(event, scoring.profile)
    scores: list[CandidateScore] = []
    seconds, passed = 0.0, so_far.passed
    settings = bench.settings
    batch_size = settings.scoring_batch_clips if event.job and event.job.video else settings.scoring_batch_candidates
    order = SelectionAsk.of(event.job, event.images)
    for batch in batches_of(so_far.fresh(event.candidates), batch_size):
        data = await candidate_images(bench.objects, batch)
        clock = time.perf_counter()
        styled = lots(order, batch, passing=passed)  # style by style: each is measured until its own best are known
        verdicts = await score_lots(bench.scorer, data, styled=styled,
                                    scorings=[lot_scoring(scoring, lot, batch=batch, tiered=tiered) for lot in styled])
        seconds += time.perf_counter() - clock
        batch_scores = [domain.candidate_score(c, event.attempt, verdict=verdicts[p]) for p, c in enumerate(batch)]
        passed += tuple(domain.Passing.of(s) for s in batch_scores if s.passed)
        scores += batch_scores
    telemetry.STAGE_SECONDS.labels("scorer", "score").observe(seconds)
    count_verdicts(scoring.profile, scores)
    return Scored(scores, seconds)


async def score_lots(scorer: Scorer, images: Sequence[bytes], *, styled: Sequence[Lot],
                     scorings: Sequence[Scoring]) -> dict[int, ImageVerdict]:
    """The verdicts of a batch's `images` by position, each style's lot scored as its `scorings`
    says, the lots side by side: each walks its tiers in rounds of a few images, and one lot at
    a time left the scorer's workers waiting at the end of every round."""
    found = await asyncio.gather(*(asyncio.to_thread(score_decodable, scorer, [images[p] for p in lot.positions],
                                                     scoring=scoring)
                                   for lot, scoring in zip(styled, scorings, strict=True)))
    return {p: verdict for lot, verdicts in zip(styled, found, strict=True)
            for p, verdict in zip(lot.positions, verdicts, strict=True)}


def lot_scoring(scoring: Scoring, lot: Lot, *, batch: Sequence[CandidateRef], tiered: bool) -> Scoring:
    """How one style's candidates of a batch are scored: tiered, until its own share's best are
    known (`Enough`), where the job allows it."""
    enough = Enough(images=lot.share, indices=tuple(batch[p].index for p in lot.positions), passed_before=lot.selected,
                    distinct=lot.distinct, prints=lot.prints) if tiered and lot.share else None
    return replace(scoring, tiered=tiered, enough=enough)


def count_verdicts(profile: Profile, scores: Sequence[CandidateScore]) -> None:
    for score in (s for s in scores if s.judged):
        telemetry.CANDIDATES_SCORED.labels(profile.name, "passed" if score.passed else "rejected").inc()
        for dimension in score.failed:
            telemetry.DIMENSION_FAILURES.labels(profile.name, dimension).inc()


Unscorable = ProfileError | SubjectUnavailable  # why a job cannot be scored at all


async def prepare_scores(event: CandidatesGenerated | CandidatesStored, pool: Pool,
                         *, bench: Workbench) -> Scored | Unscorable | None:
    """Fetch and score, before the transaction opens, the event's candidates the job has no
    score for yet (a chunk announced them before, or a run of the attempt taken over), so
    that no transaction (nor a pooled connection) waits on S3 or on the scoring threads; None
    for a job already decided (canceled, or judged before), which is not scored. Safe to repeat."""
    async with pool.connection() as conn:
        so_far = await store.scoring_so_far(conn, event.job_id)
    if so_far is None:
        return None
    try:
        return await score_candidates(event, so_far, bench=bench)
    except (ProfileError, SubjectUnavailable) as error:
        return error


async def judge_attempt(ctx: HandlerContext, event: CandidatesGenerated) -> None:
    """Judge the attempt over every score of the job, under the job's row lock: a cancel or
    another attempt's outcome committed since is seen here and wins."""
    assert ctx.claim is not None  # registered with claims=True
    decided = await store.lock_job(ctx.conn, event.job_id, attempt=event.attempt, claim=ctx.claim)
    if ctx.applied_before:
        return
    if decided or ctx.prepared is None:
        log.warning("attempt %d of job %s arrived after its outcome (%s); not judged again",
                    event.attempt, event.job_id, decided or "decided before it was scored")
        return
    outcome: domain.Outcome
    if isinstance(ctx.prepared, ProfileError):
        outcome = domain.unscorable(event, "unscorable_profile", reason=str(ctx.prepared))
    elif isinstance(ctx.prepared, SubjectUnavailable):
        outcome = domain.unscorable(event, ctx.prepared.code, reason=str(ctx.prepared))
    else:
        fresh = ctx.prepared.scores
        outcome = domain.decide(event, await store.store_scores(ctx.conn, event.job_id, scores=fresh), fresh=fresh)
    await store.record_outcome(ctx.conn, event.job_id, outcome=outcome, announced=ctx.emitting(outcome))


async def check_chunk(ctx: HandlerContext, event: CandidatesStored) -> None:
    """Store a chunk's scores and tell where the job stands; the outcome waits for the
    attempt's CandidatesGenerated. A job decided meanwhile (canceled) takes nothing more."""
    assert ctx.claim is not None  # registered with claims=True
    decided = await store.lock_job(ctx.conn, event.job_id, attempt=event.attempt, claim=ctx.claim)
    if ctx.applied_before or decided or not isinstance(ctx.prepared, Scored):
        return  # an invalid profile or an erased subject is told once, when the attempt is judged
    tally = await store.add_chunk_scores(ctx.conn, event.job_id, scores=ctx.prepared.scores)
    await ctx.emit(domain.checked(event, tally, measured=ctx.prepared))


def count_from_zero() -> None:
    """Pass and rejection counters of the packaged profiles exist before the first score."""
    for name in profile_names():
        telemetry.preinitialise(telemetry.CANDIDATES_SCORED, (name, "passed"), (name, "rejected"))
        telemetry.preinitialise(telemetry.DIMENSION_FAILURES,
                                *((name, dimension) for dimension in load_profile(name).dimension_names))


async def drop_job(ctx: HandlerContext, event: JobCancelRequested) -> None:
    """A canceled job's outcome is decided: candidates that arrive later are not scored."""
    await store.decide_canceled(ctx.conn, event.job_id, outcome=event.event_type)


def new_scorer(settings: ScorerSettings) -> Scorer:
    moderated = settings.moderated_classes or moderation.MODERATED_BY_DEFAULT
    return Scorer(Equipment(device=settings.device, clip_model_dir=settings.clip_model_dir, threads=settings.scoring_threads,
                            moderated_classes=moderated))


# What the scorer consumes, declared once: the events it handles (each has its handler in
# `register`) and those on the topics it reads that it has no use for. Its subscription is derived
# from it, and a type on those topics in neither union keeps the service from starting.
Consumed: TypeAlias = (
    contracts.CandidatesStored | contracts.CandidatesGenerated | contracts.JobCancelRequested
    | contracts.JobErased
)
PassedOver: TypeAlias = (
    contracts.JobSubmitted | contracts.OutputReported | contracts.JobClosed | contracts.JobFinished
    | contracts.JobProgressed | contracts.RetentionSet | contracts.AuditRecorded | contracts.AttemptStarted
    | contracts.GenerationFailed | contracts.SubjectChanged | contracts.IdentityPlanned
    | contracts.IdentityTrained | contracts.IdentityTrainingFailed
)
CONSUMES = Consumption.of("scorer", Consumed, passed_over=PassedOver)


def register(consumer: EventConsumer, bench: Workbench) -> None:
    count_from_zero()

    async def prepare(envelope: Envelope) -> Scored | Unscorable | None:
        event = envelope.event
        assert isinstance(event, CandidatesGenerated | CandidatesStored), "registered for these two only"
        return await prepare_scores(event, consumer.pool, bench=bench)

    @consumer.on(CandidatesStored, prepare=prepare, claims=True)
    async def on_candidates_stored(ctx: HandlerContext, event: CandidatesStored) -> None:
        await check_chunk(ctx, event)

    @consumer.on(CandidatesGenerated, prepare=prepare, claims=True)
    async def on_candidates_generated(ctx: HandlerContext, event: CandidatesGenerated) -> None:
        await judge_attempt(ctx, event)

    @consumer.on(JobCancelRequested)
    async def on_cancel_requested(ctx: HandlerContext, event: JobCancelRequested) -> None:
        await drop_job(ctx, event)

    @consumer.on(JobErased)
    async def on_job_erased(ctx: HandlerContext, event: JobErased) -> None:
        # The scorer keeps no prompt in its tables; its outbox is cleaned all the same.
        await erase_prompt_from_outbox(ctx.conn, event.job_id)
