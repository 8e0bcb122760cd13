"""Live entries of the job log for the streams this process serves, whichever replica wrote them.

Every transaction that appends entries notifies `job_log_<schema>` with the tenant's id
(PostgreSQL delivers it on commit). One connection per process listens and wakes the
streams of that tenant; a woken stream reads the log by number from where it is, so a
notification that is lost or merged with another costs nothing but a little delay: the
streams also look again every `stream_poll_s`.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request

from services.common.contracts import FINAL_STATES
from services.common.listening import Channel, listen
from services.common.runtime import ServiceRuntime
from services.common.supervision import stop_tasks, supervise
from services.ingest.jobs import store

PAGE = 200


class LogWatch:
    """The process's one listener to the log's notifications, and the streams it wakes: each
    reads the service's database, and looks again every `poll_s` (also how soon a lost
    listening connection is opened again)."""

    def __init__(self, runtime: ServiceRuntime, poll_s: float) -> None:
        self.pool, self.database_url, self.schema = runtime.pool, runtime.database_url, runtime.name
        self.poll_s = poll_s
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def _notified(self, tenant_id: str | None) -> None:
        """A tenant's entries committed; None: listening (re)started, anything may have."""
        groups = [self._waiting.get(tenant_id, set())] if tenant_id is not None else self._waiting.values()
        for group in groups:
            for woken in group:
                woken.set()

    @contextlib.contextmanager
    def watching(self, tenant_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever entries of the tenant commit; clear it before each read."""
        woken = asyncio.Event()
        self._waiting.setdefault(tenant_id, set()).add(woken)
        try:
            yield woken
        finally:
            self._waiting[tenant_id].discard(woken)
            if not self._waiting[tenant_id]:
                del self._waiting[tenant_id]

    async def start(self) -> None:
        channel = Channel(self.database_url, store.log_channel(self.schema), self.poll_s)
        self._task = supervise("ingest-log-watch", lambda: listen(channel, self._notified))

    async def stop(self) -> None:
        await stop_tasks(self._task)

    async def until_woken(self, woken: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), self.poll_s)

    async def job_entries(self, job_id: UUID, tenant_id: str, *, after: int) -> AsyncIterator[dict[str, Any]]:
        """The job's entries after `after`, then each as it commits, until the job is final and
        every entry up to its final state has been given."""
        with self.watching(tenant_id) as woken:
            while True:
                woken.clear()
                async with self.pool.connection() as conn:
                    # The state first: a final state is committed with its entry, so the read below sees it.
                    state = await store.job_state(conn, job_id, tenant_id=tenant_id)
                    rows = await store.read_log(conn, job_id, after=after, limit=PAGE)
                for row in rows:
                    yield row
                    after = row["seq"]
                if len(rows) == PAGE:
                    continue
                if state is None or state in FINAL_STATES:
                    return
                await self.until_woken(woken)

    async def tenant_entries(self, tenant_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        """All of the tenant's entries after `tenant_seq` `after`, then each as it commits, for ever."""
        with self.watching(tenant_id) as woken:
            while True:
                woken.clear()
                async with self.pool.connection() as conn:
                    rows = await store.read_tenant_log(conn, tenant_id, after=after, limit=PAGE)
                for row in rows:
                    yield row
                    after = row["tenant_seq"]
                if len(rows) < PAGE:
                    await self.until_woken(woken)


async def get_log_watch(request: Request) -> LogWatch:
    log_watch: LogWatch = request.app.state.log_watch
    return log_watch


# The watch as a route's dependency: `watch: Watch`.
Watch = Annotated[LogWatch, Depends(get_log_watch)]
