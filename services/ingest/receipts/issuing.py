"""Ingest's receipts: issuing them in the transaction that first shows a job final, reading
them, and the public keys they were signed with (`services.ingest.receipts.document` says what a
receipt holds)."""

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from services.common import telemetry
from services.common.db import Conn, Statement, inserted
from services.ingest.jobs import Change, JobView, with_receipt
from services.ingest.receipts import store
from services.ingest.receipts.document import ReceiptSigner, ReceiptStamp, jwk, receipt_body
from services.ingest.receipts.store import attributed_totals as attributed_totals
from services.ingest.receipts.store import chain as chain
from services.ingest.receipts.store import daily_totals as daily_totals
from services.ingest.receipts.store import receipt_of as receipt_of


@dataclass(frozen=True)
class Issuance:
    """Who signs the receipts a commit issues, and when they are issued."""

    signer: ReceiptSigner
    at: datetime


async def issue_receipts(conn: Conn, changes: list[Change], *, issuance: Issuance) -> tuple[list[Change], Statement | None]:
    """The changes with a receipt in every view of a job they show final for the first time,
    the receipts issued (and chained) in the caller's transaction, which holds the jobs' rows;
    and the statement that writes them, for the caller to send with its own last write (db.together)."""
    finishing = [change.after for change in changes if change.after.final and not change.before.final]
    if not finishing:
        return changes, None
    issued, written = await issue(conn, finishing, issuance=issuance)

    def patched(view: JobView) -> JobView:
        return with_receipt(view, issued[view.id]) if view.id in issued and view.final else view

    return [replace(change, before=patched(change.before), after=patched(change.after)) for change in changes], written


async def issue(conn: Conn, views: list[JobView], *, issuance: Issuance) -> tuple[dict[UUID, str], Statement | None]:
    """Sign a receipt for each view, in order, each after its tenant's last; the hashes by
    job, and the statement that writes the receipts (the caller sends it before it commits).
    The tenants' rows are locked in one order first, so chains grow one receipt at a time
    and two transactions never wait on each other in a circle. The lock returns each chain's
    head as its last holder committed it (FOR UPDATE reads the row's newest version; the
    receipts' trigger keeps the head, migrations/0014_receipt_chain_head.sql)."""
    tenants = sorted({view.tenant_id for view in views})
    heads = await store.lock_chain_heads(conn, tenants)
    if unknown := set(tenants) - heads.keys():
        raise LookupError(f"receipts for jobs of unknown tenants: {sorted(unknown)}")
    signer, now = issuance.signer, issuance.at
    issued: dict[UUID, str] = {}
    rows = []
    for view in views:
        sequence, previous = heads[view.tenant_id]
        signed = signer.sign(receipt_body(view, ReceiptStamp(sequence=sequence + 1, previous_sha256=previous, kid=signer.kid, issued_at=now)))
        rows.append((view.id, view.tenant_id, sequence + 1, signed["sha256"], json.dumps(signed), now))
        heads[view.tenant_id] = (sequence + 1, signed["sha256"])
        issued[view.id] = signed["sha256"]
        telemetry.RECEIPTS_ISSUED.labels(view.state).inc()
    return issued, inserted("receipts", store.RECEIPT_COLUMNS, rows=rows)


async def record_signing_key(conn: Conn, signer: ReceiptSigner) -> None:
    """Publish the key this process signs with, for as long as receipts signed with it exist."""
    await store.record_signing_key(conn, signer.kid, public_key=signer.public_key)


async def published_keys(conn: Conn, current_kid: str) -> list[dict[str, Any]]:
    """Every key receipts were signed with, as JWKs: the one this process signs with is
    `active`, the others (rotated out, or another replica's) `retired`."""
    rows = await store.signing_keys(conn)
    return [jwk(bytes(row["public_key"]), status="active" if row["kid"] == current_kid else "retired",
                created_at=row["first_used_at"].isoformat().replace("+00:00", "Z")) for row in rows]
