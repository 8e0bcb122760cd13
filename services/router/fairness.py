"""Which admitted job goes next: higher plans first, then paid tiers, tenants of one
class served fairly.

A job's class is its tenant's plan priority (higher first) and then its tier; classes are
served in strict order. Within a class, tenants take turns by deficit
round-robin: each visit gives a tenant a quantum of images to spend, and a job costs the
images it asks for, so a tenant of 10,000 one-image jobs and a tenant of four 4-image
jobs get the same share of the router, and neither waits for the other's backlog.
"""

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

Job = TypeVar("Job")

# stable is the tier tenants pay the most for, low-cost the least (see the price book).
DEFAULT_TIER_ORDER = ("stable", "fast", "low-cost")


class _TenantRoundRobin(Generic[Job]):
    """Deficit round-robin over the tenants of one tier."""

    def __init__(self, quantum: int) -> None:
        self._quantum = quantum
        self._queues: dict[str, deque[tuple[Job, int]]] = {}
        self._turns: deque[str] = deque()
        self._deficit: dict[str, int] = {}
        self._visit_started = False

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def push(self, job: Job, tenant: str, cost: int) -> None:
        if tenant not in self._queues:
            self._queues[tenant] = deque()
            self._turns.append(tenant)
            self._deficit[tenant] = 0
        self._queues[tenant].append((job, cost))

    def pop(self) -> Job | None:
        while self._turns:
            tenant = self._turns[0]
            if not self._visit_started:
                self._deficit[tenant] += self._quantum
                self._visit_started = True
            job, cost = self._queues[tenant][0]
            if cost <= self._deficit[tenant]:
                return self._take(tenant, job, cost)
            self._turns.rotate(-1)
            self._visit_started = False
        return None

    def pending(self, tenant: str) -> int:
        return len(self._queues.get(tenant, ()))

    def _take(self, tenant: str, job: Job, cost: int) -> Job:
        self._queues[tenant].popleft()
        self._deficit[tenant] -= cost
        if not self._queues[tenant]:
            # An idle tenant keeps no credit, or it could burst past the others later.
            del self._queues[tenant], self._deficit[tenant]
            self._turns.popleft()
            self._visit_started = False
        return job


class FairQueue(Generic[Job]):
    """Pending jobs by class (plan priority, tier) and tenant; `pop` returns the job that
    should run next."""

    def __init__(self, tier_order: Iterable[str] = DEFAULT_TIER_ORDER, quantum: int = 4) -> None:
        if quantum < 1:
            raise ValueError(f"quantum must be at least 1, got {quantum}")
        self._quantum = quantum
        self._tier_rank = {tier: rank for rank, tier in enumerate(tier_order)}
        if not self._tier_rank:
            raise ValueError("tier_order must name at least one tier")
        # (-priority, tier rank) -> its tenants' round-robin; sorted, so the first is served first.
        self._classes: dict[tuple[int, int], _TenantRoundRobin[Job]] = {}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._classes.values())

    def push(self, job: Job, tier: str, tenant: str, cost: int = 1, priority: int = 0) -> None:
        """Queue `job`; `cost` is what it takes from the tenant's share (its image count),
        `priority` its tenant's plan's (higher first, before any tier)."""
        if tier not in self._tier_rank:
            raise ValueError(f"unknown tier {tier!r}; known: {', '.join(self._tier_rank)}")
        if cost < 1:
            raise ValueError(f"cost must be at least 1, got {cost}")
        key = (-priority, self._tier_rank[tier])
        if key not in self._classes:
            self._classes[key] = _TenantRoundRobin(self._quantum)
            self._classes = dict(sorted(self._classes.items()))
        self._classes[key].push(job, tenant, cost)

    def pop(self) -> Job | None:
        for queue in self._classes.values():
            job = queue.pop()
            if job is not None:
                return job
        return None

    def pending(self, tier: str, tenant: str, priority: int = 0) -> int:
        queue = self._classes.get((-priority, self._tier_rank[tier]))
        return queue.pending(tenant) if queue else 0
