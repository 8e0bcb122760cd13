"""Reads over many jobs: a tenant's pages (newest first, by cursor), the job that delivered
a given output, and images reported by their customers."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow

from services.common.db import Conn
from services.ingest.jobs.view import JobView, Period


async def insert_output_report(conn: Conn, job_id: UUID, *, n: int, reason: str) -> bool:
    """Record a report of the job's image `n`; False when it was reported before."""
    cur = await conn.execute("INSERT INTO output_reports (job_id, n, reason) VALUES (%s, %s, %s)"
                             " ON CONFLICT DO NOTHING", [job_id, n, reason])
    return cur.rowcount != 0


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last job's (created_at, id). Newer jobs sort before it, so
    jobs submitted while a client pages never shift the pages still to come."""

    created_at: datetime
    id: UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            created_at, job_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            return cls(datetime.fromisoformat(created_at), UUID(job_id))
        except (binascii.Error, ValueError, TypeError) as error:
            raise InvalidCursor(f"the cursor {text!r} was not issued by this API") from error


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    state: str | None = None
    template: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class Page:
    """Which page of a listing: the one after `after` (None: the first), `limit` jobs at most."""

    after: Cursor | None
    limit: int


async def list_views(conn: Conn, tenant_id: str, *, where: JobFilter, page: Page) -> tuple[list[JobView], Cursor | None]:
    """A page of the tenant's jobs, newest first, and the cursor of the next page (None at the end)."""
    after, limit = page.after, page.limit
    clauses: list[str] = ["tenant_id = %s", "erased_at IS NULL"]
    params: list[object] = [tenant_id]
    for clause, value in (("state = %s", where.state), ("template = %s", where.template),
                          ("created_at > %s", where.created_after), ("created_at < %s", where.created_before)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if after is not None:
        clauses.append("(created_at, id) < (%s, %s)")
        params += [after.created_at, after.id]
    rows = await (await conn.execute(
        f"SELECT view FROM jobs WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id DESC LIMIT %s",
        [*params, limit + 1],
    )).fetchall()
    views = [JobView.model_validate(row["view"]) for row in rows[:limit]]
    more = len(rows) > limit
    return views, Cursor(views[-1].created_at, views[-1].id) if more else None



async def job_with_output(conn: Conn, **marks: str) -> tuple[UUID, str, dict[str, Any]] | None:
    """The job (id, tenant) and the delivered output whose `manifest_label` or `watermark_id`
    is the one given (through the GIN index over the views' outputs), or None."""
    [(field, value)] = marks.items()
    assert field in ("manifest_label", "watermark_id")
    row = await (await conn.execute(
        "SELECT j.id, j.tenant_id, o AS output FROM jobs j, jsonb_array_elements(j.view->'outputs') o"
        " WHERE j.view->'outputs' @> %s::jsonb AND o->>%s = %s LIMIT 1",
        [json.dumps([{field: value}]), field, value])).fetchone()
    return (row["id"], row["tenant_id"], row["output"]) if row else None


async def tenant_exists(conn: Conn, tenant_id: str) -> bool:
    return await (await conn.execute("SELECT 1 FROM tenants WHERE id = %s", [tenant_id])).fetchone() is not None


async def views_with_outputs(conn: Conn, tenant_id: str, *, period: Period) -> list[JobView]:
    """The tenant's jobs created in the period that delivered something."""
    rows = await (await conn.execute(
        "SELECT view FROM jobs WHERE tenant_id = %s AND created_at >= %s AND created_at < %s"
        " AND jsonb_array_length(view->'outputs') > 0", [tenant_id, period.since, period.until])).fetchall()
    return [JobView.model_validate(row["view"]) for row in rows]


async def settled_views(conn: Conn, period: Period) -> list[JobView]:
    """Every tenant's jobs created in the period whose billing is settled."""
    rows = await (await conn.execute(
        "SELECT view FROM jobs WHERE created_at >= %s AND created_at < %s"
        " AND view->'billing'->>'state' = 'settled'", [period.since, period.until])).fetchall()
    return [JobView.model_validate(row["view"]) for row in rows]


# ---- a replay's reads, outside the service (a synchronous connection, the schema named) ----


def erased_job_ids(conn: psycopg.Connection[TupleRow], schema: str) -> set[UUID]:
    return {row[0] for row in conn.execute(f'SELECT id FROM "{schema}".jobs WHERE erased_at IS NOT NULL')}


def stored_views(conn: psycopg.Connection[TupleRow], schema: str,
                 *, tenant: str | None) -> list[tuple[UUID, dict[str, Any], bool]]:
    """Every job's stored view (the tenant's only, when named), and whether it was erased."""
    rows = conn.execute(f'SELECT id, view, erased_at IS NOT NULL FROM "{schema}".jobs'
                        ' WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s', {"tenant": tenant}).fetchall()
    return [(job_id, view, erased) for job_id, view, erased in rows]
