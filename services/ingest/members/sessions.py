"""Console sessions: one per sign-in, held on the server (members/store/sessions.py), opened
at sign-in with their two cookies and ended at sign-out. How a request's session is checked
(its cookies, its CSRF token) is the kernel's: services/ingest/session_auth.py."""

import secrets
from dataclasses import dataclass
from uuid import UUID

from fastapi import Response

from services.common.audit import Action, member_actor, record_action
from services.common.db import Conn
from services.common.runtime import ServiceRuntime
from services.ingest.members.store import sessions as store
from services.ingest.members.store.sessions import SessionTimeouts
from services.ingest.session_auth import CSRF_COOKIE, SESSION_COOKIE, digest
from services.ingest.team_settings import TeamSettings


@dataclass(frozen=True, kw_only=True)
class SignIn:
    """Who signs in, how (`sso`, `email_link`, `invitation`), and from where."""

    tenant_id: str
    member_id: UUID
    method: str
    origin: str | None
    user_agent: str
    email: str | None = None


@dataclass(frozen=True, kw_only=True)
class OpenedSession:
    id: UUID
    token: str
    csrf: str
    max_age_s: int


async def open_session(conn: Conn, sign_in: SignIn, *, timeouts: SessionTimeouts) -> OpenedSession:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = await store.insert_session(conn, store.NewSession(
        token_hash=digest(token), csrf_hash=digest(csrf), tenant_id=sign_in.tenant_id, member_id=sign_in.member_id,
        method=sign_in.method, origin=sign_in.origin, user_agent=sign_in.user_agent, lifetime_s=timeouts.absolute_s))
    return OpenedSession(id=row["id"], token=token, csrf=csrf, max_age_s=timeouts.absolute_s)


async def open_for(runtime: ServiceRuntime, conn: Conn, *, sign_in: SignIn, settings: TeamSettings) -> OpenedSession:
    """A new session for a member who just signed in, with the sign-in on record."""
    opened = await open_session(conn, sign_in, timeouts=SessionTimeouts(settings.session_idle_s, settings.session_absolute_s))
    await record_action(runtime, conn, action=Action(actor=member_actor(str(sign_in.member_id)), name="member.sign_in",
                                              target=f"session:{opened.id}", tenant_id=sign_in.tenant_id,
                                              details={"method": sign_in.method, "origin": sign_in.origin,
                                               "actor_email": sign_in.email,
                                               "user_agent": sign_in.user_agent[:200]}))
    return opened


def set_cookies(response: Response, session: OpenedSession) -> None:
    response.set_cookie(SESSION_COOKIE, session.token, max_age=session.max_age_s, path="/", secure=True,
                        httponly=True, samesite="lax")
    response.set_cookie(CSRF_COOKIE, session.csrf, max_age=session.max_age_s, path="/", secure=True,
                        httponly=False, samesite="strict")


def clear_cookies(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, httponly=name == SESSION_COOKIE, samesite="lax")
