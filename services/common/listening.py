"""Listening for NOTIFY: a process listens on one connection a database, for every channel any
part of it hears (the bus's words, its outbox's commits, ingest's job log).

PostgreSQL (16) signals every listening backend of a database at each commit that notifies,
whatever the channel, and each one signalled reads the queue: with a connection a channel, the
five services' eleven listening backends were all woken at each of a job's twenty-odd notifying
commits. One connection a process, five.

`listen(channel, on_notify, on_lost=)` runs until cancelled: `on_notify(payload)` for each
NOTIFY on the channel, in order; `on_notify(None)` whenever listening on it (re)starts, since
commits may have happened while nobody listened; `on_lost()` when the connection is lost. A
lost connection is opened again after the shortest `retry_s` of the channels heard on it. The
connection's last statement LISTENs to every channel it hears, so that `pg_stat_activity`
shows them all; it closes with the last `listen` on it.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import psycopg.sql

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channel:
    """A notification channel (`LISTEN name`) of the database at `database_url`; a lost
    connection to it is opened again after `retry_s`."""

    database_url: str
    name: str
    retry_s: float


@dataclass(eq=False, kw_only=True)
class _Hearing:
    """One `listen`: its channel, its callbacks, and whether the connection listens for it."""

    channel: Channel
    on_notify: Callable[[str | None], None]
    on_lost: Callable[[], None] | None
    heard: bool = False

    def lost(self) -> None:
        if self.heard:
            self.heard = False
            if self.on_lost is not None:
                self.on_lost()


class _Connection:
    """A process's listening connection to one database, shared by every `listen` on it."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.hearings: list[_Hearing] = []
        self._woken = asyncio.Event()  # the socket has something to read, or a channel was added
        self._task: asyncio.Task[None] | None = None

    def add(self, hearing: _Hearing) -> None:
        self.hearings.append(hearing)
        self._woken.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="listening")

    def remove(self, hearing: _Hearing) -> asyncio.Task[None] | None:
        """Stop hearing; the connection's task, cancelled, once nobody else hears on it."""
        self.hearings.remove(hearing)
        hearing.lost()
        if self.hearings or self._task is None:
            return None
        task, self._task = self._task, None
        task.cancel()
        return task

    async def _run(self) -> None:
        while True:
            try:
                try:
                    async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
                        # What arrives while a LISTEN runs psycopg reads itself, and hands over here.
                        conn.add_notify_handler(lambda notice: self._dispatch(notice.channel, notice.payload))
                        await self._hear(conn)
                finally:
                    for hearing in self.hearings:
                        hearing.lost()
            except Exception:  # database away: whoever relies on this polls until it is back
                retry_s = min((hearing.channel.retry_s for hearing in self.hearings), default=1.0)
                log.warning("listening on %s failed; trying again in %ss", self._names(), retry_s, exc_info=True)
                await asyncio.sleep(retry_s)

    async def _hear(self, conn: psycopg.AsyncConnection[object]) -> None:
        """Read the socket when it has something to read and at no other time (psycopg's
        `notifies()` wakes every tenth of a second to look for an interrupt, a round of the
        event loop for nothing); LISTEN whenever a channel is added. A lost connection raises
        OperationalError (its socket reads as ready, and consuming it fails)."""
        loop, pgconn, encoding = asyncio.get_running_loop(), conn.pgconn, conn.info.encoding
        socket = pgconn.socket
        loop.add_reader(socket, self._woken.set)
        self._woken.set()  # every channel is LISTENed anew on a new connection
        try:
            while True:
                await self._woken.wait()
                self._woken.clear()
                pgconn.consume_input()
                while (notice := pgconn.notifies()) is not None:
                    self._dispatch(notice.relname.decode(encoding), notice.extra.decode(encoding))
                if added := [hearing for hearing in self.hearings if not hearing.heard]:
                    loop.remove_reader(socket)  # psycopg waits on the socket itself while it runs a statement
                    try:
                        await conn.execute(psycopg.sql.SQL("; ").join(
                            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(name)) for name in self._names()))
                    finally:
                        loop.add_reader(socket, self._woken.set)
                    for hearing in added:
                        if hearing in self.hearings:  # not gone while LISTEN ran
                            hearing.heard = True
                            hearing.on_notify(None)
        finally:
            loop.remove_reader(socket)

    def _dispatch(self, channel: str, payload: str) -> None:
        for hearing in self.hearings:
            if hearing.heard and hearing.channel.name == channel:
                hearing.on_notify(payload)

    def _names(self) -> list[str]:
        return sorted({hearing.channel.name for hearing in self.hearings})


# Each event loop's listening connections, by database: tests run several loops in a process.
_CONNECTIONS: dict[tuple[asyncio.AbstractEventLoop, str], _Connection] = {}


async def listen(channel: Channel, on_notify: Callable[[str | None], None],
                 *, on_lost: Callable[[], None] | None = None) -> None:
    """Call `on_notify(payload)` for each NOTIFY on `channel`, and `on_notify(None)` whenever
    listening (re)starts; `on_lost()` when the connection is lost. Runs until cancelled."""
    where = (asyncio.get_running_loop(), channel.database_url)
    connection = _CONNECTIONS.setdefault(where, _Connection(channel.database_url))
    hearing = _Hearing(channel=channel, on_notify=on_notify, on_lost=on_lost)
    connection.add(hearing)
    try:
        await asyncio.Event().wait()
    finally:
        if (closing := connection.remove(hearing)) is not None:
            if _CONNECTIONS.get(where) is connection:
                del _CONNECTIONS[where]
            await asyncio.gather(closing, return_exceptions=True)
