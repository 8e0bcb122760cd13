"""The audit trail's rows: entries kept once each, the operators' filtered view, and the
whole trail of a schema as the audit replay compares it."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow

from services.common.db import Conn
from services.ledger.store.rows import rows_of

COLUMNS = ("event_id", "at", "service", "actor", "action", "target", "tenant_id", "details")


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """Which entries an operator asked for: each filter set narrows them (`since` inclusive,
    `until` exclusive); the newest `limit` are returned."""

    actor: str | None = None
    action: str | None = None
    tenant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100

    def clauses(self) -> dict[str, Any]:
        filters = {"actor = %s": self.actor, "action = %s": self.action, "tenant_id = %s": self.tenant_id,
                   "at >= %s": self.since, "at < %s": self.until}
        return {clause: value for clause, value in filters.items() if value is not None}


async def keep_entries(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add these rows (in COLUMNS' order) to the trail; one seen before changes nothing."""
    async with conn.cursor() as cur:
        await cur.executemany(f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES"
                              f" ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (event_id) DO NOTHING", rows)


async def entries(conn: Conn, query: AuditQuery) -> list[DictRow]:
    """The entries `query` asks for, newest first."""
    chosen = query.clauses()
    where = " AND ".join(chosen) or "true"
    return await rows_of(conn, f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE {where}"
                               " ORDER BY at DESC, event_id DESC LIMIT %s", params=[*chosen.values(), query.limit])


def whole_trail(conn: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    """Every entry of `schema`'s trail, as rows in COLUMNS' order (the replay's connection)."""
    return conn.execute(f'SELECT {", ".join(COLUMNS)} FROM "{schema}".audit_log').fetchall()
