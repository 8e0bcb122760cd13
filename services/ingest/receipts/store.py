"""The receipts' tables: receipts (each tenant's chain, its head kept on the tenant's row)
and signing_keys (every key receipts were signed with); and the reads of a replay, which
checks them from outside the service with a connection of its own."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import DictRow, TupleRow

from services.common.db import Conn
from services.ingest.jobs import Period

RECEIPT_COLUMNS = {"job_id": "uuid", "tenant_id": "text", "sequence": "bigint", "sha256": "text",
                   "document": "jsonb", "issued_at": "timestamptz"}


async def lock_chain_heads(conn: Conn, tenants: list[str]) -> dict[str, tuple[int, str | None]]:
    """Each tenant's chain head (sequence, sha256), the tenants' rows locked in one order. The
    lock returns each head as its last holder committed it (FOR UPDATE reads the row's newest
    version; the receipts' trigger keeps the head, migrations/0014_receipt_chain_head.sql)."""
    return {row["id"]: (row["receipt_sequence"], row["receipt_sha256"]) for row in await (await conn.execute(
        "SELECT id, receipt_sequence, receipt_sha256 FROM tenants WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        [tenants])).fetchall()}


async def receipt_of(conn: Conn, job_id: UUID, *, tenant_id: str) -> dict[str, Any] | None:
    row = await (await conn.execute("SELECT document FROM receipts WHERE job_id = %s AND tenant_id = %s",
                                    [job_id, tenant_id])).fetchone()
    return row["document"] if row else None


async def chain(conn: Conn, tenant_id: str, *, after: int, limit: int) -> list[dict[str, Any]]:
    """The tenant's receipts after `sequence` `after`, in chain order."""
    rows = await (await conn.execute(
        "SELECT document FROM receipts WHERE tenant_id = %s AND sequence > %s ORDER BY sequence LIMIT %s",
        [tenant_id, after, limit])).fetchall()
    return [row["document"] for row in rows]


async def daily_totals(conn: Conn, tenant_id: str, *, since: datetime) -> dict[date, dict[str, int]]:
    """Per UTC day from `since`: the jobs that ended (each has its receipt), the images they
    delivered and the credits they were charged, as the signed receipts say."""
    rows = await (await conn.execute(
        "SELECT (issued_at AT TIME ZONE 'UTC')::date AS day, count(*) AS jobs,"
        " coalesce(sum((document->'receipt'->'images'->>'delivered')::bigint), 0) AS images,"
        " coalesce(sum((document->'receipt'->'credits'->>'charged')::bigint), 0) AS credits"
        " FROM receipts WHERE tenant_id = %s AND issued_at >= %s GROUP BY 1", [tenant_id, since])).fetchall()
    return {row["day"]: {"jobs": row["jobs"], "images": row["images"], "credits": row["credits"]} for row in rows}


async def attributed_totals(conn: Conn, tenant_id: str, *, period: Period, metadata_key: str | None) -> list[DictRow]:
    """From the receipts issued in the period: the jobs, images delivered and credits charged
    per end user (`metadata_key` None) or per value of that metadata key; jobs without one
    under the value None."""
    group = ("document->'receipt'->>'end_user'" if metadata_key is None
             else "document->'receipt'->'metadata'->>%(key)s")
    return await (await conn.execute(
        f"SELECT {group} AS value, count(*) AS jobs,"
        " coalesce(sum((document->'receipt'->'images'->>'delivered')::bigint), 0) AS images,"
        " coalesce(sum((document->'receipt'->'credits'->>'charged')::bigint), 0) AS credits"
        " FROM receipts WHERE tenant_id = %(tenant)s AND issued_at >= %(since)s AND issued_at < %(until)s"
        " GROUP BY 1 ORDER BY 4 DESC, 1 NULLS LAST",
        {"tenant": tenant_id, "since": period.since, "until": period.until, "key": metadata_key})).fetchall()


async def record_signing_key(conn: Conn, kid: str, *, public_key: bytes) -> None:
    """Publish a key receipts are signed with, for as long as receipts signed with it exist."""
    await conn.execute("INSERT INTO signing_keys (kid, public_key) VALUES (%s, %s)"
                       " ON CONFLICT (kid) DO UPDATE SET last_started_at = now()", [kid, public_key])


async def signing_keys(conn: Conn) -> list[DictRow]:
    """Every key receipts were signed with (kid, public_key, first_used_at), oldest first."""
    return await (await conn.execute("SELECT kid, public_key, first_used_at FROM signing_keys"
                                     " ORDER BY first_used_at, kid")).fetchall()


# ---- a replay's reads (a synchronous connection, the schema named) ------------------------


def receipt_documents(conn: psycopg.Connection[TupleRow], schema: str, *, tenant: str | None) -> list[TupleRow]:
    """(tenant_id, document) of every receipt, or `tenant`'s, each chain in order."""
    return conn.execute(f'SELECT tenant_id, document FROM "{schema}".receipts'
                        " WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s ORDER BY tenant_id, sequence",
                        {"tenant": tenant}).fetchall()


def public_keys(conn: psycopg.Connection[TupleRow], schema: str) -> list[TupleRow]:
    """(kid, public_key) of every key receipts were signed with."""
    return conn.execute(f'SELECT kid, public_key FROM "{schema}".signing_keys').fetchall()
