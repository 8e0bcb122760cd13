"""Periodic rounds that one replica at a time runs: the advisory-lock round.

A sweeper (ingest's stuck jobs, delivery's retention) runs a round every few seconds on
every replica; the replica that takes the round's transaction-level advisory lock does the
work and the others skip it. The lock is released when the transaction ends, so a replica
that dies mid-round frees it at once.

    async with exclusive_round(runtime.pool, runtime.name, "sweeper") as conn:
        if conn is None:
            return 0          # another replica holds this round
        ...                   # the round's work, in the lock's transaction
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.common import telemetry
from services.common.db import advisory_key, try_advisory_xact_lock
from services.common.supervision import BACKGROUND_FAILURES, every, failed, stop_tasks, supervise


def round_lock_id(schema: str, round_name: str) -> int:
    """The advisory lock of `round_name` in the service whose schema is `schema`."""
    return advisory_key(f"{schema}:{round_name}")


@asynccontextmanager
async def exclusive_round(pool: "AsyncConnectionPool[Any]", schema: str, *, round_name: str
                          ) -> AsyncIterator[psycopg.AsyncConnection[Any] | None]:
    """A connection in a transaction that holds the round's lock, or None when another
    replica holds it (the transaction then ends at once)."""
    async with pool.connection() as conn, conn.transaction():
        held = await try_advisory_xact_lock(conn, round_lock_id(schema, round_name))
        yield conn if held else None


class PeriodicRound:
    """A sweeper's life: `sweep_once` every `interval_s` in a task of its own from `start()`
    until `stop()`; the subclass's `sweep_once` takes its round with `exclusive_round`.

    With `idle_interval_s`, a round that looks for work rests after one that found none (its
    `sweep_once` returned 0): until `wake()` (work was made for it in this process), until the
    work it saw waiting falls due (`next_due_s`), or `idle_interval_s` at most, which finds
    what another replica made and did not take. Idle, ingest's batch and evaluation runners
    looked every 0.25 s and 0.5 s: 6 of the 13 statements a second an idle platform sent."""

    interval_s: float
    task_name: str
    idle_interval_s: float | None = None
    _task: asyncio.Task[None] | None = None
    _woken: asyncio.Event | None = None

    async def sweep_once(self) -> int:
        raise NotImplementedError

    async def next_due_s(self) -> float | None:
        """After a round that found nothing: how long until work seen waiting falls due (None: none waits)."""
        return None

    def wake(self) -> None:
        """Work was made for these rounds: the next one comes now, not after a rest."""
        if self._woken is not None:
            self._woken.set()

    async def start(self) -> None:
        if self.idle_interval_s is None:
            self._task = supervise(self.task_name, lambda: every(self.interval_s, self.sweep_once, what=self.task_name))
            return
        self._woken = asyncio.Event()
        BACKGROUND_FAILURES.labels(self.task_name)
        self._task = supervise(self.task_name, self._rounds)

    async def stop(self) -> None:
        await stop_tasks(self._task)

    async def _rounds(self) -> None:
        assert self._woken is not None
        while True:
            self._woken.clear()  # a wake() during the round cuts the rest after it short
            rest_s = await self._round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), rest_s)

    async def _round(self) -> float:
        """One round; how long to rest after it. A failed one is logged and counted, and the
        next comes after `interval_s`, as `every`'s would."""
        assert self.idle_interval_s is not None
        try:
            with telemetry.counted_for(self.task_name):
                if await self.sweep_once():
                    return self.interval_s
                due_s = await self.next_due_s()
        except Exception:
            failed(self.task_name)
            return self.interval_s
        return self.idle_interval_s if due_s is None else min(self.idle_interval_s, max(self.interval_s, due_s))
