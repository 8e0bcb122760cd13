"""How events move a job's view (view.py): its state machine, without I/O.

`submitted → admitted | rejected`; `admitted → generating → scoring → delivering →
succeeded | partially_succeeded | failed`; any non-final state `→ canceled` (the client
asked, delivery confirmed) or `→ expired` (the deadline passed with too few images, or the
sweeper gave up on a stuck job). Events of different services arrive on different topics,
so not always in order: a job's state only moves forward and a final job stays as it is,
while the data an event carries (scores, billing) is merged whenever it arrives. When the
job entered each state and why are in `timestamps` and `reasons`. A rework loop (scoring asked for
more candidates) keeps the job in `scoring` and is recorded in `regenerations`; the scores
of every attempt are kept, each tagged with its attempt.

A final state is shown only with everything it implies: a delivered job's selection and
scores, and every final job's settlement. Until then the final state the job reached is
held in `reached` (kept out of the API) and `state` shows where the view has got to.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard, assert_never, get_args
from uuid import UUID

from services.common.contracts import (
    DEADLINE_EXCEEDED,
    FINAL_STATES,
    AttemptStarted,
    CandidatesChecked,
    CandidateScore,
    CandidatesGenerated,
    CandidatesScored,
    CandidatesStored,
    CreditsRefunded,
    CreditsReserved,
    DeliveryFailed,
    Event,
    GenerationFailed,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    JobCanceled,
    JobCancelRequested,
    JobClosed,
    JobDelivered,
    JobErased,
    JobEvent,
    JobFinished,
    JobProgressed,
    JobSpec,
    JobSubmitted,
    OutputReported,
    RegenerationRequested,
    ReportDeclined,
    ReservationRejected,
    ReservationSettled,
    RetryTokenIssued,
    ScoringFailed,
    TrainingSettled,
    WebhookSent,
)
from services.ingest.jobs.view import (
    PROGRESS_ANNOUNCED_EVERY_S,
    Billing,
    Failure,
    JobView,
    Progress,
    Regeneration,
    ReportOutcome,
    State,
    TrainingLine,
    erased,
    rank,
    refusal_note,
    stage_costs,
    submitted_view,
    with_receipt,
)

# Named here too for the modules that read the state machine and the view together.
__all__ = ["JobView", "Progress", "State", "erased", "rank", "submitted_view", "with_receipt"]

def merged_scores(view: JobView, scores: list[CandidateScore]) -> list[CandidateScore]:
    """Every candidate's score once, by index, whatever order attempts are reported in."""
    by_index = {score.index: score for score in view.scores} | {score.index: score for score in scores}
    return [by_index[index] for index in sorted(by_index)]


def progress_of(event: CandidatesChecked, before: Progress | None = None) -> Progress:
    """Where the job stands after `event`. The scorer checks a job's chunks side by side, so
    a check that read fewer stored, scored or passing candidates can arrive after one that
    read more: what was counted once stays counted, and progress never goes back."""
    generated, scored, passing = event.generated, event.scored, event.passing
    if before is not None:
        generated, scored, passing = (max(generated, before.generated), max(scored, before.scored),
                                      max(passing, before.passing))
    return Progress(candidates=event.candidates, generated=generated, scored=scored, passing=passing,
                    needed=max(0, event.images - passing), eta_s=event.eta_s)


def with_regeneration(view: JobView, event: RegenerationRequested) -> list[Regeneration]:
    earlier = [r for r in view.regenerations if r.attempt != event.attempt]
    added = Regeneration(attempt=event.attempt, passed=event.passed, needed=event.needed, reason=event.reason)
    return sorted([*earlier, added], key=lambda r: r.attempt)


@dataclass(frozen=True, kw_only=True)
class Move:
    """Where an event takes a job: to `state`, at `at`, for `reason`, with the fields of the
    view it changes."""

    state: State
    at: datetime
    reason: str
    changes: Mapping[str, object] = field(default_factory=dict)


def advance(view: JobView, move: Move) -> JobView:
    """Merge the move's changes; move to its state only if that is forward from where the job
    is. The first final state reached is held in `reached` until `shown_when_complete` shows
    it; a later terminal event changes nothing."""
    state, at, reason = move.state, move.at, move.reason
    if state in FINAL_STATES and (view.final or view.reached):
        return view
    timestamps, reasons = dict(view.timestamps), dict(view.reasons)
    # When and why the job first entered the state, whichever of its events arrived first.
    # (Ties broken by the reason, so any arrival order gives the same view.)
    if state not in timestamps or (at, reason) < (timestamps[state], reasons.get(state, "")):
        timestamps[state], reasons[state] = at, reason
    reached, shown = view.reached, view.state
    if state in FINAL_STATES:
        reached = state
    elif not view.final and rank(state) > rank(view.state):
        shown = state
    return view.model_copy(update=dict(move.changes) | {
        "timestamps": timestamps,
        "reasons": reasons,
        "state": shown,
        "reached": reached,
        "updated_at": max(view.updated_at, at),
    })


def complete(view: JobView, final_state: str) -> bool:
    """The view holds everything `final_state` implies: the admission and settlement of every
    job that was admitted, the generation of every attempt scored, and the selection and
    scores of a job that got as far as delivery."""
    if final_state == "rejected":
        return view.billing.state == "rejected"
    if view.billing.training is not None and view.billing.training.state == "reserved":
        return False  # the training line settles with the job, or before it
    if final_state in ("canceled", "expired"):  # released, or never held (the ledger refused it)
        return view.billing.state in ("settled", "rejected")
    if view.billing.state != "settled" or view.billing.price_book_version is None:  # None: reservation not seen
        return False
    if view.attempts < max((score.attempt for score in view.scores), default=0):
        return False
    if final_state in ("succeeded", "partially_succeeded") or (view.failure and view.failure.stage == "delivery"):
        return bool(view.selected) and set(view.selected) <= {score.index for score in view.scores}
    return True


def shown_when_complete(view: JobView) -> JobView:
    if view.reached and not view.final and complete(view, view.reached):
        return view.model_copy(update={"state": view.reached, "reached": None})  # nothing is held back now
    return view


def with_generated(view: JobView, event: CandidatesGenerated) -> dict[str, Any]:
    generated = view.generated | {event.attempt: len(event.candidates)}
    return {"generated": generated, "candidates": sum(generated.values()),
            "provider_cost_micro_usd": view.provider_cost_micro_usd + event.cost_micro_usd,
            "stages": [s for s in view.stages if s.attempt != event.attempt] + stage_costs(event.attempt, event.calls),
            "attempts": max(view.attempts, event.attempt)}


def failed_or_expired(failure: Failure, at: datetime, *, changes: Mapping[str, object] | None = None) -> Move:
    """A failure, or the deadline passing (then the job expires), at the failure's stage."""
    state: State = "expired" if failure.code == DEADLINE_EXCEEDED else "failed"
    return Move(state=state, at=at, reason=failure.reason, changes={**(changes or {}), "failure": failure})


def cancel_requested(view: JobView, at: datetime, *, final_state: str = "canceled") -> JobView:
    """Asked to end (by the client, or by the sweeper: then it expires); the job ends when
    delivery confirms, or when the sweeper gives up waiting."""
    if view.cancel_requested_at is not None:
        return view
    return view.model_copy(update={"cancel_requested_at": at, "cancel_requested_as": final_state,
                                   "updated_at": max(view.updated_at, at)})


class JobIsFinal(Exception):
    pass


def request_cancel(view: JobView, at: datetime, *, reason: str) -> tuple[JobView, JobCancelRequested | None]:
    """Cancel a job that is not final; asking again changes nothing and publishes nothing,
    also once the job has ended since the first request (a client retrying its cancel)."""
    if view.cancel_requested_at is not None:
        return view, None
    if view.final:
        raise JobIsFinal(f"job {view.id} is {view.state} already; a final job cannot be canceled")
    event = JobCancelRequested(job_id=view.id, tenant_id=view.tenant_id, reason=reason, requested_at=at)
    return cancel_requested(view, at), event


# ---- the sweeper -------------------------------------------------------------------------


# The events about a job the read model takes, whoever publishes them: `merged` and
# `job_log.event_facts` each end their match over it in assert_never, so one added here without
# its branch fails the type check, and ingest projects none that is not here (handlers.as_projected).
AnyJobEvent = (
    JobSubmitted | OutputReported | JobCancelRequested | JobClosed | JobFinished | JobProgressed | JobErased
    | CreditsReserved | ReservationRejected | ReservationSettled | CreditsRefunded | RetryTokenIssued | ReportDeclined
    | AttemptStarted | CandidatesGenerated | CandidatesStored | GenerationFailed
    | CandidatesChecked | CandidatesScored | RegenerationRequested | ScoringFailed
    | JobDelivered | DeliveryFailed | JobCanceled | WebhookSent
    | IdentityPlanned | IdentityTrained | IdentityTrainingFailed | TrainingSettled
)
JOB_EVENTS: tuple[type[JobEvent], ...] = get_args(AnyJobEvent)


def is_job_event(event: Event) -> TypeGuard[AnyJobEvent]:
    return isinstance(event, JOB_EVENTS)


def apply_event(view: JobView, event: Event, *, at: datetime) -> JobView:
    """The view after `event`, whatever order the job's events arrive in."""
    assert is_job_event(event), f"{event.event_type} is not an event about a job"
    assert event.job_id == view.id, f"{event.event_type} of job {event.job_id} applied to job {view.id}"
    return checked_transition(view, shown_when_complete(merged(view, event, at=at)))


def merged(view: JobView, event: AnyJobEvent, *, at: datetime) -> JobView:
    match event:
        case (CreditsReserved() | ReservationRejected() | ReservationSettled() | CreditsRefunded() | RetryTokenIssued()
              | ReportDeclined() | TrainingSettled()):
            return billed(view, event, at=at)
        case (AttemptStarted() | CandidatesGenerated() | CandidatesChecked() | GenerationFailed()
              | RegenerationRequested() | CandidatesScored() | ScoringFailed() | JobDelivered() | DeliveryFailed()):
            return along_the_line(view, event, at=at)
        case JobCancelRequested():
            return cancel_requested(view, event.requested_at, final_state=event.final_state)
        case JobCanceled():
            code = "canceled" if event.final_state == "canceled" else DEADLINE_EXCEEDED
            failure = Failure(code=code, stage=view.state, reason=event.reason)
            return advance(view, Move(state=event.final_state, at=at, reason=event.reason, changes={"failure": failure}))
        case JobClosed():
            code = "canceled" if event.final_state == "canceled" else DEADLINE_EXCEEDED
            failure = Failure(code=code, stage=event.stuck_in, reason=event.reason)
            return advance(view, Move(state=event.final_state, at=at, reason=event.reason, changes={"failure": failure}))
        case JobFinished() if event.receipt_sha256:  # ingest's own announcement, read back by a replay
            return with_receipt(view, event.receipt_sha256)
        case JobErased():
            return erased(view, event.requested_at)
        case IdentityPlanned() | IdentityTrained() | IdentityTrainingFailed() if view.subject is not None:
            subject = view.subject.with_identity(event)
            return view.model_copy(update={"subject": subject, "updated_at": max(view.updated_at, at)})
        # What the view does not show: the submission made it, the rest is told elsewhere
        # (reports through their outcomes, progress and endings through the view itself).
        case (JobSubmitted() | OutputReported() | JobFinished() | JobProgressed() | CandidatesStored() | WebhookSent()
              | IdentityPlanned() | IdentityTrained() | IdentityTrainingFailed()):  # of a job without a subject
            return view
        case _:
            assert_never(event)


LedgerEvent = (CreditsReserved | ReservationRejected | ReservationSettled | CreditsRefunded | RetryTokenIssued
               | ReportDeclined | TrainingSettled)


def billed(view: JobView, event: LedgerEvent, *, at: datetime) -> JobView:
    """The view after the ledger's word on the job: its reservation, its settlement, its reports."""
    match event:
        case CreditsReserved():
            training = view.billing.training or (TrainingLine(reserved=event.training_credits)
                                                 if event.training_credits else None)
            reserved = Billing(state="reserved", reserved=event.amount, price_book_version=event.pricebook_version,
                               training=training)
            settled = view.billing.model_copy(update={"price_book_version": event.pricebook_version})
            billing = settled if view.billing.state == "settled" else reserved
            return advance(view, Move(state="admitted", at=at, reason=f"{event.amount} credits reserved", changes={"billing": billing}))
        case ReservationRejected() if view.final or view.reached:  # ended before the ledger held anything
            return view.model_copy(update={"billing": Billing(state="rejected"), "updated_at": max(view.updated_at, at)})
        case ReservationRejected():
            failure = Failure(code=event.reason_code, stage="admission", reason=event.reason)
            return advance(view, Move(state="rejected", at=at, reason=event.reason,
                                      changes={"failure": failure, "billing": Billing(state="rejected")}))
        case ReservationSettled():
            billing = view.billing.model_copy(update={"state": "settled", "reserved": event.reserved, "charged": event.charged,
                                                          "released": event.released, "retry_tokens_used": event.tokens_used,
                                                          "revenue_micro_usd": event.revenue_micro_usd,
                                                          "seconds_charged": event.delivered_seconds
                                                          if view.video is not None else None})
            return view.model_copy(update={"billing": billing, "updated_at": max(view.updated_at, at)})
        case CreditsRefunded():
            return add_report(view, ReportOutcome(n=event.n, outcome="refunded", credits=event.amount, reason=event.reason), at=at)
        case RetryTokenIssued():
            return add_report(view, ReportOutcome(n=event.n, outcome="retry_token", reason=event.reason), at=at)
        case ReportDeclined():
            return add_report(view, ReportOutcome(n=event.n, outcome="declined", reason=event.reason), at=at)
        case TrainingSettled():
            line = TrainingLine(state="charged" if event.outcome == "charged" else "released", reserved=event.held,
                                charged=event.charged, released=event.released, reason=event.reason)
            billing = view.billing.model_copy(update={"training": line})
            return view.model_copy(update={"billing": billing, "updated_at": max(view.updated_at, at)})
        case _:
            assert_never(event)


LineEvent = (AttemptStarted | CandidatesGenerated | CandidatesChecked | GenerationFailed | RegenerationRequested
             | CandidatesScored | ScoringFailed | JobDelivered | DeliveryFailed)


def along_the_line(view: JobView, event: LineEvent, *, at: datetime) -> JobView:
    """The view after a step of the line: an attempt, its candidates, their scores, the delivery."""
    match event:
        case AttemptStarted():
            view = admitted_by_attempt(view, event.started_at, attempt=event.attempt)
            return advance(view, Move(state="generating", at=event.started_at, reason=f"attempt {event.attempt} started"))
        case CandidatesGenerated():
            view = admitted_by_attempt(view, event.started_at, attempt=event.attempt)
            view = advance(view, Move(state="generating", at=event.started_at, reason=f"attempt {event.attempt} started"))
            return advance(view, Move(state="scoring", at=at, reason=f"attempt {event.attempt} generated {len(event.candidates)}"
                                      f" candidates{refusal_note(event.calls)}", changes=with_generated(view, event)))
        case CandidatesChecked() if view.final or view.reached:
            return view
        case CandidatesChecked():
            announce = (view.progress_announced_at is None
                        or (at - view.progress_announced_at).total_seconds() >= PROGRESS_ANNOUNCED_EVERY_S)
            announced = {"progress_announced_at": at, "progress_announcements": view.progress_announcements + 1}
            return view.model_copy(update={"scores": merged_scores(view, event.scores), "progress": progress_of(event, view.progress),
                                           "updated_at": max(view.updated_at, at)} | (announced if announce else {}))
        case GenerationFailed():
            failure = Failure(code=event.failure_code, stage="generation", reason=event.reason)
            return advance(view, failed_or_expired(failure, at))
        case RegenerationRequested():
            return advance(view, Move(state="scoring", at=at, reason=event.reason, changes={"scores": merged_scores(view, event.scores),
                                                                    "regenerations": with_regeneration(view, event)}))
        case CandidatesScored():
            outputs = "clips" if view.video is not None else "images"
            return advance(view, Move(state="delivering", at=at, reason=f"{len(event.selected)} of {event.images} {outputs} selected",
                                      changes={"scores": merged_scores(view, [*event.scores, *event.selected_scores]),
                                       "selected": event.selected}))
        case ScoringFailed():
            failure = Failure(code=event.failure_code, stage="scoring", reason=event.reason)
            return advance(view, failed_or_expired(failure, at, changes={"scores": merged_scores(view, event.scores)}))
        case JobDelivered():
            state: State = "succeeded" if len(event.images) >= event.requested else "partially_succeeded"
            outputs = "clips" if view.video is not None else "images"
            return advance(view, Move(state=state, at=at, reason=f"{len(event.images)} of {event.requested} {outputs} delivered",
                                      changes={"outputs": event.images}))
        case DeliveryFailed():
            failure = Failure(code=event.failure_code, stage="delivery", reason=event.reason)
            return advance(view, failed_or_expired(failure, at))
        case _:
            assert_never(event)


def checked_transition(before: JobView, after: JobView) -> JobView:
    """`after`, once what every transition keeps true holds: the shown state only moves
    forward, a final job stays as it is, and a final state is held back in `reached` only
    while the shown one is not final."""
    assert rank(after.state) >= rank(before.state), f"job {before.id} moved back: {before.state} -> {after.state}"
    assert not before.final or after.state == before.state, f"final job {before.id} moved: {before.state} -> {after.state}"
    assert after.reached is None or (after.reached in FINAL_STATES and not after.final), (
        f"job {after.id} holds {after.reached!r} back while showing {after.state}")
    return after


def admitted_by_attempt(view: JobView, at: datetime, *, attempt: int) -> JobView:
    """The router starts attempts only for a job whose credits are held, so an attempt that
    arrives before the ledger's reservation (ingest reads its topics in no set order) shows
    the job admitted first: every job passes through `admitted`, in the view and in its log.
    Whichever says so first in time is kept, so the view is the same in any arrival order."""
    return advance(view, Move(state="admitted", at=at, reason=f"credits held (attempt {attempt} started)"))


def progressed(before: JobView, after: JobView) -> JobProgressed | None:
    """The announcement of a job's progress, when applying an event made it due."""
    if after.progress is None or after.progress_announcements == before.progress_announcements:
        return None
    return JobProgressed(job_id=after.id, tenant_id=after.tenant_id, seq=after.progress_announcements,
                         progress=after.progress.model_dump(mode="json") | {"job_id": str(after.id),
                                                                             "images": after.images},
                         webhook_url=after.webhook_url, webhook_events=after.webhook_events)


def finished(before: JobView, after: JobView) -> JobFinished | None:
    """The announcement of a job shown final for the first time (its webhooks go out on it)."""
    if not after.final or before.final:
        return None
    return JobFinished(job_id=after.id, tenant_id=after.tenant_id, state=after.state, view=after.announced(),
                       webhook_url=after.webhook_url, webhook_events=after.webhook_events,
                       receipt_sha256=after.receipt.sha256 if after.receipt else None)


def replay_views(events: list[tuple[datetime, Event]],
                 open_prompt: Callable[[JobSpec], str | None] = lambda spec: None) -> dict[UUID, JobView]:
    """Every job's read model rebuilt from its events (each with its event time), through the
    same `apply_event` as the live projection: from its submission (its prompt opened with
    `open_prompt`), then in event-time order."""
    views = {event.job_id: submitted_view(event.job, open_prompt(event.job))
             for _, event in events if isinstance(event, JobSubmitted)}
    for at, event in sorted(events, key=lambda timed: timed[0]):
        if isinstance(event, JobEvent) and not isinstance(event, JobSubmitted) and event.job_id in views:
            views[event.job_id] = apply_event(views[event.job_id], event, at=at)
    return views


def add_report(view: JobView, outcome: ReportOutcome, *, at: datetime) -> JobView:
    reports = [r for r in view.reports if r.n != outcome.n] + [outcome]
    return view.model_copy(update={"reports": sorted(reports, key=lambda r: r.n), "updated_at": max(view.updated_at, at)})


