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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.common.db import advisory_key, try_advisory_xact_lock
from services.common.supervision import every, stop_tasks, supervise


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
    until `stop()`; the subclass's `sweep_once` takes its round with `exclusive_round`."""

    interval_s: float
    task_name: str
    _task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = supervise(self.task_name, lambda: every(self.interval_s, self.sweep_once, what=self.task_name))

    async def stop(self) -> None:
        await stop_tasks(self._task)
