"""The sweeper's policy: how long a job may stay in each state, and when it is overdue.
`domain.sweep` applies it to a job; `sweeper.py` runs the rounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # domain.py imports this module: its sweep applies the policy
    from services.ingest.domain import JobView


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


def overdue(view: JobView, now: datetime, policy: SweepPolicy) -> str | None:
    """Why the job should have ended by now, or None."""
    if view.deadline_s is not None:
        if now > view.created_at + timedelta(seconds=view.deadline_s + policy.deadline_grace_s):
            return f"the job's deadline of {view.deadline_s} s passed while it was {view.state}"
    limit = policy.state_deadline_s.get(view.state)
    entered = view.timestamps.get(view.state, view.created_at)
    if limit is not None and now > entered + timedelta(seconds=limit):
        return f"the job was {view.state} for more than {limit:g} s, that state's deadline"
    return None
