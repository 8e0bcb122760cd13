"""`/admin/v1/tenants`: operators create a tenant on a plan with its first API key (every
scope), as `genline create-tenant` does, and move a tenant to another plan. Behind an operator token with `tenants:manage`, on the admin port; in the audit trail; not part of the
public OpenAPI document."""

from typing import TYPE_CHECKING, Annotated, TypeAlias

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from services.common.admin import Operator, OperatorWith
from services.common.api import RequestModel, StorableText
from services.common.audit import Action, operator_actor, record_action
from services.common.problems import Problem
from services.ingest import accounts
from services.ingest.deps import Plans, Runtime
from services.ingest.plans import PlanBook
from services.ingest.roles import SCOPES

router = APIRouter(prefix="/admin/v1/tenants", include_in_schema=False)
# The operator holding `tenants:manage` (a dependency FastAPI reads from the annotation; to the
# type checker, the operator it yields).
if TYPE_CHECKING:
    TenantsManager: TypeAlias = Operator
else:
    TenantsManager = OperatorWith("tenants:manage")


class TenantRequest(RequestModel):
    id: str = Field(pattern=accounts.TENANT_ID_PATTERN)
    name: StorableText | None = Field(None, max_length=200)
    plan: StorableText | None = Field(None, max_length=64, description="plans.yaml's default when left out")


class PlanRequest(RequestModel):
    plan: StorableText = Field(max_length=64)


class NewTenant(BaseModel):
    id: str
    plan: str
    api_key: str = Field(description="the tenant's first key, shown this once")
    key_id: str


@router.post("", status_code=201, response_model=NewTenant)
async def create_tenant(operator: TenantsManager, runtime: Runtime, plans: Plans,
                        body: Annotated[TenantRequest, Body()]) -> NewTenant:
    plan = offered_plan(plans, body.plan or plans.default)
    async with runtime.pool.connection() as conn, conn.transaction():
        if not await accounts.insert_tenant(conn, accounts.Tenant(body.id, body.name, plan)):
            raise Problem(status=409, slug="tenant-exists", detail=f"tenant {body.id!r} exists already; create its keys with its own keys")
        issued = await accounts.issue_key(conn, body.id, grant=accounts.KeyGrant(name=accounts.OPERATOR_KEY_NAME))
        actor = operator_actor(operator.name)
        await record_action(runtime, conn, action=Action(actor=actor, name="tenant.create", target=f"tenant:{body.id}", tenant_id=body.id,
                                                  details={"name": body.name, "plan": plan}))
        await record_action(runtime, conn, action=Action(actor=actor, name="api_key.create", target=f"api_key:{issued.id}", tenant_id=body.id,
                                                  details={"name": accounts.OPERATOR_KEY_NAME, "scopes": list(SCOPES)}))
    runtime.relay.notify()
    return NewTenant(id=body.id, plan=plan, api_key=issued.secret, key_id=str(issued.id))


@router.put("/{tenant_id}/plan")
async def set_plan(tenant_id: str, operator: TenantsManager, runtime: Runtime, plans: Plans,
                   body: Annotated[PlanRequest, Body()]) -> dict[str, str]:
    """Move the tenant to another plan: its next request and submission are held to it; jobs
    already accepted go on."""
    plan = offered_plan(plans, body.plan)
    async with runtime.pool.connection() as conn, conn.transaction():
        previous = await accounts.set_plan(conn, tenant_id, plan=plan)
        if previous is None:
            raise Problem(status=404, slug="tenant-not-found", detail=f"no tenant {tenant_id!r}")
        await record_action(runtime, conn, action=Action(actor=operator_actor(operator.name), name="plan.set", target=f"tenant:{tenant_id}",
                                                  tenant_id=tenant_id, details={"previous": previous, "plan": plan}))
    runtime.relay.notify()
    return {"id": tenant_id, "plan": plan, "previous": previous}


def offered_plan(plans: PlanBook, name: str) -> str:
    if name not in plans.plans:
        raise Problem(status=422, slug="unknown-plan", detail=f"no plan {name!r}; offered: {', '.join(plans.plans)}")
    return name
