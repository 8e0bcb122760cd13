"""`/admin/v1/tenants/{tenant}/invitations`: an operator invites a tenant's first owner (or
anyone, in any role), as a tenant's owner would; the answer also carries the link, for a
deployment whose mail is not set up yet. Behind an operator token with `tenants:manage`, on the
admin port; in the audit trail; not part of the public OpenAPI document."""

from typing import TYPE_CHECKING, Literal, TypeAlias

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from services.common.admin import Operator, OperatorWith
from services.common.api import RequestModel, StorableText
from services.common.audit import operator_actor
from services.ingest import roles
from services.ingest.deps import Runtime, Settings
from services.ingest.members import team
from services.ingest.members.web import base_of
from services.ingest.members.wiring import Mail, Signer

router = APIRouter(prefix="/admin/v1/tenants", include_in_schema=False)
if TYPE_CHECKING:
    TenantsManager: TypeAlias = Operator
else:
    TenantsManager = OperatorWith("tenants:manage")


class OwnerInvitation(RequestModel):
    email: StorableText = Field(max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$")
    role: Literal["owner", "admin", "developer", "billing", "viewer"] = "owner"


class OperatorInvitation(BaseModel):
    id: str
    email: str
    role: str
    mailed: bool
    mail_error: str | None
    link: str = Field(description="the invitation's link, for the operator to pass on when mail is not set up")


@router.post("/{tenant_id}/invitations", status_code=201, response_model=OperatorInvitation)
async def invite_to_tenant(tenant_id: str, body: OwnerInvitation, request: Request, operator: TenantsManager,
                           runtime: Runtime, settings: Settings, signer: Signer, mailer: Mail) -> OperatorInvitation:
    changer = team.Changer(tenant_id, frozenset(roles.SCOPES), operator_actor(operator.name))
    outbound = team.Outbound(signer, mailer, base_of(request, settings.public_url))
    row, link = await team.invite_by_mail(team.Team(runtime, changer),
                                          team.Invite(body.email, body.role, settings.invitation_ttl_s), outbound=outbound)
    return OperatorInvitation(id=str(row["id"]), email=row["email"], role=row["role"],
                              mailed=row["mailed_at"] is not None, mail_error=row["mail_error"], link=link)
