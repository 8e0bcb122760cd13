"""Console sessions: one per sign-in, held on the server (services.ingest.store.sessions). The
browser holds two cookies: the session's token (HttpOnly, so no script can read it) and a CSRF
token that the console's script reads and echoes in `X-CSRF-Token` on every request that
changes something. A change is accepted only with the session's own CSRF token (its hash is
kept beside the session's) and, when the browser names the page's origin, from this origin:
a page elsewhere can make the browser send the cookies, never read or echo the token."""

import hmac
import secrets
from dataclasses import dataclass
from uuid import UUID

from fastapi import Request, Response

from services.common.audit import Action, member_actor, record_action
from services.common.db import Conn
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest.members.links import digest
from services.ingest.members.settings import TeamSettings
from services.ingest.store import sessions as store
from services.ingest.store.sessions import SessionTimeouts

# `__Host-`: the browser keeps them only when Secure, for this host alone, for every path.
SESSION_COOKIE = "__Host-genline-session"
CSRF_COOKIE = "__Host-genline-csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def own_origin(request: Request, public_url: str | None) -> str:
    base = public_url or str(request.base_url)
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def check_csrf(request: Request, csrf_hash: str, *, public_url: str | None) -> None:
    """Refuse (403) a change sent with the session's cookie but without its CSRF token, or
    from a page of another origin."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request, public_url):
        raise Problem(status=403, slug="csrf-refused", detail=f"a change to this session's account cannot come from {origin[:100]!r}")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(digest(sent), csrf_hash):
        raise Problem(status=403, slug="csrf-refused", detail=f"a change made with a session must carry its {CSRF_HEADER} header"
                      " (the console sends it)")
