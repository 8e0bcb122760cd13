"""Ingest's receipts: issuing them in the transaction that first shows a job final, reading
them, and the public keys they were signed with (`services.ingest.receipts.document` says what a
receipt holds)."""

import json
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

from services.common import telemetry
from services.common.db import Conn, Statement, inserted
from services.ingest.domain import JobView, with_receipt
from services.ingest.receipts.document import Signer, jwk, receipt_body
from services.ingest.store import Change


async def issue_receipts(conn: Conn, changes: list[Change], signer: Signer,
                         now: datetime) -> tuple[list[Change], Statement | None]:
    """The changes with a receipt in every view of a job they show final for the first time,
    the receipts issued (and chained) in the caller's transaction, which holds the jobs' rows;
    and the statement that writes them, for the caller to send with its own last write (db.together)."""
    finishing = [change.after for change in changes if change.after.final and not change.before.final]
    if not finishing:
        return changes, None
    issued, written = await issue(conn, finishing, signer, now)

    def patched(view: JobView) -> JobView:
        return with_receipt(view, issued[view.id]) if view.id in issued and view.final else view

    return [replace(change, before=patched(change.before), after=patched(change.after)) for change in changes], written


RECEIPT_COLUMNS = {"job_id": "uuid", "tenant_id": "text", "sequence": "bigint", "sha256": "text",
                   "document": "jsonb", "issued_at": "timestamptz"}


async def issue(conn: Conn, views: list[JobView], signer: Signer,
                now: datetime) -> tuple[dict[UUID, str], Statement | None]:
    """Sign a receipt for each view, in order, each after its tenant's last; the hashes by
    job, and the statement that writes the receipts (the caller sends it before it commits).
    The tenants' rows are locked in one order first, so chains grow one receipt at a time
    and two transactions never wait on each other in a circle. The lock returns each chain's
    head as its last holder committed it (FOR UPDATE reads the row's newest version; the
    receipts' trigger keeps the head, migrations/0014_receipt_chain_head.sql)."""
    tenants = sorted({view.tenant_id for view in views})
    heads = {row["id"]: (row["receipt_sequence"], row["receipt_sha256"]) for row in await (await conn.execute(
        "SELECT id, receipt_sequence, receipt_sha256 FROM tenants WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        [tenants])).fetchall()}
    if unknown := set(tenants) - heads.keys():
        raise LookupError(f"receipts for jobs of unknown tenants: {sorted(unknown)}")
    issued: dict[UUID, str] = {}
    rows = []
    for view in views:
        sequence, previous = heads[view.tenant_id]
        signed = signer.sign(receipt_body(view, sequence + 1, previous, signer.kid, now))
        rows.append((view.id, view.tenant_id, sequence + 1, signed["sha256"], json.dumps(signed), now))
        heads[view.tenant_id] = (sequence + 1, signed["sha256"])
        issued[view.id] = signed["sha256"]
        telemetry.RECEIPTS_ISSUED.labels(view.state).inc()
    return issued, inserted("receipts", RECEIPT_COLUMNS, rows)


async def receipt_of(conn: Conn, job_id: UUID, tenant_id: str) -> dict[str, Any] | None:
    row = await (await conn.execute("SELECT document FROM receipts WHERE job_id = %s AND tenant_id = %s",
                                    [job_id, tenant_id])).fetchone()
    return row["document"] if row else None


async def chain(conn: Conn, tenant_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    """The tenant's receipts after `sequence` `after`, in chain order."""
    rows = await (await conn.execute(
        "SELECT document FROM receipts WHERE tenant_id = %s AND sequence > %s ORDER BY sequence LIMIT %s",
        [tenant_id, after, limit])).fetchall()
    return [row["document"] for row in rows]


async def daily_totals(conn: Conn, tenant_id: str, since: datetime) -> dict[date, dict[str, int]]:
    """Per UTC day from `since`: the jobs that ended (each has its receipt), the images they
    delivered and the credits they were charged, as the signed receipts say."""
    rows = await (await conn.execute(
        "SELECT (issued_at AT TIME ZONE 'UTC')::date AS day, count(*) AS jobs,"
        " coalesce(sum((document->'receipt'->'images'->>'delivered')::bigint), 0) AS images,"
        " coalesce(sum((document->'receipt'->'credits'->>'charged')::bigint), 0) AS credits"
        " FROM receipts WHERE tenant_id = %s AND issued_at >= %s GROUP BY 1", [tenant_id, since])).fetchall()
    return {row["day"]: {"jobs": row["jobs"], "images": row["images"], "credits": row["credits"]} for row in rows}


async def attributed_totals(conn: Conn, tenant_id: str, since: datetime, until: datetime,
                            metadata_key: str | None) -> list[dict[str, Any]]:
    """From the receipts issued in [since, until): the jobs, images delivered and credits
    charged per end user (`metadata_key` None) or per value of that metadata key; jobs
    without one under the value None."""
    group = ("document->'receipt'->>'end_user'" if metadata_key is None
             else "document->'receipt'->'metadata'->>%(key)s")
    return await (await conn.execute(
        f"SELECT {group} AS value, count(*) AS jobs,"
        " coalesce(sum((document->'receipt'->'images'->>'delivered')::bigint), 0) AS images,"
        " coalesce(sum((document->'receipt'->'credits'->>'charged')::bigint), 0) AS credits"
        " FROM receipts WHERE tenant_id = %(tenant)s AND issued_at >= %(since)s AND issued_at < %(until)s"
        " GROUP BY 1 ORDER BY 4 DESC, 1 NULLS LAST",
        {"tenant": tenant_id, "since": since, "until": until, "key": metadata_key})).fetchall()


async def record_signing_key(conn: Conn, signer: Signer) -> None:
    """Publish the key this process signs with, for as long as receipts signed with it exist."""
    await conn.execute("INSERT INTO signing_keys (kid, public_key) VALUES (%s, %s)"
                       " ON CONFLICT (kid) DO UPDATE SET last_started_at = now()", [signer.kid, signer.public_key])


async def published_keys(conn: Conn, current_kid: str) -> list[dict[str, Any]]:
    """Every key receipts were signed with, as JWKs: the one this process signs with is
    `active`, the others (rotated out, or another replica's) `retired`."""
    rows = await (await conn.execute("SELECT kid, public_key, first_used_at FROM signing_keys"
                                     " ORDER BY first_used_at, kid")).fetchall()
    return [jwk(bytes(row["public_key"]), status="active" if row["kid"] == current_kid else "retired",
                created_at=row["first_used_at"].isoformat().replace("+00:00", "Z")) for row in rows]
