"""The operators' view of the audit trail (`GET /admin/v1/audit`); services.ledger.audit keeps it."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.admin import Operator, OperatorWith
from services.common.api import StorableText, Timestamp
from services.common.problems import Problem
from services.ledger.store import audit as trail
from services.ledger.store.audit import AuditQuery


class AuditEntry(BaseModel):
    event_id: str
    at: datetime
    service: str
    actor: str = Field(description="`operator:<token name>`, `key:<api key id>` or `system:<service>`")
    action: str
    target: str
    tenant_id: str | None
    details: dict[str, Any]


class AuditList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"entries": [{
        "event_id": "0b6c1d2e-3f40-4a51-8b62-7c83d94e0a15", "at": "2026-11-22T10:15:00Z", "service": "ledger",
        "actor": "operator:finance", "action": "credits.grant", "target": "tenant:acme", "tenant_id": "acme",
        "details": {"credits": 500, "reason": "pilot", "grant_id": "5b0f9c7e-8d1a-4e52-9a57-3f1c2b7d6e40"}}]}]})

    entries: list[AuditEntry] = Field(description="newest first")


router = APIRouter()

# An operator holding `audit:read` (a dependency to FastAPI; the operator to the type checker).
if TYPE_CHECKING:
    AuditReader: TypeAlias = Operator
else:
    AuditReader = OperatorWith("audit:read")


@router.get("/admin/v1/audit", tags=["admin"], response_model=AuditList, responses=problems.responses(403, 404))
async def list_audit(request: Request, _: AuditReader,
                     actor: Annotated[StorableText | None, Query(max_length=200)] = None,
                     action: Annotated[StorableText | None, Query(max_length=100)] = None,
                     tenant_id: Annotated[StorableText | None, Query(max_length=63)] = None,
                     since: Timestamp | None = None, until: Timestamp | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> AuditList:
    """Admin and account actions of every service, newest first, filtered by actor, action,
    tenant and time (`since` inclusive, `until` exclusive)."""
    if since and until and since >= until:
        raise Problem(status=422, slug="invalid-range", detail="since must be before until")
    query = AuditQuery(actor=actor, action=action, tenant_id=tenant_id, since=since, until=until, limit=limit)
    async with request.app.state.runtime.pool.connection() as conn:
        rows = await trail.entries(conn, query)
    return AuditList(entries=[AuditEntry(**row) for row in rows])
