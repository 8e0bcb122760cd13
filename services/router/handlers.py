"""Router handlers: admitted jobs and rework requests become attempts to generate; the
scorer's verdicts teach the pass-rate estimate. Attempts run in the scheduler, outside
the consumer, so one slow provider call never holds up the topic."""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeAlias

from services.common import contracts
from services.common.bus import Consumption, EventConsumer, HandlerContext, PermanentError, erase_prompt_from_outbox
from services.common.contracts import (
    CandidatesChecked,
    CandidatesScored,
    CreditsReserved,
    IdentityTrainingFailed,
    JobCancelRequested,
    JobErased,
    RegenerationRequested,
    ScoringFailed,
    SubjectChanged,
)
from services.router import domain, store
from services.router.planning import VerdictTally
from services.router.scheduler import AttemptScheduler
from services.router.store import JobVerdicts, QueuedAttempt
from services.router.subjects import store as subjects_store


@dataclass(frozen=True, slots=True)
class AttemptHandling:
    """What the handlers hand work to and judge it by: the scheduler attempts go to (its engine
    learns from verdicts), the most attempts a job gets, and how fast verdicts fade."""

    scheduler: AttemptScheduler
    max_attempts: int
    half_life_s: float


# The events that carry the scorer's verdicts on an attempt's candidates.
Judged = RegenerationRequested | CandidatesScored | ScoringFailed | CandidatesChecked


async def admit(ctx: HandlerContext, event: CreditsReserved, *, scheduler: AttemptScheduler) -> None:
    job = domain.AdmittedJob(spec=event.job, budget_micro_usd=event.max_provider_spend_micro_usd, traceparent=ctx.envelope.traceparent)
    # Kept as the events are written: during a rolling update a replica of the previous release
    # may take the job's attempts, and its JobSpec refuses a member it does not know.
    if await store.admit_job(ctx.conn, job, claim=ctx.claim, spec_json=ctx.writer.shared(event.job)):
        request = QueuedAttempt(job_id=event.job_id, attempt=1, images_needed=event.job.images, tier=event.job.tier, tenant_id=event.tenant_id,
                                 priority=event.job.priority, job_priority=event.job.job_priority)
        ctx.after_commit(lambda: scheduler.announce(request))


async def learn(ctx: HandlerContext, event: Judged, *, intake: AttemptHandling) -> None:
    """Count the verdicts on this attempt's candidates (earlier attempts were counted before)
    for a job this router admitted, and, once that is committed (so a redelivery counts
    nothing twice), show the counts to this process's estimator and the verdicts to its
    quality breakers."""
    engine = intake.scheduler.engine
    verdicts = domain.verdicts_by_provider(event.scores, event.attempt)
    if verdicts:
        counted = await store.add_verdicts(ctx.conn, JobVerdicts(event.job_id, verdicts), half_life_s=intake.half_life_s,
                                           claim=ctx.claim)
    else:
        counted = []
        if ctx.claim is not None:
            await ctx.claim.alone(ctx.conn)
    if ctx.applied_before:
        return
    for row in counted:
        tally = VerdictTally(provider=row["provider"], template=row["template"], passed=row["passed"], failed=row["failed"])
        ctx.after_commit(partial(engine.pass_rates.set_evidence, tally))
    if counted:
        template = counted[0]["template"]
        for provider, judged in domain.quality_verdicts(event.scores, event.attempt).items():
            ctx.after_commit(partial(engine.observe_verdicts, provider, template, verdicts=judged))


async def regenerate(ctx: HandlerContext, event: RegenerationRequested, *, intake: AttemptHandling) -> None:
    job = await store.load_job(ctx.conn, event.job_id, lock=True)
    if job is None:
        raise PermanentError(f"rework asked for job {event.job_id}, which this router never admitted")
    await learn(ctx, event, intake=intake)
    if job.final or event.attempt + 1 > intake.max_attempts:
        reason = job.stop_reason or domain.MAX_ATTEMPTS_REACHED
        await ctx.emit(domain.nothing_more(job, event.attempt + 1, reason=reason))
        return
    if await store.request_attempt(ctx.conn, event.job_id, attempt=event.attempt + 1, images_needed=event.needed):
        request = QueuedAttempt(job_id=event.job_id, attempt=event.attempt + 1, images_needed=event.needed, tier=job.spec.tier, tenant_id=event.tenant_id,
                                 priority=job.spec.priority, job_priority=job.spec.job_priority)
        if event.needed_by_style:
            await subjects_store.note_needed_by_style(ctx.conn, request, needed=event.needed_by_style)
        ctx.after_commit(lambda: intake.scheduler.announce(request))


async def cancel(ctx: HandlerContext, event: JobCancelRequested, *, scheduler: AttemptScheduler) -> None:
    """Generate nothing more for the job, and cancel the training it started (its router tells the provider)."""
    if await store.cancel_job(ctx.conn, event.job_id):
        for row in await subjects_store.cancel_trainings_of(ctx.conn, event.job_id):
            await ctx.emit(training_stopped(row, "canceled", reason="the order was canceled"))
        ctx.after_commit(lambda: scheduler.abort(event.job_id))


async def erase_subject(ctx: HandlerContext, event: SubjectChanged) -> None:
    """An erased subject's identities go: their weights, their copies at providers and trainings
    still running (the router that takes each row cleans it up); a training it stops fails its order's."""
    if event.state != "erased":
        return
    for row in await subjects_store.erase_identities(ctx.conn, event.tenant_id, subject_id=event.subject_id):
        if row.state == "training":
            await ctx.emit(training_stopped(row, "subject_erased", reason="the subject was erased"))


async def erase_prompt(ctx: HandlerContext, event: JobErased) -> None:
    """A job admitted before prompts were sealed keeps its prompt in clear in its spec and in
    the events still in the outbox: it goes. (A sealed prompt is gone with its key.)"""
    await store.erase_clear_prompt(ctx.conn, event.job_id)
    await erase_prompt_from_outbox(ctx.conn, event.job_id)


def training_stopped(row: subjects_store.IdentityRow, code: str, *, reason: str) -> IdentityTrainingFailed:
    """A training its order's tenant stopped (the order canceled, the subject erased): the tenant's
    doing once it was submitted (the provider bills what ran; the platform bears it, as the
    tenant pays only for weights trained); before, nothing was spent."""
    return IdentityTrainingFailed(job_id=row.job_id, tenant_id=row.tenant_id, subject_id=row.subject_id,
                                  identity_id=row.identity_id, failure_code=code, reason=reason,
                                  tenant_fault=row.handle is not None, failed_at=datetime.now(UTC))


# What the router consumes, declared once: the events it handles (each has its handler in
# `register`) and those on the topics it reads that it has no use for. Its subscription is derived
# from it, and a type on those topics in neither union keeps the service from starting.
Consumed: TypeAlias = (
    contracts.CreditsReserved | contracts.RegenerationRequested | contracts.CandidatesScored
    | contracts.CandidatesChecked | contracts.ScoringFailed | contracts.JobCancelRequested
    | contracts.JobErased | contracts.SubjectChanged
)
PassedOver: TypeAlias = (
    contracts.JobSubmitted | contracts.OutputReported | contracts.JobClosed | contracts.JobFinished
    | contracts.JobProgressed | contracts.RetentionSet | contracts.AuditRecorded
    | contracts.ReservationRejected | contracts.ReservationSettled | contracts.CreditsGranted
    | contracts.CreditsExpired | contracts.CreditsReclaimed | contracts.AutoTopUpFailed
    | contracts.CreditsRefunded | contracts.RetryTokenIssued | contracts.ReportDeclined
    | contracts.AccountAlerted | contracts.EvaluationCharged | contracts.TrainingSettled
)
CONSUMES = Consumption.of("router", Consumed, passed_over=PassedOver)


def register(consumer: EventConsumer, intake: AttemptHandling) -> None:
    scheduler = intake.scheduler

    async def wait_for_room(_envelope: object) -> None:
        # Before the transaction: a full queue pauses consumption without holding a
        # pooled connection idle in an open transaction meanwhile.
        await scheduler.wait_for_room()

    @consumer.on(CreditsReserved, prepare=wait_for_room, claims=True)
    async def on_credits_reserved(ctx: HandlerContext, event: CreditsReserved) -> None:
        await admit(ctx, event, scheduler=scheduler)

    @consumer.on(RegenerationRequested)
    async def on_regeneration_requested(ctx: HandlerContext, event: RegenerationRequested) -> None:
        await regenerate(ctx, event, intake=intake)

    @consumer.on(CandidatesScored, claims=True)
    async def on_candidates_scored(ctx: HandlerContext, event: CandidatesScored) -> None:
        await learn(ctx, event, intake=intake)

    @consumer.on(CandidatesChecked, claims=True)
    async def on_candidates_checked(ctx: HandlerContext, event: CandidatesChecked) -> None:
        await learn(ctx, event, intake=intake)

    @consumer.on(ScoringFailed, claims=True)
    async def on_scoring_failed(ctx: HandlerContext, event: ScoringFailed) -> None:
        await learn(ctx, event, intake=intake)

    @consumer.on(JobCancelRequested)
    async def on_cancel_requested(ctx: HandlerContext, event: JobCancelRequested) -> None:
        await cancel(ctx, event, scheduler=scheduler)

    @consumer.on(JobErased)
    async def on_job_erased(ctx: HandlerContext, event: JobErased) -> None:
        await erase_prompt(ctx, event)

    @consumer.on(SubjectChanged)
    async def on_subject_changed(ctx: HandlerContext, event: SubjectChanged) -> None:
        await erase_subject(ctx, event)
