"""Which admitted job goes next: tenants in weighted fair turns, a higher plan a larger share
(never the only one), and each tenant's jobs by the job's priority, then its tier.

Tenants take turns by start-time fair queuing (services/common/turns.py): a job costs the
images it asks for, so a tenant of 10,000 one-image jobs and a tenant of four 4-image jobs
get the same share of the router, and neither waits for the other's backlog. A tenant's plan
multiplies its share (twice per step of priority), so a higher plan gets more of the router
while the plans below still get theirs. Among one tenant's jobs, interactive ones go ahead of
bulk ones, and paid tiers ahead of cheaper ones; at a tie between tenants, the better job.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.common.contracts import JOB_PRIORITIES
from services.common.turns import FairTurns, Turn, plan_share

Job = TypeVar("Job")

# stable is the tier tenants pay the most for, low-cost the least (see the price book).
DEFAULT_TIER_ORDER = ("stable", "fast", "low-cost")


@dataclass(frozen=True, slots=True, kw_only=True)
class Place:
    """Where a job queues: its tenant and tier; `cost` is what it takes from the tenant's share
    (its image count), `priority` its tenant's plan's (a larger share), `job_priority` its place
    among the tenant's own jobs."""

    tenant: str
    tier: str
    cost: int = 1
    priority: int = 0
    job_priority: str = JOB_PRIORITIES[0]


class FairQueue(Generic[Job]):
    """Pending jobs by tenant; `pop` returns the job that should run next."""

    def __init__(self, tier_order: Iterable[str] = DEFAULT_TIER_ORDER) -> None:
        self._tier_rank = {tier: rank for rank, tier in enumerate(tier_order)}
        if not self._tier_rank:
            raise ValueError("tier_order must name at least one tier")
        self._job_rank = {priority: rank for rank, priority in enumerate(JOB_PRIORITIES)}
        self._turns: FairTurns[Job] = FairTurns()

    def __len__(self) -> int:
        return len(self._turns)

    def push(self, job: Job, place: Place) -> None:
        """Queue `job` in its place."""
        tier, job_priority, cost = place.tier, place.job_priority, place.cost
        if tier not in self._tier_rank:
            raise ValueError(f"unknown tier {tier!r}; known: {', '.join(self._tier_rank)}")
        if job_priority not in self._job_rank:
            raise ValueError(f"unknown job priority {job_priority!r}; known: {', '.join(self._job_rank)}")
        if cost < 1:
            raise ValueError(f"cost must be at least 1, got {cost}")
        self._turns.push(job, Turn(tenant=place.tenant, share=plan_share(place.priority),
                                   rank=(self._job_rank[job_priority], self._tier_rank[tier]), cost=cost))

    def pop(self, only: Callable[[str], bool] | None = None) -> Job | None:
        """The job whose turn it is (with `only`, among the tenants it lets through), or None."""
        return self._turns.pop(only)

    def pending(self, tenant: str) -> int:
        return self._turns.waiting(tenant)
