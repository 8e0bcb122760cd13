"""FastAPI dependencies: the service's runtime, its settings, and the caller: the tenant of
an API key, or of a member signed in to the console, that holds the scope the route needs
(a member's scopes are their role's, services.ingest.roles)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from psycopg.rows import DictRow

from services.common import audit, http_headers, telemetry
from services.common.contracts import KeySpendCaps
from services.common.db import Conn
from services.common.problems import Problem
from services.common.rounds import PeriodicRound
from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore
from services.ingest import roles
from services.ingest.plans import PlanBook, Rates, rate_decision
from services.ingest.session_auth import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, check_csrf, digest, hash_api_key
from services.ingest.settings import IngestSettings
from services.ingest.store import callers

UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="genline"'}
# The scheme the OpenAPI document names, with the scopes each operation needs; the key
# itself is checked below, with clearer problems.
api_key = HTTPBearer(scheme_name="apiKey", bearerFormat="gl_…", auto_error=False,
                     description="`Authorization: Bearer <api key>`; one tenant per key. An operation"
                                 " lists the scope the key needs (`jobs:write`, `jobs:read`, `account:read`,"
                                 " `keys:manage`, `webhooks:manage`); without it the answer is 403.")
# The console's session (services.ingest.session_auth): a member signed in, whose role
# gives the scopes; every change also carries the session's X-CSRF-Token.
session_cookie = APIKeyCookie(name=SESSION_COOKIE, scheme_name="session", auto_error=False,
                              description="The console's session cookie, set at sign-in (HttpOnly, Secure,"
                                          " SameSite=Lax); a request that changes something also sends the"
                                          " session's CSRF token as `X-CSRF-Token`. The member's role gives the"
                                          " scopes (see `GET /v1/roles`).")


async def read_capped(request: Request, limit: int, *, refused: Callable[[int], Problem]) -> bytes:
    """The body, refused with `refused(size)` as soon as its declared or its read length passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise refused(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise refused(size)
        chunks.append(chunk)
    return b"".join(chunks)


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


async def get_objects(request: Request) -> ObjectStore:
    objects: ObjectStore = request.app.state.objects
    return objects


async def get_plans(request: Request) -> PlanBook:
    plans: PlanBook = request.app.state.plans
    return plans


async def get_batch_rounds(request: Request) -> PeriodicRound:
    """The batch runner's rounds, woken when a batch is made or cancelled here."""
    rounds: PeriodicRound = request.app.state.batch_runner
    return rounds


async def get_evaluation_rounds(request: Request) -> PeriodicRound:
    """The evaluation runner's rounds, woken when an evaluation batch is made here."""
    rounds: PeriodicRound = request.app.state.evaluation_runner
    return rounds


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
BatchRounds = Annotated[PeriodicRound, Depends(get_batch_rounds)]
EvaluationRounds = Annotated[PeriodicRound, Depends(get_evaluation_rounds)]
Plans = Annotated[PlanBook, Depends(get_plans)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Objects = Annotated[ObjectStore, Depends(get_objects)]


@dataclass(frozen=True)
class Member:
    """The member (a person, or a service account through its key) a caller acts as."""

    id: UUID
    role: str
    email: str | None = None


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who is calling: the tenant, the key it used (None for a console session), what it may
    do, and the member it acts as (None for a key no member owns)."""

    tenant_id: str
    key_id: UUID | None
    scopes: frozenset[str]
    caps: KeySpendCaps = KeySpendCaps()
    member: Member | None = None
    session_id: UUID | None = None

    @property
    def actor(self) -> str:
        """The caller as the audit trail names it."""
        return audit.member_actor(str(self.member.id)) if self.member else audit.key_actor(str(self.key_id))

    def owns(self, owner_id: UUID | None) -> bool:
        """Whether a thing owned by `owner_id` (None: the tenant) is the caller's own."""
        return owner_id == (self.member.id if self.member else None)


def client_address(request: Request) -> str:
    """Where a request came from: the connection's peer, or, for a peer among the proxies the
    operator names (`trusted_proxies`), the client they forwarded it for. The verify rate limit,
    the sign-in throttle, sessions and the audit trail all name callers by it, so behind an
    ingress they name the client, never the ingress."""
    settings: IngestSettings = request.app.state.settings
    forwarded = ", ".join(request.headers.getlist(settings.forwarded_header)) or None
    return http_headers.client_address(request.client.host if request.client else None, forwarded,
                                       proxies=settings.proxy_networks())


def acting(caller: Caller, request: Request) -> audit.Acting:
    details: dict[str, Any] = {}
    if caller.member is not None and caller.member.email:
        details["actor_email"] = caller.member.email
    if caller.member is not None and caller.key_id is not None:
        details["actor_key"] = str(caller.key_id)
    return audit.Acting(caller.actor, client_address(request), details)


async def by_session(request: Request, conn: Conn, *, token: str, rates: Rates) -> tuple[Caller, DictRow]:
    """The caller of a console session (401 once it has ended), and its row (its tenant's plan,
    the request taken against its rate); a change must carry the session's CSRF token (403)."""
    settings = await get_settings(request)
    sent = request.headers.get(CSRF_HEADER, "")
    csrf_hash = None if request.method in SAFE_METHODS else digest(sent) if sent else ""
    row = await callers.session_caller(conn, digest(token), idle_s=settings.session_idle_s, csrf_hash=csrf_hash, rates=rates)
    if row is None:
        raise Problem(status=401, slug="session-ended", detail="this session has ended (signed out, timed out, or the member's role"
                      " changed): sign in again", headers=UNAUTHORIZED)
    check_csrf(request, row["csrf_hash"], public_url=settings.public_url)
    member = Member(row["member_id"], row["role"], row["email"])
    return Caller(tenant_id=row["tenant_id"], key_id=None, scopes=roles.scopes_of(row["role"]), member=member, session_id=row["id"]), row


async def by_key(conn: Conn, secret: str, *, rates: Rates) -> tuple[Caller, DictRow]:
    """The caller of an API key (401 when it is not live), and its row (its tenant's plan, the
    request taken against its rate). A key a member or service account owns does what its
    scopes and its owner's role both allow."""
    row = await callers.key_caller(conn, hash_api_key(secret), rates=rates)
    if row is None:
        raise Problem(status=401, slug="invalid-api-key", detail="the API key is not valid", headers=UNAUTHORIZED)
    caps = KeySpendCaps(daily=row["daily_cap_credits"], monthly=row["monthly_cap_credits"])
    member = Member(row["owner_id"], row["owner_role"], row["owner_email"]) if row["owner_id"] else None
    scopes = roles.effective_scopes(row["scopes"], row["owner_role"] if member else None)
    return Caller(tenant_id=row["tenant_id"], key_id=row["id"], scopes=scopes, caps=caps, member=member), row


async def authenticated(request: Request, response: Response,
                        *, bearer: Annotated[HTTPAuthorizationCredentials | None, Security(api_key)]) -> Caller:
    """`Authorization: Bearer <api key>`, else the console's session cookie, looked up on every
    request (no cache), so a key revoked, a session ended or a member removed is refused at
    once by every replica. The request counts against the tenant's plan's rate in the same
    statement, on the shared database, so the rate holds across ingest's replicas (429 beyond
    it); every answer carries the RateLimit headers."""
    runtime, plans = await get_runtime(request), await get_plans(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not request.headers.get("authorization") and not cookie:
        raise Problem(status=401, slug="missing-api-key", detail="send your API key as 'Authorization: Bearer <key>'", headers=UNAUTHORIZED)
    if request.headers.get("authorization") and bearer is None:
        raise Problem(status=401, slug="invalid-api-key", detail="the Authorization header must be 'Bearer <key>'", headers=UNAUTHORIZED)
    async with runtime.pool.connection() as conn:
        if bearer is not None:
            caller, row = await by_key(conn, bearer.credentials.strip(), rates=plans.rates())
        else:
            assert cookie is not None  # one of the two was sent
            caller, row = await by_session(request, conn, token=cookie, rates=plans.rates())
    plan = plans.get(row["plan"])
    decision = rate_decision(plan, row["allowed"], ahead_s=row["ahead"])
    telemetry.bind_tenant(caller.tenant_id)
    audit.ACTING.set(acting(caller, request))
    if not decision.allowed:
        raise Problem(status=429, slug="rate-limited", detail=f"plan {plan.name!r} allows {plan.requests_per_s:g} requests a second"
                      f" with bursts of {plan.burst}; retry after {decision.retry_after_s} s",
                      headers=decision.headers(plan), extra={"retry_after": decision.retry_after_s, "plan": plan.name})
    response.headers.update(decision.headers(plan))
    return caller


async def scoped_caller(security_scopes: SecurityScopes, caller: Annotated[Caller, Depends(authenticated)],
                        *, _session: Annotated[str | None, Security(session_cookie)] = None) -> Caller:
    """The caller, when what it may do holds every scope the operation lists (403 else). The
    session cookie is named here so that the document lists it beside the key; `authenticated`
    reads it."""
    missing = [scope for scope in security_scopes.scopes if scope not in caller.scopes]
    if missing and caller.key_id is None:
        assert caller.member is not None  # a session is always a member's
        raise Problem(status=403, slug="missing-scope", detail=f"the role {caller.member.role!r} does not allow this operation (it needs"
                      f" the scope {missing[0]!r})", extra={"scope": missing[0], "role": caller.member.role})
    if missing:
        raise Problem(status=403, slug="missing-scope", detail=f"this API key lacks the scope {missing[0]!r} that this operation needs",
                      extra={"scope": missing[0]})
    return caller


async def scoped_tenant(caller: Annotated[Caller, Security(scoped_caller)]) -> str:
    return caller.tenant_id


def Scoped(scope: str) -> Any:  # noqa: N802 - used as a type: `tenant: Scoped("jobs:write")`
    """The caller's tenant, when its key holds `scope` (else 403 naming it); the scope is
    listed in the operation's security requirement in the OpenAPI document."""
    return Annotated[str, Security(scoped_tenant, scopes=[scope])]


def ScopedCaller(scope: str) -> Any:  # noqa: N802
    """As Scoped, but the whole Caller: for routes that act on keys."""
    return Annotated[Caller, Security(scoped_caller, scopes=[scope])]


JobsWriter = Scoped("jobs:write")
JobsSubmitter = ScopedCaller("jobs:write")  # a job carries the key that submitted it, and its spend caps
JobsReader = Scoped("jobs:read")
ReceiptsReader = Scoped("receipts:read")  # receipts hold no prompt: billing reads them, not jobs
AccountReader = Scoped("account:read")
KeysManager = ScopedCaller("keys:manage")
MembersManager = ScopedCaller("members:manage")
AuditReader = ScopedCaller("audit:read")
SsoManager = ScopedCaller("sso:manage")
# Anyone signed in, whatever they may do: who am I, my sessions.
SignedIn = Annotated[Caller, Security(scoped_caller)]
