"""`/v1/audit`: the tenant's audit log, for owners and admins (`audit:read`): every change a
member, key, operator or the system made to the tenant's account (sign-ins, invitations, role
changes, keys, top-ups, caps, erasures…), who made it, from where and when, newest first; and
the same as CSV. The ledger keeps the trail of every service (it is what `genline replay audit`
rebuilds); ingest asks it for the caller's tenant only."""

import csv
import io
import json
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.common import problems
from services.common.api import StorableText, Timestamp
from services.common.problems import Problem
from services.ingest.deps import AuditReader

router = APIRouter(prefix="/v1/audit", tags=["members"], responses=problems.responses(503))
ENTRY_EXAMPLE: JsonDict = {"event_id": "0b6c1d2e-3f40-4a51-8b62-7c83d94e0a15", "at": "2026-11-22T10:15:00Z", "service": "ingest",
                 "actor": "member:5e2b7c10-3a4d-4f6e-8b9a-0c1d2e3f4a5b", "action": "api_key.create",
                 "target": "api_key:3d9c7a51-6f0e-4b8a-9c21-7e5d4f3a2b10", "origin": "203.0.113.9",
                 "details": {"actor_email": "dev@example.com", "name": "ci", "scopes": ["jobs:read"]}}
CSV_COLUMNS = ("at", "actor", "email", "origin", "action", "target", "service", "details", "event_id")


class AuditEntry(BaseModel):
    event_id: str
    at: datetime
    service: str
    actor: str = Field(description="`member:<id>`, `key:<id>` (a key no member owns), `operator:<name>` or"
                                   " `system:<what>`")
    action: str = Field(description="what was done, `<thing>.<verb>`: member.sign_in, api_key.create, job.erase…")
    target: str
    origin: str | None = Field(description="the address the request came from, when a request made it")
    details: dict[str, Any]


class AuditLog(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"entries": [ENTRY_EXAMPLE]}]})

    entries: list[AuditEntry] = Field(description="newest first")


async def ledger_http(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.ledger_http
    return client


async def trail_of(http: httpx.AsyncClient, tenant_id: str, *, params: dict[str, Any]) -> list[AuditEntry]:
    """The tenant's entries the ledger keeps; 503 when it does not answer."""
    try:
        response = await http.get(f"/internal/v1/tenants/{tenant_id}/audit",
                                  params={k: v.isoformat() if isinstance(v, datetime) else v
                                          for k, v in params.items() if v is not None})
        response.raise_for_status()
        rows = response.json()["entries"]
    except (httpx.HTTPError, ValueError, KeyError):
        raise Problem(status=503, slug="audit-unavailable", detail="the audit log cannot be read right now; try again shortly",
                      headers={"Retry-After": "5"}, extra={"retry_after": 5}) from None
    return [AuditEntry(**{k: row[k] for k in ("event_id", "at", "service", "actor", "action", "target", "details")},
                       origin=(row["details"] or {}).get("origin")) for row in rows]


class AuditFilters(BaseModel):
    """Which entries: by actor, action and time (`since` inclusive, `until` exclusive), the newest `limit`."""

    model_config = ConfigDict(extra="forbid")

    actor: StorableText | None = Field(None, max_length=200)
    action: StorableText | None = Field(None, max_length=100)
    since: Timestamp | None = None
    until: Timestamp | None = None
    limit: int = Field(100, ge=1, le=5000)


async def filters(wanted: Annotated[AuditFilters, Query()]) -> dict[str, Any]:
    if wanted.since and wanted.until and wanted.since >= wanted.until:
        raise Problem(status=422, slug="invalid-range", detail="since must be before until")
    return wanted.model_dump()


Filters = Annotated[dict[str, Any], Depends(filters)]
LedgerHttp = Annotated[httpx.AsyncClient, Depends(ledger_http)]


@router.get("", response_model=AuditLog)
async def read_audit_log(caller: AuditReader, wanted: Filters, http: LedgerHttp) -> AuditLog:
    """The tenant's audit log, newest first, filtered by actor, action and time."""
    return AuditLog(entries=await trail_of(http, caller.tenant_id, params=wanted))


@router.get("/export", response_class=Response, responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"},
                                   "example": ",".join(CSV_COLUMNS) + "\n2026-11-22T10:15:00+00:00,member:5e2b…,"
                                              "dev@example.com,203.0.113.9,api_key.create,api_key:3d9c…,ingest,{},0b6c…\n"}}}})
async def export_audit_log(caller: AuditReader, wanted: Filters, http: LedgerHttp) -> Response:
    """The same entries as CSV (one row each, its details as JSON), to keep or hand to an auditor."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in await trail_of(http, caller.tenant_id, params=wanted):
        writer.writerow([entry.at.isoformat(), entry.actor, entry.details.get("actor_email", ""), entry.origin or "",
                         entry.action, entry.target, entry.service, json.dumps(entry.details, sort_keys=True),
                         entry.event_id])
    return Response(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="audit-{caller.tenant_id}.csv"'})
