"""Whose turn is next, wherever work waits: tenants served in weighted fair turns, and each
tenant's own work by its rank.

Start-time fair queuing over tenants: a tenant's turns are spaced by `cost / share` on a
virtual clock, the tenant whose next turn starts earliest goes next, and a tenant that had
nothing waiting rejoins at the clock, so it banks no credit while idle and waits behind no
backlog when it comes back. A higher plan is a larger share, never a place in front of the
plans below: a tenant of share 4 takes four turns for every one of a tenant of share 1, and
the second still takes its turn. An item's cost is its turn's, or, where it is known only as
the turn comes, what `cost_of` says then (a consumer's event: what such events took lately).
Within a tenant, items go by rank (lower first), then in the order they came. The router
orders its attempts with it, and the scorer's and delivery's consumers their events
(services/common/bus/read_ahead.py).
"""

import asyncio
import contextlib
import heapq
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable
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
    def __init__(self, cost_of: Callable[[Item], float] | None = None) -> None:
        """`cost_of`: an item's cost as its turn comes, where it is known only then (else its
        turn's, as pushed)."""
        self._cost_of = cost_of
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

    def pop(self, only: Callable[[str], bool] | None = None, *, within_a_turn: bool = False) -> Item | None:
        """The item whose turn it is, or None when nothing waits; with `only`, the item whose turn
        it is among the tenants `only` lets through (None when none of theirs waits), and with
        `within_a_turn` too, only if its turn starts less than one of its own turns after the
        next turn of all (a tenant let through goes ahead of the others by one turn at most)."""
        tenants = [named for named in self._tenants.items() if only is None or only(named[0])]
        if not tenants:
            return None
        name, tenant = min(tenants, key=lambda named: named[1].precedence())
        if within_a_turn:
            first = min(self._tenants.values(), key=_Tenant.precedence)
            if tenant.start - first.start >= self._cost(tenant.items[0]) / tenant.share:
                return None
        queued = heapq.heappop(tenant.items)
        item, cost = queued[3], self._cost(queued)
        self._clock = tenant.start
        tenant.start += cost / tenant.share
        if not tenant.items:
            del self._tenants[name]
            self._remember_finish(name, tenant.start)
        return item

    def _cost(self, queued: tuple[Any, int, float, Item]) -> float:
        return queued[2] if self._cost_of is None else self._cost_of(queued[3])

    def waiting(self, tenant: str) -> int:
        """How many items of `tenant` wait."""
        queued = self._tenants.get(tenant)
        return len(queued.items) if queued else 0

    def _remember_finish(self, name: str, finish: float) -> None:
        self._finished[name] = finish
        if len(self._finished) > FORGET_AFTER:
            self._finished = {n: f for n, f in self._finished.items() if f > self._clock}


class FairPlaces:
    """`places` places that async callers of one event loop take in fair turns: a free place is
    taken at once when nobody waits; otherwise the caller waits in its turn, and a place given
    back passes straight to the waiter whose turn it is (nothing that comes later takes it
    first). A waiter canceled as its turn came gives the place on."""

    def __init__(self, places: int) -> None:
        self.places = places
        self.busy = 0
        self._turns: FairTurns[asyncio.Future[None]] = FairTurns()

    @property
    def full(self) -> bool:
        """Every place is taken, or someone waits for one."""
        return self.busy >= self.places or len(self._turns) > 0

    async def take(self, turn: Turn) -> None:
        if not self.full:
            self.busy += 1
            return
        waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.push(waiting, turn)
        try:
            await waiting
        except asyncio.CancelledError:
            if waiting.done() and not waiting.cancelled():  # given the place as it was canceled
                self.give_back()
            raise

    def give_back(self) -> None:
        while (following := self._turns.pop()) is not None:
            if not following.done():
                following.set_result(None)  # the place passes on; the count of busy stays
                return
        self.busy -= 1


class PlacesAndSpare:
    """`places` places taken in fair turns (`FairPlaces`), and, with `spare_lane`, one place
    more: taken at once by a tenant with nothing else under way here while every other place
    is taken or waited for, so that its one piece of work neither waits for a flood's in hand
    nor queues behind it. It holds one piece at a time, and a flood, whose work is always under
    way, never takes it."""

    def __init__(self, places: int, *, spare_lane: bool) -> None:
        self.fair = FairPlaces(places)
        self.spare_lane = spare_lane
        self._spare_busy = False
        self._under_way: Counter[str] = Counter()  # pieces of each tenant taken or waiting here

    @contextlib.asynccontextmanager
    async def place(self, turn: Turn) -> AsyncIterator[bool]:
        """Holds a place while the body runs; says whether it is the spare one."""
        spare = self.spare_lane and self.fair.full and not self._spare_busy and not self._under_way[turn.tenant]
        self._under_way[turn.tenant] += 1
        try:
            if spare:
                self._spare_busy = True
            else:
                await self.fair.take(turn)
            try:
                yield spare
            finally:
                if spare:
                    self._spare_busy = False
                else:
                    self.fair.give_back()
        finally:
            self._under_way[turn.tenant] -= 1
            if not self._under_way[turn.tenant]:
                del self._under_way[turn.tenant]
