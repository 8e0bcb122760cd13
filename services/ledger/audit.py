"""The audit trail the ledger keeps: every AuditRecorded event of every service, once, and
the operators' view of it (`GET /admin/v1/audit`)."""

from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.admin import OperatorWith
from services.common.api import StorableText, Timestamp
from services.common.bus import Envelope
from services.common.contracts import AuditRecorded
from services.common.problems import Problem

COLUMNS = ("event_id", "at", "service", "actor", "action", "target", "tenant_id", "details")


def row_of(envelope: Envelope) -> tuple:
    event: AuditRecorded = envelope.event
    return (envelope.id, event.at, event.service, event.actor, event.action, event.target, event.tenant_id,
            Jsonb(event.details))


async def keep(conn: psycopg.AsyncConnection, envelopes: list[Envelope]) -> None:
    """Add these audit events to the trail; one seen before changes nothing."""
    if envelopes:
        async with conn.cursor() as cur:
            await cur.executemany(f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES"
                                  f" ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (event_id) DO NOTHING",
                                  [row_of(e) for e in envelopes])


class AuditEntry(BaseModel):
    event_id: str
    at: datetime
    service: str
    actor: str = Field(description="`operator:<token name>`, `key:<api key id>` or `system:<service>`")
    action: str
    target: str
    tenant_id: str | None
    details: dict


class AuditList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"entries": [{
        "event_id": "0b6c1d2e-3f40-4a51-8b62-7c83d94e0a15", "at": "2026-11-22T10:15:00Z", "service": "ledger",
        "actor": "operator:finance", "action": "credits.grant", "target": "tenant:acme", "tenant_id": "acme",
        "details": {"credits": 500, "reason": "pilot", "grant_id": "5b0f9c7e-8d1a-4e52-9a57-3f1c2b7d6e40"}}]}]})

    entries: list[AuditEntry] = Field(description="newest first")


router = APIRouter()


@router.get("/admin/v1/audit", tags=["admin"], response_model=AuditList, responses=problems.responses(403, 404))
async def list_audit(request: Request, _: OperatorWith("audit:read"),
                     actor: Annotated[StorableText | None, Query(max_length=200)] = None,
                     action: Annotated[StorableText | None, Query(max_length=100)] = None,
                     tenant_id: Annotated[StorableText | None, Query(max_length=63)] = None,
                     since: Timestamp | None = None, until: Timestamp | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100):
    """Admin and account actions of every service, newest first, filtered by actor, action,
    tenant and time (`since` inclusive, `until` exclusive)."""
    if since and until and since >= until:
        raise Problem(422, "invalid-range", "since must be before until")
    filters = {"actor = %s": actor, "action = %s": action, "tenant_id = %s": tenant_id, "at >= %s": since,
               "at < %s": until}
    chosen = {clause: value for clause, value in filters.items() if value is not None}
    where = " AND ".join(chosen) or "true"
    async with request.app.state.runtime.pool.connection() as conn:
        rows = await (await conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE {where} ORDER BY at DESC, event_id DESC LIMIT %s",
            [*chosen.values(), limit])).fetchall()
    return AuditList(entries=[AuditEntry(**row) for row in rows])
