"""The per-job event log, without I/O: what a client is told about a job, entry by entry.

Ingest appends entries in the same transaction as it changes the job's read model, from
the view before, the view after and the event that moved it, so a redelivered event (which
the inbox skips) adds nothing, and a job's `seq` runs 1, 2, 3 … without gaps. Entry types:

* `state`: the job's shown state changed (`state`, `previous`, `reason`, and `failure`
  when it failed or ended early); the final state is the job's last `state` entry;
* `billing.reserved`, `billing.rejected`, `billing.settled`: what the ledger held and charged;
* `attempt.started`, `attempt.generated`, `attempt.scored`: each generation attempt, with
  candidates generated, scored and passing, and the provider cost so far; `attempt.scored`
  also names each rejected candidate's failed and unmeasured dimensions, and the candidates
  left without a verdict once the job had enough;
* `progress`: how far a large job has come, each time the scorer has scored a chunk of it: `candidates` planned, `generated`, `scored` and `passing` so
  far (never going down), `images` asked, `needed` still, `eta_s` (null when unknown) and
  `previews`, the candidates that passed since the previous entry (`index`, `url` of the
  candidate-image route, read with the caller's key); a job finished in one step may have
  none. Tenants who subscribe get the same payload as the `job.progress` webhook, throttled;
* `delivery.published`: the images delivered (count, no links: links are signed per read); a
  video job's also lists each clip (`n`, `media_type`, `duration_ms`, `fps`, `codec`, `frames`);
* `cancel.requested`: the client (or the sweeper) asked the job to end;
* `report.refunded`, `report.retry_token`, `report.declined`: a reported image's outcome;
* `receipt.issued`: the job's signed receipt (`sha256`, `url`), just before its final state.

A job's course ends with its final state: a fact about that course that ingest reads after
it (an attempt's start that crossed a cancel, a reservation read after its settlement: the
topics are read in no set order) still changes the view, but the log then takes only what
happens after the end, the reports on delivered images.
"""

from datetime import datetime
from typing import Any, assert_never

from services.common.contracts import (
    AttemptStarted,
    CandidatesChecked,
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
    JobFinished,
    JobProgressed,
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
from services.ingest.jobs.domain import is_job_event
from services.ingest.jobs.view import Change, JobView, NewEntry, rank, refused_outputs

AFTER_THE_END = "report."  # the entries a job's log still takes once it is shown final


def first_entries(view: JobView, at: datetime) -> list[NewEntry]:
    """What a new job's log opens with: the state it was submitted in, whom and what it is for."""
    return [NewEntry(type="state", time=at, payload=payload) for payload in state_changes(None, view)]


def entries_for(change: Change) -> list[NewEntry]:
    """What applying the change's event at its time (moving the job from `before` to `after`)
    tells a client: the facts the event carries first, then the states the job was shown
    passing through, and a receipt issued just before the final state, also when the job
    passed through another state on the way (`delivering`, when the scores arrived after
    the delivery)."""
    before, after, at = change.before, change.after, change.at
    facts = [NewEntry(type=kind, time=at, payload=payload) for kind, payload in event_facts(after, change.event)
             if not before.final or kind.startswith(AFTER_THE_END)]
    states = [NewEntry(type="state", time=at, payload=payload) for payload in state_changes(before, after)]
    if after.receipt is not None and before.receipt is None:
        states.insert(max(len(states) - 1, 0), NewEntry(type="receipt.issued", time=at,
                                                        payload=after.receipt.model_dump()))
    return facts + states


def state_changes(before: JobView | None, after: JobView) -> list[dict[str, Any]]:
    """Each shown state the job entered, in order: states the view moved past in one step
    (`generating` when the attempt's start arrived with its end) are named too."""
    if before is not None and before.state == after.state:
        return []
    start = rank(before.state) if before is not None else -1
    passed = [s for s in ("admitted", "generating", "scoring", "delivering")
              if start < rank(s) < rank(after.state) and s in after.timestamps]
    changes, previous = [], before.state if before is not None else None
    for state in [*passed, after.state]:
        change: dict[str, Any] = {"state": state, "previous": previous, "reason": after.reasons.get(state, "")}
        if after.final and state == after.state and after.failure is not None:
            change["failure"] = after.failure.model_dump(mode="json")
        if previous is None:  # the job's first entry names whom and what it is for, where it says
            change |= {name: getattr(after, name) for name in ("metadata", "end_user") if getattr(after, name)}
        changes.append(change)
        previous = state
    return changes


def event_facts(after: JobView, event: Event | None) -> list[tuple[str, dict[str, Any]]]:
    if event is None:  # a request of ingest's own: its states tell it
        return []
    assert is_job_event(event), f"{event.event_type} is not an event about a job"
    match event:
        case CreditsReserved():
            training = {"training_credits": event.training_credits} if event.training_credits else {}
            return [("billing.reserved", {"credits": event.amount, "unit_price": event.unit_price} | training)]
        case ReservationRejected():
            return [("billing.rejected", {"code": event.reason_code, "reason": event.reason})]
        case ReservationSettled():
            settled = {"reserved": event.reserved, "charged": event.charged, "released": event.released,
                       "delivered_images": event.delivered_images}
            seconds = {"seconds_charged": event.delivered_seconds} if after.video is not None else {}
            return [("billing.settled", settled | seconds)]
        case AttemptStarted():
            return [("attempt.started", {"attempt": event.attempt, "images_needed": event.images_needed})]
        case CandidatesGenerated():
            refused = {"refused": refused_outputs(event.calls)} if any(c.refused_outputs for c in event.calls) else {}
            return [("attempt.generated", {"attempt": event.attempt, "candidates": len(event.candidates),
                                           "cost_micro_usd": event.cost_micro_usd,
                                           "cost_so_far_micro_usd": after.provider_cost_micro_usd,
                                           "final": event.final} | refused)]
        case CandidatesChecked():
            return [("progress", progress_entry(after, event))]
        case RegenerationRequested():
            return [("attempt.scored", attempt_scored(after, event.attempt) | {"needed": event.needed,
                                                                                "reason": event.reason})]
        case CandidatesScored():
            return [("attempt.scored", attempt_scored(after, event.attempt) | {"selected": len(event.selected)})]
        case JobDelivered():
            published = {"images": len(event.images), "requested": event.requested}
            return [("delivery.published", published | ({"clips": clips_of(event)} if after.video is not None else {}))]
        case JobCancelRequested():
            return [("cancel.requested", {"reason": event.reason, "ends_as": event.final_state})]
        case CreditsRefunded():
            return [("report.refunded", {"n": event.n, "credits": event.amount, "reason": event.reason})]
        case RetryTokenIssued():
            return [("report.retry_token", {"n": event.n, "reason": event.reason})]
        case ReportDeclined():
            return [("report.declined", {"n": event.n, "reason": event.reason})]
        case IdentityPlanned():
            use = event.use.model_dump(mode="json", exclude={"subject_id"})
            return [("identity.planned", {"subject_id": str(event.use.subject_id), "trains": event.trains} | use)]
        case IdentityTrained():
            return [("identity.trained", {"subject_id": str(event.subject_id), "identity_id": str(event.identity_id),
                                          "provider": event.provider, "model": event.model,
                                          "weights_sha256": event.weights_sha256})]
        case IdentityTrainingFailed():
            return [("identity.training_failed", {"subject_id": str(event.subject_id), "code": event.failure_code,
                                                  "reason": event.reason})]
        case TrainingSettled():
            return [("billing.training_settled", {"held": event.held, "charged": event.charged,
                                                  "released": event.released, "reason": event.reason})]
        # Told by the states they move the job through (a failure or an end carries its
        # reason there), by the receipt, or not a client's concern.
        case (JobSubmitted() | OutputReported() | JobClosed() | JobFinished() | JobProgressed() | JobErased()
              | CandidatesStored() | GenerationFailed() | ScoringFailed() | DeliveryFailed() | JobCanceled()
              | WebhookSent()):
            return []
        case _:
            assert_never(event)


def clips_of(event: JobDelivered) -> list[dict[str, Any]]:
    """Each delivered clip as the file says: its type, length, rate, codec and frames."""
    return [{"n": o.n, "media_type": o.media_type, "duration_ms": o.duration_ms, "fps": o.fps, "codec": o.codec,
             "frames": o.frames} for o in event.images]


def progress_entry(after: JobView, event: CandidatesChecked) -> dict[str, Any]:
    """A large job's counts as the scorer last reported them, with a link to each candidate
    that passed in this chunk (the candidate-image route: it needs the caller's key)."""
    counts = after.progress.model_dump() if after.progress is not None else {}
    previews = [{"index": s.index, "url": f"/v1/jobs/{after.id}/candidates/{s.index}/image"}
                for s in event.scores if s.passed]
    return counts | {"images": event.images, "previews": previews}


def attempt_scored(after: JobView, attempt: int) -> dict[str, Any]:
    """An attempt's candidates scored and passing, and how many pass over every attempt so
    far; why each rejected one was, and which were left without a verdict."""
    own = [s for s in after.scores if s.attempt == attempt]
    return {"attempt": attempt, "scored": len(own), "passed": sum(s.passed for s in own),
            "passed_so_far": sum(s.passed for s in after.scores),
            "cost_so_far_micro_usd": after.provider_cost_micro_usd,
            "rejected": [{"index": s.index, "failed": s.failed, "not_measured": s.not_measured}
                         for s in own if s.judged and not s.passed],
            "not_judged": [s.index for s in own if not s.judged]}
