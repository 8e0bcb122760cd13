"""Which attempt runs next, and when to stop taking work.

Attempts asked for (by CreditsReserved or RegenerationRequested) are rows in the
database. The handler that asks for one announces it, and the scheduler queues it in a
`FairQueue` (tenants in fair turns, a higher plan a larger share; a tenant's interactive jobs
ahead of its bulk ones, then paid tiers); every poll interval it
also looks for attempts no live router holds (their router died, or a run failed). It
starts queued attempts while providers have room, up to `max_concurrent_attempts` at
once, and beyond that, up to as many more, the attempt of a tenant that has none running (it
then waits for its turn at the providers' slots, handed out in fair turns too); the claim an attempt takes first keeps two routers from running it. The queue holds at most `max_queued_attempts`: when it
is full, because every capable provider is busy, `wait_for_room` holds the consumer, so
consumption pauses instead of work piling up in memory, and the backlog stays in Kafka as
consumer lag, where autoscaling sees it. The queue must still be deep enough to hold the
jobs of every tenant waiting, or a small tenant's jobs wait behind a large one's in Kafka.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from services.common import telemetry
from services.common.db import Pool
from services.common.supervision import failed, stop_tasks, supervise
from services.router import store
from services.router.engine import RoutingEngine
from services.router.fairness import FairQueue, Place
from services.router.store import QueuedAttempt

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class AttemptScheduler:
    """Runs attempts (`run`) as `owner`, taking their claims for `lease_s`; looks for attempts no
    router holds every `poll_interval_s`."""

    pool: Pool
    engine: RoutingEngine
    run: Callable[[QueuedAttempt], Awaitable[None]]
    owner: str = field(kw_only=True)
    max_queued: int = field(kw_only=True)
    max_running: int = field(kw_only=True)
    poll_interval_s: float = field(kw_only=True)
    lease_s: float = field(kw_only=True)
    queue: FairQueue[QueuedAttempt] = field(init=False, default_factory=FairQueue)
    known: set[tuple[UUID, int]] = field(init=False, default_factory=set)  # queued or running, by (job id, attempt)
    # The attempts running, by the task that runs each: only their claims are renewed, so
    # the claim of a task that died lapses and the attempt is taken again.
    running: dict[asyncio.Task[None], QueuedAttempt] = field(init=False, default_factory=dict)
    _changed: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _room: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    # Asked for by a committed transaction, not queued yet; counted as queued, so a burst
    # of events cannot overfill the queue.
    _announced: list[QueuedAttempt] = field(init=False, default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._room.set()

    # ---- the consumer's side ------------------------------------------------------------

    async def wait_for_room(self) -> None:
        """Return once the queue can take more; until then the consumer takes no new events."""
        while len(self.queue) + len(self._announced) >= self.max_queued:
            self._room.clear()
            await self._room.wait()

    def announce(self, request: QueuedAttempt) -> None:
        """An attempt was asked for by a transaction that has committed (call it after the
        commit, or its claim could fail and wait for the next look)."""
        self._announced.append(request)
        self._changed.set()

    def abort(self, job_id: UUID) -> None:
        """The job was canceled: stop its running attempts, calls in flight included (the
        adapters ask their providers to cancel). Queued ones find their claim closed."""
        for task, request in list(self.running.items()):
            if request.job_id == job_id:
                task.cancel()

    # ---- running --------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [supervise("router-dispatch", self._dispatch_forever),
                       supervise("router-renew-claims", self._renew_forever)]

    async def stop(self, grace_s: float = 15) -> None:
        """Stop taking attempts; let those running finish (their claims lapse if they cannot)."""
        await stop_tasks(*self._tasks)
        if self.running:
            await asyncio.wait(list(self.running), timeout=grace_s)
        await stop_tasks(*self.running)

    async def _dispatch_forever(self) -> None:
        # The look for unheld attempts comes every poll interval however busy the router is: a
        # router that is never a whole interval without a change (attempts asked for and
        # ending, as under a steady stream of jobs) would otherwise never take again an
        # attempt whose run failed and whose claim lapsed.
        next_look = time.monotonic()
        while True:
            try:
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + self.poll_interval_s
                    await self._look_for_unheld()
                self._queue_all(self._announced)
                self._announced = []
                self._start_what_fits()
            except Exception:
                failed("router-dispatch")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, next_look - time.monotonic()))
            self._changed.clear()

    async def _look_for_unheld(self) -> None:
        room = self.max_queued - len(self.queue)
        if room > 0:
            with telemetry.counted_for("router-unheld-attempts"):
                async with self.pool.connection() as conn:
                    self._queue_all(await store.claimable_attempts(conn, room + len(self.known)))

    def _queue_all(self, requests: list[QueuedAttempt]) -> None:
        for request in requests:
            if request.key not in self.known and len(self.queue) < self.max_queued:
                self.known.add(request.key)
                self.queue.push(request, Place(tenant=request.tenant_id, tier=request.tier, cost=request.images_needed,
                                               priority=request.priority, job_priority=request.job_priority))

    def _start_what_fits(self) -> None:
        while True:
            if len(self.running) < self.max_running and self.engine.has_capacity():
                request = self.queue.pop()
            elif len(self.running) < 2 * self.max_running:
                # Full, or every provider busy: a tenant with nothing running still starts its
                # attempt (as many more as the places), which takes its turn at the providers'
                # slots (capacity.py), so one tenant's attempts never keep another's from them.
                request = self.queue.pop(only=self._runs_nothing)
            else:
                return
            if request is None:
                return
            self._room.set()
            task = asyncio.create_task(self._run(request), name=f"attempt-{request.job_id}-{request.attempt}")
            self.running[task] = request

    def _runs_nothing(self, tenant: str) -> bool:
        return all(running.tenant_id != tenant for running in self.running.values())

    async def _run(self, request: QueuedAttempt) -> None:
        """One attempt. If it fails outright (the database went away under it), its claim is no
        longer renewed and lapses, and the attempt is taken again, here or by another router."""
        try:
            await self.run(request)
        except Exception:
            failed("router-attempt")
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.running.pop(task, None)
            self.known.discard(request.key)
            self._changed.set()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            held = [request.key for request in self.running.values()]
            if not held:
                continue
            try:
                with telemetry.counted_for("router-renew-claims"):
                    async with self.pool.connection() as conn:
                        await store.renew_claims(conn, self.owner, keys=held, lease_s=self.lease_s)
            except Exception:
                failed("router-renew-claims")
