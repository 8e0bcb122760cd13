"""The migration check: the statements a past release's services sent PostgreSQL while they
served (recorded by `statement_log/sitecustomize.py`, exactly as sent), prepared again on a
schema that release migrated and this release then migrated further. PostgreSQL plans a
prepared statement against the schema (every table, column, function and type it names, and
the types its parameters take) without running it, so a statement that prepared on the old
schema and fails on the new one is the previous release's code broken by this release's
migrations: a column dropped or renamed in the expand step, a type narrowed, a table gone."""

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import pq

from genline_stack.fleet import Build
from services.common.db import COMMON_MIGRATIONS, migrate

STATEMENT_LOG = Path(__file__).parent / "statement_log"
COPY = re.compile(r"^\s*COPY\s+(?P<table>[\w.\"]+)\s*\((?P<columns>[^)]*)\)\s+FROM\s+STDIN", re.I)


@dataclass(frozen=True, kw_only=True)
class Statement:
    service: str
    query: str
    types: tuple[int, ...]


def recorded(folder: Path) -> list[Statement]:
    """Every distinct statement the services logged into `folder`, by the service that sent it."""
    found = set()
    for path in folder.glob("*.jsonl"):
        service = path.name.split("-", 1)[0]
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            found.add(Statement(service=service, query=entry["query"], types=tuple(entry["types"])))
    return sorted(found, key=lambda s: (s.service, s.query))


def refusal(conn: psycopg.Connection, statement: Statement) -> str | None:
    """Why PostgreSQL will not prepare `statement` on the connection's schema; None if it will.
    A COPY is checked as the SELECT of its columns (COPY cannot be prepared)."""
    query, types = statement.query, statement.types
    if copy := COPY.match(query):
        query, types = f"SELECT {copy['columns']} FROM {copy['table']} WHERE false", ()
    result = conn.pgconn.prepare(b"", query.encode(), types or None)
    if result.status == pq.ExecStatus.COMMAND_OK:
        return None
    return (result.error_message or b"").decode(errors="replace").strip()


def refusals(database_url: str, schema: str, statements: list[Statement]) -> dict[Statement, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return {s: why for s in statements if (why := refusal(conn, s)) is not None}


def migrate_as(build: Build, database_url: str, schema: str, service: str) -> None:
    """The schema as `build`'s release migrates it, by its own code (a past release's migrations
    are its files, applied by its runner)."""
    script = ("import asyncio, sys; from services.common.db import migrate;"
              " asyncio.run(migrate(sys.argv[1], sys.argv[2], packages=sys.argv[3:]))")
    subprocess.run([build.python, "-c", script, database_url, schema, COMMON_MIGRATIONS, f"services.{service}"],
                   cwd=build.root, check=True, capture_output=True, timeout=120)


@dataclass(frozen=True, kw_only=True)
class MigrationCheck:
    """What broke: the statements of the previous release that prepared on its own schema and
    not on this release's, with PostgreSQL's reason, and how many were checked."""

    checked: int
    broken: dict[Statement, str]


async def check_migrations(previous: Build, database_url: str, *, prefix: str, statements: list[Statement],
                           planted: dict[str, str] | None = None) -> MigrationCheck:
    """For each service: a schema of its own (`<prefix>_<service>`) migrated by the previous
    release, its statements prepared there; this release's migrations applied on top (and the
    `planted` SQL of a test, by service); the statements that prepared before prepared again."""
    checked, broken = 0, {}
    for service in sorted({s.service for s in statements}):
        schema = f"{prefix}_{service}"
        migrate_as(previous, database_url, schema, service)
        own = [s for s in statements if s.service == service]
        preparable = [s for s in own if s not in refusals(database_url, schema, own)]
        await migrate(database_url, schema, packages=[COMMON_MIGRATIONS, f"services.{service}"])
        if planted and service in planted:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f'SET search_path TO "{schema}"')
                conn.execute(planted[service])
        checked += len(preparable)
        broken |= refusals(database_url, schema, preparable)
    return MigrationCheck(checked=checked, broken=broken)
