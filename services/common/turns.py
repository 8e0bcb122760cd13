"""Whose turn is next, wherever work waits: tenants served in weighted fair turns, and each
tenant's own work by its rank.

Start-time fair queuing over tenants: a tenant's turns are spaced by `cost / share` on a
virtual clock, the tenant whose next turn starts earliest goes next, and a tenant that had
nothing waiting rejoins at the clock, so it banks no credit while idle and waits behind no
backlog when it comes back. A higher plan is a larger share, never a place in front of the
plans below: a tenant of share 4 takes four turns for every one of a tenant of share 1, and
the second still takes its turn. Within a tenant, items go by rank (lower first), then in the
order they came. The router orders its attempts with it, and the scorer's and delivery's
consumers their events (services/common/bus/read_ahead.py).
"""

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from services.common.contracts import JOB_PRIORITIES

Item = TypeVar("Item")

# Each step of a plan's priority doubles its share: free (0) 1, pro (1) 2, enterprise (2) 4.
SHARE_STEP = 2
# Idle tenants' finishing turns ahead of the clock are remembered (so that a tenant emptying
# its queue for a moment does not jump the others); beyond this many, those behind the clock,
# which mean nothing any more, are forgotten.
FORGET_AFTER = 1024


def plan_share(priority: int) -> int:
    """The share of a tenant whose plan has this queue priority (higher, larger)."""
    return int(SHARE_STEP ** max(0, priority))


@dataclass(frozen=True, kw_only=True)
class Turn:
    """Whose an item is (`tenant`, with its plan's `share`), its `rank` among the tenant's own
    items (lower first), and its `cost`: what its turn takes of the tenant's share."""

    tenant: str
    share: int = 1
    rank: Any = ()
    cost: float = 1


# A job's place among its tenant's own jobs (JOB_PRIORITIES: interactive before bulk).
JOB_RANK = {priority: rank for rank, priority in enumerate(JOB_PRIORITIES)}


def job_turn(tenant: str, *, plan_priority: int, job_priority: str) -> Turn:
    """A job's turn: its tenant's, with its plan's share, then its own priority among the
    tenant's jobs."""
    return Turn(tenant=tenant, share=plan_share(plan_priority), rank=(JOB_RANK.get(job_priority, 0),))


@dataclass(kw_only=True)
class _Tenant(Generic[Item]):
    start: float  # on the virtual clock, when the tenant's next turn starts
    share: int
    arrival: int
    items: list[tuple[Any, int, float, Item]] = field(default_factory=list)  # (rank, order, cost, item)

    def precedence(self) -> tuple[Any, ...]:
        """Earliest turn first; at a tie the larger share, the better item, the tenant that came first."""
        return self.start, -self.share, self.items[0][0], self.arrival


class FairTurns(Generic[Item]):
    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant[Item]] = {}
        self._clock = 0.0  # the start of the last turn given
        self._finished: dict[str, float] = {}  # idle tenants whose last turn ends past the clock
        self._order = itertools.count()

    def __len__(self) -> int:
        return sum(len(tenant.items) for tenant in self._tenants.values())

    def push(self, item: Item, turn: Turn) -> None:
        """Queue `item` for the turn's tenant."""
        if turn.share < 1 or turn.cost <= 0:
            raise ValueError(f"share must be at least 1 and cost positive, got share={turn.share}, cost={turn.cost}")
        waiting = self._tenants.get(turn.tenant)
        if waiting is None:
            start = max(self._clock, self._finished.pop(turn.tenant, self._clock))
            waiting = self._tenants[turn.tenant] = _Tenant(start=start, share=turn.share, arrival=next(self._order))
        waiting.share = turn.share
        heapq.heappush(waiting.items, (turn.rank, next(self._order), turn.cost, item))

    def pop(self, only: Callable[[str], bool] | None = None) -> Item | None:
        """The item whose turn it is, or None when nothing waits; with `only`, the item whose turn
        it is among the tenants `only` lets through (None when none of theirs waits)."""
        tenants = [named for named in self._tenants.items() if only is None or only(named[0])]
        if not tenants:
            return None
        name, tenant = min(tenants, key=lambda named: named[1].precedence())
        _, _, cost, item = heapq.heappop(tenant.items)
        self._clock = tenant.start
        tenant.start += cost / tenant.share
        if not tenant.items:
            del self._tenants[name]
            self._remember_finish(name, tenant.start)
        return item

    def next_tenant(self) -> str | None:
        """The tenant whose turn is next (`pop` would serve it), or None when nothing waits."""
        if not self._tenants:
            return None
        return min(self._tenants.items(), key=lambda named: named[1].precedence())[0]

    def waiting(self, tenant: str) -> int:
        """How many items of `tenant` wait."""
        queued = self._tenants.get(tenant)
        return len(queued.items) if queued else 0

    def _remember_finish(self, name: str, finish: float) -> None:
        self._finished[name] = finish
        if len(self._finished) > FORGET_AFTER:
            self._finished = {n: f for n, f in self._finished.items() if f > self._clock}
