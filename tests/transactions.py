"""Watching PostgreSQL for sessions that sit idle inside a transaction: a service that
waits on S3 or on computation while its transaction is open holds a pooled connection (and
its row locks) for that long."""

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg


@dataclass
class IdleInTransaction:
    held: list[tuple] = field(default_factory=list)  # (last query, how long idle) of each sighting
    polls: int = 0


@contextlib.contextmanager
def watch_idle_in_transaction(database_url: str, where: str, params: list, longer_than_ms: int = 300
                              ) -> Iterator[IdleInTransaction]:
    """Poll pg_stat_activity while the block runs for sessions matching `where` (SQL on its
    columns) idle in a transaction for longer than `longer_than_ms`."""
    seen, done = IdleInTransaction(), threading.Event()

    def watch() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not done.is_set():
                seen.held.extend(conn.execute(
                    "SELECT query, now() - state_change FROM pg_stat_activity WHERE state = 'idle in transaction'"
                    f" AND now() - state_change > make_interval(secs => %s) AND ({where})",
                    [longer_than_ms / 1000, *params]).fetchall())
                seen.polls += 1
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()
