"""What a call must hold before it is made: a slot at its provider and its share of the
attempt's cost cap; and waiting for a slot to free up.

A waiter sleeps until a released slot is offered to it (one waiter woken per free slot, in
arrival order) or until a pause or breaker cooldown ends; it never polls. A woken waiter
that leaves its slot unused passes it on to the next one.
"""

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Mapping

from services.router.clock import Clock
from services.router.health import BreakerState, ProviderHealth, run_with_timeout


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
        health = self._health[name]
        if not health.limiter.has_capacity():
            return False
        if self._breaker_enabled and not health.breaker.try_acquire():
            return False
        return health.limiter.try_acquire()

    def release(self, name: str) -> None:
        self._health[name].limiter.release()
        self.offer([name])

    async def wait(self, names: list[str], timeout_s: float | None) -> bool:
        """Wait until one of `names` can take a call; False if `timeout_s` passed first."""
        deadline = self._clock.now() + timeout_s if timeout_s is not None else None
        woken = False
        while not self.any_available(names):
            wait_s = self._next_check_s(names, deadline)
            if wait_s is not None and wait_s <= 0:
                return False
            woken = await self._sleep_until_offered(names, wait_s)
        if woken:
            # Pass the baton: if this waiter leaves a slot unused, the next one gets it.
            asyncio.get_running_loop().call_soon(self.offer, names)
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
        for name in names:
            health = self._health[name]
            if health.available():
                self._waiters.wake(name, health.limiter.current_limit - health.limiter.in_flight)

    def _next_check_s(self, names: list[str], deadline: float | None) -> float | None:
        """How long to sleep at most: until a pause or cooldown ends, or the deadline; None: until woken."""
        now = self._clock.now()
        healths = [self._health[name] for name in names]
        moments = [h.limiter.paused_until for h in healths if h.limiter.paused_until > now]
        moments += [at for h in healths if h.breaker.state is BreakerState.OPEN and (at := h.breaker.half_open_at) is not None]
        if deadline is not None:
            moments.append(deadline)
        return min(moments) - now if moments else None

    async def _sleep_until_offered(self, names: list[str], limit_s: float | None) -> bool:
        """Sleep until a slot of `names` is offered (True) or `limit_s` passes (False)."""
        key, offered = self._waiters.add(names)
        try:
            if limit_s is None:
                await offered
            else:
                await run_with_timeout(self._clock, offered, timeout_s=limit_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(key, names)


class CapacityWaiters:
    """Tasks waiting for providers to free up, woken one per free slot in arrival order.

    Waking every waiter on every release would cost O(waiters) per call when thousands
    of batches wait out a saturated market.
    """

    def __init__(self) -> None:
        self._by_provider: dict[str, OrderedDict[int, asyncio.Future[None]]] = defaultdict(OrderedDict)
        self._next_key = 0

    def add(self, names: list[str]) -> tuple[int, asyncio.Future[None]]:
        key, self._next_key = self._next_key, self._next_key + 1
        offered = asyncio.get_running_loop().create_future()
        for name in names:
            self._by_provider[name][key] = offered
        return key, offered

    def remove(self, key: int, names: list[str]) -> None:
        for name in names:
            self._by_provider[name].pop(key, None)

    def wake(self, name: str, slots: int) -> None:
        waiting = self._by_provider.get(name)
        while slots > 0 and waiting:
            _, offered = waiting.popitem(last=False)
            if not offered.done():
                offered.set_result(None)
                slots -= 1
