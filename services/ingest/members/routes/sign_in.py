"""`/v1/sessions`: the console's sessions. In a tenant without an identity provider a member
signs in by a link mailed to them (`POST /v1/sessions/email-link`; single sign-on is
routes/sso.py); a session opens and its cookies are set. `/v1/sessions` lists the member's
sessions, ends this one (sign out), or all of them (sign out everywhere)."""

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.common import problems
from services.common.api import RequestModel, StorableText
from services.common.audit import Action, record_action
from services.common.problems import Problem
from services.ingest.deps import Runtime, Settings, SignedIn, client_address
from services.ingest.members import sessions
from services.ingest.members.links import BadLink
from services.ingest.members.mail import Mail as Message
from services.ingest.members.mail import MailUnsent
from services.ingest.members.store import members as member_store
from services.ingest.members.store import sessions as store
from services.ingest.members.store.sessions import SessionTimeouts
from services.ingest.members.web import base_of, sign_in_of, throttle
from services.ingest.members.wiring import Mail, Signer
from services.ingest.session_auth import digest

router = APIRouter(prefix="/v1", tags=["sign-in"])
TENANT = r"^[a-z0-9][a-z0-9_-]{0,62}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"
SESSION_EXAMPLE: JsonDict = {"id": "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b", "method": "sso", "origin": "203.0.113.9",
                   "user_agent": "Mozilla/5.0", "created_at": "2026-11-02T10:00:00Z",
                   "last_seen_at": "2026-11-02T10:20:00Z", "expires_at": "2026-11-02T10:50:00Z", "current": True}


class EmailLinkRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tenant_id": "acme", "email": "dev@example.com"}]})

    tenant_id: StorableText = Field(pattern=TENANT)
    email: StorableText = Field(max_length=320, pattern=EMAIL)


class LinkToken(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": "q3…"}]})

    token: str = Field(min_length=10, max_length=200, description="the part of the mailed link after '#'")


class LinkSent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"sent": "if-member"}]})

    sent: Literal["if-member"] = Field("if-member", description="a link was mailed if the address is a member's"
                                                                " (which this answer does not say)")


class SessionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SESSION_EXAMPLE]})

    id: Any
    method: str = Field(description="how it signed in: sso, email_link or invitation")
    origin: str | None = Field(description="the address it signed in from")
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime = Field(description="when it ends unless used again (idle), or at the latest")
    current: bool


class SessionList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [SESSION_EXAMPLE]}]})

    data: list[SessionOut]


class Ended(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ended": 3}]})

    ended: int = Field(description="sessions ended")


# ---- by mail ------------------------------------------------------------------------------


@router.post("/sessions/email-link", status_code=202, response_model=LinkSent, responses=problems.responses(409, 429))
async def send_sign_in_link(body: EmailLinkRequest, request: Request, runtime: Runtime, settings: Settings,
                            signer: Signer, mailer: Mail) -> LinkSent:
    """Mail a sign-in link to a member of a tenant without an identity provider (409 for a
    tenant that has one: sign in there). The answer is the same whether or not the address is a
    member's."""
    await throttle(request, runtime)
    email = body.email.lower()
    async with runtime.pool.connection() as conn, conn.transaction():
        if await store.read_provider(conn, body.tenant_id) is not None:
            raise Problem(status=409, slug="sign-in-with-provider", detail=f"{body.tenant_id!r} signs in through its identity provider",
                          extra={"start": f"/v1/sso/{body.tenant_id}/start"})
        member = await member_store.member_by_email(conn, body.tenant_id, email=email)
        expires = time.time() + settings.sign_in_link_ttl_s
        token = signer.sign("sign-in", expires)
        if member is not None:
            await member_store.insert_sign_in_link(conn, member, token_hash=digest(token), expires_at=datetime.fromtimestamp(expires, UTC))
    if member is not None:
        link = f"{base_of(request, settings.public_url)}/console/sign-in/link#{token}"
        try:
            await mailer.send(Message(email, "Sign in to Genline", f"Sign in to {body.tenant_id!r} on Genline: {link}\n\n"
                                      f"The link works once, for {settings.sign_in_link_ttl_s // 60} minutes.\n"))
        except MailUnsent:
            pass  # the answer says nothing either way
    return LinkSent()


@router.post("/sessions/email-link/redeem", status_code=201, response_model=SessionOut,
             responses=problems.responses(404, 429))
async def redeem_sign_in_link(body: LinkToken, request: Request, response: Response, runtime: Runtime,
                              settings: Settings, signer: Signer) -> SessionOut:
    """Follow a mailed sign-in link: a session opens and its cookies are set. A link works once."""
    await throttle(request, runtime)
    try:
        signer.check("sign-in", body.token)
    except BadLink:
        raise Problem(status=404, slug="sign-in-link-not-found", detail="this sign-in link is not valid or has expired") from None
    async with runtime.pool.connection() as conn, conn.transaction():
        member = await member_store.use_sign_in_link(conn, digest(body.token))
        if member is None:
            raise Problem(status=404, slug="sign-in-link-not-found", detail="this sign-in link was used or has expired")
        opened = await sessions.open_for(runtime, conn, sign_in=sign_in_of(request, member, method="email_link"), settings=settings)
    runtime.relay.notify()
    sessions.set_cookies(response, opened)
    now = datetime.now(UTC)
    return SessionOut(id=opened.id, method="email_link", origin=client_address(request),
                      user_agent=request.headers.get("user-agent", ""), created_at=now, last_seen_at=now,
                      expires_at=now, current=True)


# ---- the member's sessions ---------------------------------------------------------------


def member_of(caller: Any) -> Any:
    if caller.member is None or caller.member.email is None:
        raise Problem(status=409, slug="not-a-member", detail="this API key belongs to no member, so it has no sessions")
    return caller.member


@router.get("/sessions", response_model=SessionList, responses=problems.responses(403, 409))
async def list_sessions(caller: SignedIn, runtime: Runtime, settings: Settings) -> SessionList:
    """Your open sessions, newest first, the current one marked."""
    timeouts = SessionTimeouts(settings.session_idle_s, settings.session_absolute_s)
    async with runtime.pool.connection() as conn:
        rows = await store.list_sessions(conn, member_of(caller).id, timeouts=timeouts)
    return SessionList(data=[SessionOut(**row, current=row["id"] == caller.session_id) for row in rows])


@router.delete("/sessions/current", response_model=Ended, responses=problems.responses(403, 409))
async def sign_out(caller: SignedIn, response: Response, runtime: Runtime) -> Ended:
    """End this session (sign out); its cookies are cleared."""
    if caller.session_id is None:
        raise Problem(status=409, slug="not-a-session", detail="an API key is not a session: revoke the key instead")
    async with runtime.pool.connection() as conn, conn.transaction():
        await store.end_session(conn, caller.session_id, reason="signed_out")
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="member.sign_out", target=f"session:{caller.session_id}",
                                                  tenant_id=caller.tenant_id))
    runtime.relay.notify()
    sessions.clear_cookies(response)
    return Ended(ended=1)


@router.post("/sessions/end-all", response_model=Ended, responses=problems.responses(403, 409))
async def sign_out_everywhere(caller: SignedIn, response: Response, runtime: Runtime) -> Ended:
    """End every session of yours, in every browser (sign out everywhere)."""
    member = member_of(caller)
    async with runtime.pool.connection() as conn, conn.transaction():
        ended = await store.end_sessions_of(conn, member.id, reason="signed_out_everywhere")
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="member.sign_out_everywhere", target=f"member:{member.id}",
                                                  tenant_id=caller.tenant_id, details={"sessions_ended": ended}))
    runtime.relay.notify()
    if caller.session_id is not None:
        sessions.clear_cookies(response)
    return Ended(ended=ended)
