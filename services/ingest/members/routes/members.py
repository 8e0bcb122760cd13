"""`/v1/members`, `/v1/service-accounts`, `/v1/invitations` (and `/v1/invitation-links`, which
the invited follow), `/v1/roles`, `/v1/me`: a tenant's
people and machines. Owners and admins (`members:manage`) list members, change their roles,
remove them (their keys revoked unless moved), add service accounts, and invite people by a
signed, expiring, single-use link sent by mail; whoever follows the link joins in the role it
names. The role table is public; `/v1/me` says who a key or session is and what it may do."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.common import problems
from services.common.api import RequestModel, StorableText
from services.common.problems import Problem
from services.ingest import roles
from services.ingest.deps import MembersManager, Runtime, Settings, SignedIn, client_address
from services.ingest.members import sessions, team
from services.ingest.members.store import members as store
from services.ingest.members.store import sessions as session_store
from services.ingest.members.web import sign_in_of
from services.ingest.members.wiring import Mail, Signer

router = APIRouter(prefix="/v1", tags=["members"])
MEMBER_ID = "5e2b7c10-3a4d-4f6e-8b9a-0c1d2e3f4a5b"
MemberId = Annotated[UUID, Path(examples=[MEMBER_ID], description="the member's or service account's id")]
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"
RoleName = Literal["owner", "admin", "developer", "billing", "viewer"]
MEMBER_EXAMPLE: JsonDict = {"id": MEMBER_ID, "kind": "person", "email": "dev@example.com", "name": "", "role": "developer",
                  "signs_in_with_provider": True, "created_at": "2026-11-02T10:00:00Z", "keys": 2}
INVITATION_EXAMPLE: JsonDict = {"id": "0f6a2d1e-9b8c-4e7d-a6f5-4b3c2d1e0f9a", "email": "dev@example.com", "role": "developer",
                      "invited_by": "member:" + MEMBER_ID, "created_at": "2026-11-02T10:00:00Z",
                      "expires_at": "2026-11-09T10:00:00Z", "mailed": True, "mail_error": None}


class ScopeEntry(BaseModel):
    name: str
    description: str


class RoleEntry(BaseModel):
    name: RoleName
    description: str
    scopes: list[str]


class RoleTable(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scopes": [{"name": "jobs:read", "description": "read jobs"}],
        "roles": [{"name": "viewer", "description": "reads", "scopes": ["jobs:read"]}]}]})

    scopes: list[ScopeEntry]
    roles: list[RoleEntry] = Field(description="from the most to the least powerful")


class MemberOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MEMBER_EXAMPLE]})

    id: UUID
    kind: Literal["person", "service"] = Field(description="a person, or a service account (a machine)")
    email: str | None
    name: str
    role: RoleName
    signs_in_with_provider: bool = Field(description="linked to an identity at the tenant's provider")
    created_at: datetime
    keys: int | None = Field(None, description="live API keys the member owns")

    @classmethod
    def of(cls, row: Any) -> "MemberOut":
        return cls(**{k: row[k] for k in ("id", "kind", "email", "name", "role", "created_at")},
                   signs_in_with_provider=row["idp_subject"] is not None, keys=row.get("keys"))


class MemberList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [MEMBER_EXAMPLE]}]})

    data: list[MemberOut]


class Me(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tenant_id": "acme", "via": "session", "scopes": ["jobs:read", "receipts:read", "account:read"],
        "member": {**MEMBER_EXAMPLE, "role": "viewer"}, "api_key_id": None}]})

    tenant_id: str
    via: Literal["api_key", "session"]
    scopes: list[str] = Field(description="what this key or session may do now")
    member: MemberOut | None = Field(description="the member it acts as; null for a key no member owns")
    api_key_id: UUID | None


class RoleChange(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    role: RoleName


class ServiceAccountRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "nightly batch", "role": "developer"}]})

    name: StorableText = Field(min_length=1, max_length=100)
    role: Literal["admin", "developer", "billing", "viewer"]


class InvitationRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "dev@example.com", "role": "developer"}]})

    email: StorableText = Field(max_length=320, pattern=EMAIL)
    role: RoleName


class Invitation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [INVITATION_EXAMPLE]})

    id: UUID
    email: str
    role: RoleName
    invited_by: str = Field(description="who invited, as the audit log names them")
    created_at: datetime
    expires_at: datetime
    mailed: bool = Field(description="the SMTP server took the invitation's mail")
    mail_error: str | None = Field(description="why it could not be sent (then send it again, or revoke it)")

    @classmethod
    def of(cls, row: Any) -> "Invitation":
        return cls(**{k: row[k] for k in ("id", "email", "role", "invited_by", "created_at", "expires_at",
                                          "mail_error")}, mailed=row["mailed_at"] is not None)


class InvitationList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [INVITATION_EXAMPLE]}]})

    data: list[Invitation] = Field(description="open invitations, newest first")


class InvitationToken(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": "q3…"}]})

    token: str = Field(min_length=10, max_length=200, description="the part of the invitation's link after '#'")


class InvitationView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tenant_id": "acme", "email": "dev@example.com", "role": "developer", "expires_at": "2026-11-09T10:00:00Z",
        "sso": True}]})

    tenant_id: str
    email: str
    role: RoleName
    expires_at: datetime
    sso: bool = Field(description="the tenant signs in through its identity provider: accept by signing in there")


def changer_of(caller: Any) -> team.Changer:
    return team.Changer(caller.tenant_id, caller.scopes, caller.actor)


def public_base(request: Request, public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


@router.get("/roles", response_model=RoleTable)
async def list_roles() -> RoleTable:
    """The role table: every scope, and the scopes of each role. A member may do what their
    role's scopes allow; a key a member owns, what both its scopes and its owner's role allow."""
    return RoleTable(scopes=[ScopeEntry(name=n, description=d) for n, d in roles.SCOPE_DESCRIPTIONS.items()],
                     roles=[RoleEntry(name=r, description=roles.ROLE_DESCRIPTIONS[r],
                                      scopes=[s for s in roles.SCOPES if s in roles.ROLES[r]]) for r in roles.ROLE_NAMES])


@router.get("/me", response_model=Me)
async def who_am_i(caller: SignedIn, runtime: Runtime) -> Me:
    """Who this key or session is: its tenant, the member it acts as, and what it may do now."""
    member = None
    if caller.member is not None:
        async with runtime.pool.connection() as conn:
            row = await store.read_member(conn, caller.tenant_id, member_id=caller.member.id)
        member = MemberOut.of(row) if row else None
    return Me(tenant_id=caller.tenant_id, via="session" if caller.key_id is None else "api_key",
              scopes=[s for s in roles.SCOPES if s in caller.scopes], member=member, api_key_id=caller.key_id)


@router.get("/members", response_model=MemberList)
async def list_members(caller: MembersManager, runtime: Runtime) -> MemberList:
    """The tenant's members and service accounts, oldest first, with how many keys each owns."""
    async with runtime.pool.connection() as conn:
        return MemberList(data=[MemberOut.of(row) for row in await store.list_members(conn, caller.tenant_id)])


@router.put("/members/{member_id}/role", response_model=MemberOut, responses=problems.responses(404, 409))
async def change_member_role(member_id: MemberId, body: RoleChange, caller: MembersManager,
                             runtime: Runtime) -> MemberOut:
    """Give a member another role. Their sessions end at once (their next request is refused
    and they sign in again); their keys do from now on what the new role allows. Only roles
    within your own can be given or taken away (403); the last owner stays one (409)."""
    async with runtime.pool.connection() as conn, conn.transaction():
        row = await team.Team(runtime, changer_of(caller)).change_role(conn, member_id, role=body.role)
    runtime.relay.notify()
    return MemberOut.of(row)


@router.delete("/members/{member_id}", status_code=204, responses=problems.responses(404, 409))
async def remove_member(member_id: MemberId, caller: MembersManager, runtime: Runtime,
                        move_keys_to: Annotated[UUID | None, Query(description="another member or service account"
                                                                   " that takes over the removed one's keys; without"
                                                                   " it they are revoked")] = None) -> Response:
    """Remove a member or service account: their sessions end, their keys are revoked (or moved
    to `move_keys_to`), and their next request is refused. The last owner cannot be removed."""
    async with runtime.pool.connection() as conn, conn.transaction():
        await team.Team(runtime, changer_of(caller)).remove(conn, member_id, move_keys_to=move_keys_to)
    runtime.relay.notify()
    return Response(status_code=204)


@router.post("/service-accounts", status_code=201, response_model=MemberOut)
async def create_service_account(body: ServiceAccountRequest, caller: MembersManager, runtime: Runtime) -> MemberOut:
    """A service account: no person, a role, and API keys of its own (create them with
    `owner_id`), which outlive any member."""
    async with runtime.pool.connection() as conn, conn.transaction():
        row = await team.Team(runtime, changer_of(caller)).add_service_account(conn, body.name, role=body.role)
    runtime.relay.notify()
    return MemberOut.of(row | {"keys": 0})


@router.post("/invitations", status_code=201, response_model=Invitation, responses=problems.responses(409))
async def invite_member(body: InvitationRequest, request: Request, caller: MembersManager, runtime: Runtime,
                        settings: Settings, signer: Signer, mailer: Mail) -> Invitation:
    """Invite someone by mail to join in `role` (one within your own). The mail carries a
    signed link that works once, until `expires_at`; a new invitation to the same address
    replaces an open one. When the mail cannot be sent the invitation says why."""
    wanted = team.Invite(body.email, body.role, settings.invitation_ttl_s)
    outbound = team.Outbound(signer, mailer, public_base(request, settings.public_url))
    row, _ = await team.invite_by_mail(team.Team(runtime, changer_of(caller)), wanted, outbound=outbound)
    return Invitation.of(row)


@router.get("/invitations", response_model=InvitationList)
async def list_invitations(caller: MembersManager, runtime: Runtime) -> InvitationList:
    async with runtime.pool.connection() as conn:
        return InvitationList(data=[Invitation.of(r) for r in await store.list_invitations(conn, caller.tenant_id)])


@router.delete("/invitations/{invitation_id}", status_code=204, responses=problems.responses(404))
async def revoke_invitation(invitation_id: Annotated[UUID, Path(examples=[INVITATION_EXAMPLE["id"]])], caller: MembersManager, runtime: Runtime) -> Response:
    """Revoke an open invitation: its link no longer works."""
    async with runtime.pool.connection() as conn, conn.transaction():
        await team.Team(runtime, changer_of(caller)).revoke_invitation(conn, invitation_id)
    runtime.relay.notify()
    return Response(status_code=204)


async def open_invitation(runtime: Any, signer: Any, *, token: str) -> Any:
    async with runtime.pool.connection() as conn:
        row = await team.open_invitation(conn, signer, token=token)
        provider = await session_store.read_provider(conn, row["tenant_id"])
    return row, provider is not None


@router.post("/invitation-links/lookup", response_model=InvitationView, responses=problems.responses(404))
async def look_up_invitation(body: InvitationToken, runtime: Runtime, signer: Signer) -> InvitationView:
    """What an invitation link offers (no key needed: the link is the proof), and whether it is
    accepted by signing in at the tenant's identity provider."""
    row, sso = await open_invitation(runtime, signer, token=body.token)
    return InvitationView(tenant_id=row["tenant_id"], email=row["email"], role=row["role"],
                          expires_at=row["expires_at"], sso=sso)


@router.post("/invitation-links/accept", status_code=201, response_model=MemberOut, responses=problems.responses(404, 409))
async def accept_invitation(body: InvitationToken, request: Request, response: Response, runtime: Runtime,
                            settings: Settings, signer: Signer) -> MemberOut:
    """Join through an invitation's link and sign in to the console (the session's cookies are
    set). A tenant with an identity provider is joined by signing in there instead (409, with
    the address that starts it)."""
    _, sso = await open_invitation(runtime, signer, token=body.token)
    if sso:
        raise Problem(status=409, slug="sign-in-with-provider", detail="this tenant signs in through its identity provider: continue"
                      " there to accept the invitation")
    async with runtime.pool.connection() as conn, conn.transaction():
        member = await team.accept(runtime, conn, token=body.token, signer=signer,
                                   identity=team.Identity(origin=client_address(request)))
        opened = await sessions.open_for(runtime, conn, sign_in=sign_in_of(request, member, method="invitation"),
                                         settings=settings)
    runtime.relay.notify()
    sessions.set_cookies(response, opened)
    return MemberOut.of(member)
