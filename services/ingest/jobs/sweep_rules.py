"""The sweeper's rules, without I/O: how long a job may stay in each state, when it is
overdue, and what one look at a job decides (`sweep`); `sweeper.py` runs the rounds."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.contracts import Event, JobCancelRequested, JobClosed
from services.ingest.jobs.domain import JobView, apply_event, cancel_requested


@dataclass(frozen=True)
class SweepPolicy:
    """How long a job may stay in each non-final state; how long after its own deadline the
    router and scorer get to end it themselves (a partial delivery); how long delivery
    gets to answer a request to end before the sweeper ends the job itself."""

    state_deadline_s: dict[str, float]
    deadline_grace_s: float
    answer_timeout_s: float

    @property
    def shortest_wait_s(self) -> float:
        return min([*self.state_deadline_s.values(), self.deadline_grace_s, self.answer_timeout_s])


def overdue(view: JobView, now: datetime, *, policy: SweepPolicy) -> str | None:
    """Why the job should have ended by now, or None."""
    if view.deadline_s is not None:
        if now > view.created_at + timedelta(seconds=view.deadline_s + policy.deadline_grace_s):
            return f"the job's deadline of {view.deadline_s} s passed while it was {view.state}"
    limit = policy.state_deadline_s.get(view.state)
    entered = view.timestamps.get(view.state, view.created_at)
    if limit is not None and now > entered + timedelta(seconds=limit):
        return f"the job was {view.state} for more than {limit:g} s, that state's deadline"
    return None


def sweep(view: JobView, now: datetime, *, policy: SweepPolicy) -> tuple[JobView, Event | None]:
    """One look at a job that is not final: ask it to end when it is overdue (it expires),
    and end it here when an earlier request got no answer in time. A job whose final state
    is reached but not shown yet (its settlement on the way) is left alone."""
    if view.final or view.reached:
        return view, None
    if view.cancel_requested_at is not None:
        if now < view.cancel_requested_at + timedelta(seconds=policy.answer_timeout_s):
            return view, None
        reason = f"asked to end at {view.cancel_requested_at:%H:%M:%S}, nothing answered in {policy.answer_timeout_s:g} s"
        closed = JobClosed(job_id=view.id, tenant_id=view.tenant_id, final_state=view.cancel_requested_as or "expired",
                           stuck_in=view.state, reason=reason)
        return apply_event(view, closed, at=now), closed
    why = overdue(view, now, policy=policy)
    if why is None:
        return view, None
    event = JobCancelRequested(job_id=view.id, tenant_id=view.tenant_id, reason=why, final_state="expired",
                               requested_at=now)
    return cancel_requested(view, now, final_state="expired"), event
