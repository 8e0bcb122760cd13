"""PostgreSQL access: one schema per service, versioned SQL migrations, a connection pool.

Each service keeps its migrations as `migrations/NNNN_name.sql` files in its own package.
The outbox and inbox tables every service needs come first, from this package.
"""

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, Self, TypeAlias, TypeVar, cast

import psycopg
import psycopg.sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

COMMON_MIGRATIONS = "services.common"
# What the services' pools hand out: connections whose rows are dicts (open_pool).
Conn: TypeAlias = psycopg.AsyncConnection[DictRow]
Pool: TypeAlias = AsyncConnectionPool[Conn]
T = TypeVar("T")
log = logging.getLogger(__name__)


FORMERLY = re.compile(r"\A-- formerly: (\S+)\n")


class MigrationNumberTaken(Exception):
    """Two migrations of one package carry the same number: their order would be alphabetical
    by accident."""


def migration_files(package: str) -> list[tuple[str, str]]:
    """The package's migrations in order, (version, sql); each number is used once."""
    folder = resources.files(package) / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    numbers = [name.split("_", 1)[0] for name in names]
    if taken := sorted({n for n in numbers if numbers.count(n) > 1}):
        raise MigrationNumberTaken(f"{package}: migration numbers used twice: {', '.join(taken)}")
    return [(name.removesuffix(".sql"), (folder / name).read_text()) for name in names]


def former_version(sql: str) -> str | None:
    """The name a renumbered migration was applied under before (its first line says
    `-- formerly: NNNN_name`): a database that applied it then does not apply it again."""
    match = FORMERLY.match(sql)
    return match.group(1) if match else None


def advisory_key(name: str) -> int:
    """The key of PostgreSQL's advisory lock named `name`: the first 8 bytes of its SHA-256,
    as the signed bigint pg_advisory_lock takes. Every named lock of the platform uses it."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def try_advisory_xact_lock(conn: psycopg.AsyncConnection[Any], key: int) -> bool:
    """Takes the advisory lock `key` until `conn`'s transaction ends, if no one holds it."""
    row = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS held", [key])).fetchone()
    assert row is not None, "a SELECT of a function answers one row"
    return bool(row["held"])


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    """A statement the server must answer: that it does is what a readiness check asks."""
    await conn.execute("SELECT 1")


# How long a migration waits for a lock on a table before it gives up (and the service's start
# with it, to be tried again): a migration queued behind a long transaction would otherwise
# hold up every reader and writer queued behind it, on a busy table for as long.
MIGRATION_LOCK_TIMEOUT_S = 5.0


async def migrate(database_url: str, schema: str, *, packages: list[str],
                  lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S) -> list[str]:
    """Apply the not-yet-applied migrations of `packages`, in order, inside `schema`, each in
    its own transaction, which waits `lock_timeout_s` at most for any lock.

    An advisory lock makes concurrent starts of the same service apply each file once.
    """
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", [advisory_key(schema)])
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
            done = {r[0] for r in rows}
            for package in packages:
                for version, sql in migration_files(package):
                    key = f"{package}:{version}"
                    if key in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                        if f"{package}:{former_version(sql)}" not in done:
                            await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", [key])
                    applied_now.append(key)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [advisory_key(schema)])
    return applied_now


class CountingCursor(psycopg.AsyncCursor):
    """Counts the statements it sends (genline_db_statements_total): what a job costs in
    round trips to PostgreSQL, counted exactly, not guessed."""

    # Set by open_pool: telemetry.DB_STATEMENTS, the schema counted, and what sends the statements.
    counter: Any = None
    schema = ""
    source: Any = None

    def count(self, statements: int = 1) -> None:
        self.counter.labels(self.schema, self.source()).inc(statements)

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Self:
        self.count()
        return await super().execute(query, params, **kwargs)

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        params_seq = list(params_seq)
        self.count(len(params_seq))
        await super().executemany(query, params_seq, **kwargs)

    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        self.count()
        return super().copy(statement, params, **kwargs)


# A statement is prepared on a connection at its second use, and a connection keeps this many
# (the least used let go first); psycopg's defaults are 5 and 100. The services' SQL is a fixed
# set sent again and again, and a connection the pool opened under load parsed each statement
# six times (PostgreSQL parsing a burst job 3.1 -> 1.7 ms of CPU). Not at its first use: psycopg
# learns from it that a string holds several statements, which cannot be prepared (at 0 it
# prepares before it knows, and such a string fails).
PREPARE_THRESHOLD = 1
PREPARED_MAX = 256


def open_pool(database_url: str, schema: str, *, size: int) -> Pool:
    """A pool of autocommit connections that see the service's own schema by default;
    `conn.transaction()` is then a real transaction, never a savepoint. Its statements are
    counted under the schema's name."""
    from services.common import telemetry

    counting = type("CountingCursor", (CountingCursor,), {"counter": telemetry.DB_STATEMENTS, "schema": schema,
                                                          "source": staticmethod(telemetry.source)})

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        conn.cursor_factory = counting
        conn.prepare_threshold = PREPARE_THRESHOLD
        conn.prepared_max = PREPARED_MAX
        with telemetry.counted_for("connection"):  # a connection's setup, not the work it then serves
            await conn.execute(f'SET search_path TO "{schema}"')

    pool = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=size,
        open=False,
        configure=configure,
        kwargs={"row_factory": dict_row, "autocommit": True},
    )
    return cast(Pool, pool)  # its rows are dicts: row_factory



def database_away(exc: BaseException) -> bool:
    """The database did not answer, or dropped the connection (a restart, a failover, no
    connection to spare): the same work, from its transaction, will do once it is back.
    A connection broken this way is discarded by the pool when it is given back."""
    return isinstance(exc, psycopg.OperationalError | PoolTimeout)


async def until_database_answers(pool: AsyncConnectionPool[Any], give_up_after_s: float | None = None) -> bool:
    """Wait until the database answers a query, trying again with a growing pause (at most
    2 s); False if it has not answered after `give_up_after_s`."""
    deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
    pause = 0.1
    while True:
        try:
            async with pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception as exc:
            if not database_away(exc):
                raise
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(pause * (0.5 + random.random()))
        pause = min(2.0, pause * 2)


async def while_database_away(work: Callable[[], Awaitable[T]], pool: AsyncConnectionPool[Any], *, for_s: float) -> T:
    """Run `work` (one whole transaction, safe to run again) until it gets through, while
    the database is away, for up to `for_s` seconds; its error if still away then."""
    deadline = time.monotonic() + for_s
    while True:
        try:
            return await work()
        except Exception as exc:
            if not database_away(exc) or time.monotonic() >= deadline:
                raise
            log.warning("the database is away (%s); trying again once it answers", type(exc).__name__)
        await until_database_answers(pool, max(0.0, deadline - time.monotonic()))


def typed_arrays(columns: dict[str, str]) -> str:
    """The `unnest(…)` arguments for `columns` (name to PostgreSQL type), one binary array
    parameter each (binary: no escaping); `as_arrays(rows)` gives their values."""
    return ", ".join(f"%b::{pg_type}[]" for pg_type in columns.values())


def as_arrays(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, the parameters of an `unnest(arrays)` statement."""
    return [list(column) for column in zip(*rows, strict=True)]


async def insert_many(conn: psycopg.AsyncConnection[Any], table: str, *, columns: dict[str, str],
                      rows: list[tuple[Any, ...]]) -> None:
    """All rows in one `COPY` (each value written by the driver's compiled dumpers, the
    cheapest path). `columns` maps column name to PostgreSQL type."""
    if not rows:
        return
    async with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)


# A statement and its parameters, to run alone or with others in one (together).
Statement = tuple[str, list[Any]]


def inserted(table: str, columns: dict[str, str], *, rows: list[tuple[Any, ...]]) -> Statement | None:
    """`INSERT … SELECT FROM unnest(arrays)` of `rows` (None for no rows)."""
    if not rows:
        return None
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({typed_arrays(columns)})",
            as_arrays(rows))


def inserted_if_absent(table: str, columns: dict[str, str], *, rows: list[tuple[Any, ...]]) -> Statement | None:
    """`inserted`, skipping each row whose key is already there (`ON CONFLICT DO NOTHING`): a
    fact recorded twice is recorded once."""
    statement = inserted(table, columns, rows=rows)
    return None if statement is None else (f"{statement[0]} ON CONFLICT DO NOTHING", statement[1])


def _update_sql(table: str, columns: dict[str, str], *, assign: str) -> str:
    """`UPDATE … FROM unnest(arrays)` keyed by the first column, rows in key order (so
    concurrent batches lock rows in the same order); `assign` formats each other column's
    assignment from `{c}`."""
    key, *names = list(columns)
    assignments = ", ".join(assign.format(c=n) for n in names)
    return (f"UPDATE {table} AS t SET {assignments} FROM (SELECT * FROM unnest({typed_arrays(columns)})"
            f" AS u({', '.join(columns)}) ORDER BY {key}) AS u WHERE t.{key} = u.{key}")


def updated(table: str, columns: dict[str, str], *, rows: list[tuple[Any, ...]]) -> Statement | None:
    """Set columns, the first column being the key; each row is (key value, *column values)."""
    return (_update_sql(table, columns, assign="{c} = u.{c}"), as_arrays(sorted(rows))) if rows else None


def added(table: str, columns: dict[str, str], *, rows: list[tuple[Any, ...]]) -> Statement | None:
    """Add deltas (`c = c + delta`), the first column being the key: concurrent writers add up
    instead of overwriting each other; each row is (key value, *deltas)."""
    return (_update_sql(table, columns, assign="{c} = t.{c} + u.{c}"), as_arrays(sorted(rows))) if rows else None


def as_ctes(statements: Sequence[Statement | None], name: str) -> Statement:
    """Statements (None: none) as CTEs (`name0 AS (…), name1 AS (…)`) and their parameters,
    in order; ("", []) for none."""
    present = [statement for statement in statements if statement is not None]
    return (", ".join(f"{name}{i} AS ({sql})" for i, (sql, _) in enumerate(present)),
            [param for _, params in present for param in params])


async def together(conn: psycopg.AsyncConnection[Any], statements: Sequence[Statement | None]) -> None:
    """Run writes that touch different rows in one statement, each a CTE of it: none sees
    what the others write (one snapshot), so no two may write the same row, and none may
    need to read another's rows. Nothing is sent for no statements."""
    present = [statement for statement in statements if statement is not None]
    if len(present) == 1:
        await conn.execute(*present[0])
    elif present:
        ctes, params = as_ctes(present, "w")
        await conn.execute(f"WITH {ctes} SELECT", params)
