"""What a call must hold before it is made: a slot at its provider and its share of the
attempt's cost cap; and waiting for a slot to free up.

Waiting calls take their turns by tenant (services/common/turns.py: fair turns, a higher plan
a larger share, a tenant's interactive jobs ahead of its bulk ones, a turn's cost the images
the call asks for), so that one tenant's backlog of calls never holds another's behind it. A
freed slot is handed to the waiter whose turn it is, taken on its behalf: nothing that comes
later can take it first, and a call that finds waiters ahead of it queues behind them (in its
turn). The slot handed over is the waiting task's own (a context variable): its next call to
that provider uses it, and one it leaves unused goes to the next waiter (`return_unused`). A
waiter sleeps until a slot is handed to it or until a pause or breaker cooldown ends; it never
polls.
"""

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from contextvars import ContextVar

from services.common.turns import FairTurns, Turn
from services.router.clock import Clock
from services.router.health import BreakerState, ProviderHealth, run_with_timeout

# The provider whose slot was handed to this task while it waited, not used yet.
_HANDED: ContextVar[str | None] = ContextVar("handed_slot", default=None)


class CostBudget:
    """The attempt's remaining cap: spent so far plus what calls in flight are expected to cost."""

    def __init__(self, cap_micro_usd: int | None) -> None:
        self.cap = cap_micro_usd
        self.spent = 0
        self.reserved = 0
        self.refused = False

    def try_reserve(self, amount: int) -> bool:
        if self.cap is not None and self.spent + self.reserved + amount > self.cap:
            self.refused = True
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: int, actual: int) -> None:
        self.reserved -= reserved
        self.spent += actual


class ProviderSlots:
    """The providers' call slots: taken and given back around each call, and waited for."""

    def __init__(self, health: Mapping[str, ProviderHealth], clock: Clock, *, breaker_enabled: bool) -> None:
        self._health = health
        self._clock = clock
        self._breaker_enabled = breaker_enabled
        self._waiters = CapacityWaiters()

    def any_available(self, names: list[str]) -> bool:
        return any(self._health[name].available() for name in names)

    def try_acquire(self, name: str) -> bool:
        """Take a slot of `name`: the one handed to this task, or a free one no waiter is owed."""
        if _HANDED.get() == name:
            _HANDED.set(None)
            return True
        self.offer([name])  # the waiters ahead go first
        return self._take(name)

    def release(self, name: str) -> None:
        self._health[name].limiter.release()
        self.offer([name])

    def return_unused(self) -> None:
        """The slot handed to this task and not used goes back, to the next waiter."""
        name = _HANDED.get()
        if name is not None:
            _HANDED.set(None)
            self._health[name].breaker.record(None)  # a half-open probe it held is not made
            self.release(name)

    async def wait(self, names: list[str], timeout_s: float | None, *, turn: Turn) -> bool:
        """Wait, in `turn`, until one of `names` can take a call (its slot may be handed to this
        task); False if `timeout_s` passed first."""
        deadline = self._clock.now() + timeout_s if timeout_s is not None else None
        while True:
            self.offer(names)
            if self.any_available(names):
                return True
            wait_s = self._next_check_s(names, deadline)
            if wait_s is not None and wait_s <= 0:
                return False
            handed = await self._sleep_until_offered(names, wait_s, turn=turn)
            if handed is not None:
                _HANDED.set(handed)
                return True

    def may_free_up_within(self, names: list[str], limit_s: float) -> bool:
        """Whether a provider may take calls within `limit_s`: one is only busy, or its breaker half-opens."""
        if limit_s <= 0 or not names:
            return False
        breakers = [self._health[name].breaker for name in names]
        if not self._breaker_enabled or any(b.state is not BreakerState.OPEN for b in breakers):
            return True
        reopening = [b.half_open_at for b in breakers if b.half_open_at is not None]  # set on every open breaker
        return min(reopening) < self._clock.now() + limit_s

    def offer(self, names: list[str]) -> None:
        """Hand the free slots of `names` to their waiters, in their turns."""
        for name in names:
            while self._health[name].available():
                offered = self._waiters.next(name)
                if offered is None:
                    break
                offered.set_result(name if self._take(name) else None)

    def _take(self, name: str) -> bool:
        health = self._health[name]
        if not health.limiter.has_capacity():
            return False
        if self._breaker_enabled and not health.breaker.try_acquire():
            return False
        return health.limiter.try_acquire()

    def _next_check_s(self, names: list[str], deadline: float | None) -> float | None:
        """How long to sleep at most: until a pause or cooldown ends, or the deadline; None: until woken."""
        now = self._clock.now()
        healths = [self._health[name] for name in names]
        moments = [h.limiter.paused_until for h in healths if h.limiter.paused_until > now]
        moments += [at for h in healths if h.breaker.state is BreakerState.OPEN and (at := h.breaker.half_open_at) is not None]
        if deadline is not None:
            moments.append(deadline)
        return min(moments) - now if moments else None

    async def _sleep_until_offered(self, names: list[str], limit_s: float | None, *, turn: Turn) -> str | None:
        """Sleep until a slot of `names` is handed over (its provider), or woken without one or
        `limit_s` passes (None)."""
        offered = self._waiters.add(names, turn)
        try:
            if limit_s is None:
                await asyncio.shield(offered)
            else:
                await run_with_timeout(self._clock, asyncio.shield(offered), timeout_s=limit_s)
        except TimeoutError:
            pass
        except BaseException:
            self._give_back(offered)
            raise
        if offered.done():
            return offered.result()
        offered.cancel()  # its places in the queues are passed over
        return None

    def _give_back(self, offered: "asyncio.Future[str | None]") -> None:
        """A waiter cancelled while a slot was handed to it gives the slot back."""
        if not offered.done():
            offered.cancel()
        elif (name := offered.result()) is not None:
            self._health[name].breaker.record(None)
            self.release(name)


class CapacityWaiters:
    """Tasks waiting for providers to free up, in fair turns per provider; a waiter for several
    providers waits in each one's turns, and is handed the first slot that frees up (the places
    it leaves, its future done, are passed over)."""

    def __init__(self) -> None:
        self._by_provider: dict[str, FairTurns[asyncio.Future[str | None]]] = defaultdict(FairTurns)

    def add(self, names: list[str], turn: Turn) -> "asyncio.Future[str | None]":
        offered: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        for name in names:
            self._by_provider[name].push(offered, turn)
        return offered

    def next(self, name: str) -> "asyncio.Future[str | None] | None":
        """The waiter for `name` whose turn it is, or None when none waits."""
        waiting = self._by_provider.get(name)
        while waiting:
            offered = waiting.pop()
            if offered is not None and not offered.done():
                return offered
        return None
