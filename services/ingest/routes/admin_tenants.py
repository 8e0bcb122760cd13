"""`/admin/v1/tenants`: operators create a tenant and its first API key (every scope), as
`genline create-tenant` does. Behind an operator token with `tenants:manage`, on the admin port; in the audit trail; not part of the
public OpenAPI document."""

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from services.common.admin import OperatorWith
from services.common.audit import operator_actor, record_action
from services.common.api import RequestModel, StorableText
from services.common.problems import Problem
from services.ingest import keys, tenants
from services.ingest.deps import Runtime
from services.ingest.domain import SCOPES

router = APIRouter(prefix="/admin/v1/tenants", include_in_schema=False)


class TenantRequest(RequestModel):
    id: str = Field(pattern=tenants.TENANT_ID_PATTERN)
    name: StorableText | None = Field(None, max_length=200)


class NewTenant(BaseModel):
    id: str
    api_key: str = Field(description="the tenant's first key, shown this once")
    key_id: str


@router.post("", status_code=201, response_model=NewTenant)
async def create_tenant(operator: OperatorWith("tenants:manage"), runtime: Runtime,
                        body: Annotated[TenantRequest, Body()]):
    async with runtime.pool.connection() as conn, conn.transaction():
        if not await tenants.insert_tenant(conn, body.id, body.name):
            raise Problem(409, "tenant-exists", f"tenant {body.id!r} exists already; create its keys with its own keys")
        issued = await keys.issue_key(conn, body.id, keys.OPERATOR_KEY_NAME)
        actor = operator_actor(operator.name)
        await record_action(runtime, conn, actor, "tenant.create", f"tenant:{body.id}", body.id, name=body.name)
        await record_action(runtime, conn, actor, "api_key.create", f"api_key:{issued.id}", body.id,
                            name=keys.OPERATOR_KEY_NAME, scopes=list(SCOPES))
    runtime.relay.notify()
    return NewTenant(id=body.id, api_key=issued.secret, key_id=str(issued.id))
