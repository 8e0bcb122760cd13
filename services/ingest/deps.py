"""FastAPI dependencies: the service's runtime, its settings, and the caller: the tenant of
an API key that holds the scope the route needs."""

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from services.common import telemetry
from services.common.contracts import KeySpendCaps
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore
from services.ingest import store
from services.ingest.accounts import limits
from services.ingest.accounts.keys import hash_api_key
from services.ingest.accounts.plans import PlanBook
from services.ingest.accounts.prompt_screening import PromptGate
from services.ingest.inputs.screening import ScreeningGate
from services.ingest.jobs.live import LogWatch
from services.ingest.settings import IngestSettings

UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="genline"'}
# The scheme the OpenAPI document names, with the scopes each operation needs; the key
# itself is checked below, with clearer problems.
api_key = HTTPBearer(scheme_name="apiKey", bearerFormat="gl_…", auto_error=False,
                     description="`Authorization: Bearer <api key>`; one tenant per key. An operation"
                                 " lists the scope the key needs (`jobs:write`, `jobs:read`, `account:read`,"
                                 " `keys:manage`, `webhooks:manage`); without it the answer is 403.")


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


async def get_objects(request: Request) -> ObjectStore:
    objects: ObjectStore = request.app.state.objects
    return objects


async def get_log_watch(request: Request) -> LogWatch:
    log_watch: LogWatch = request.app.state.log_watch
    return log_watch


async def get_plans(request: Request) -> PlanBook:
    plans: PlanBook = request.app.state.plans
    return plans


async def get_screening(request: Request) -> ScreeningGate:
    screening: ScreeningGate = request.app.state.screening
    return screening


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Plans = Annotated[PlanBook, Depends(get_plans)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Objects = Annotated[ObjectStore, Depends(get_objects)]
Watch = Annotated[LogWatch, Depends(get_log_watch)]
Screening = Annotated[ScreeningGate, Depends(get_screening)]


async def get_prompt_gate(request: Request) -> PromptGate:
    prompt_gate: PromptGate = request.app.state.prompt_gate
    return prompt_gate


PromptScreen = Annotated[PromptGate, Depends(get_prompt_gate)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant, the key it used, and what that key may do."""

    tenant_id: str
    key_id: UUID
    scopes: frozenset[str]
    caps: KeySpendCaps = KeySpendCaps()


async def authenticated(request: Request, response: Response,
                        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(api_key)]) -> Caller:
    """`Authorization: Bearer <api key>`, looked up on every request (no cache), so a key
    revoked or past its rotation overlap is refused at once by every replica. Then the
    request counts against the tenant's plan's rate (429 beyond it); every answer carries
    the RateLimit headers."""
    runtime, plans = await get_runtime(request), await get_plans(request)
    if not request.headers.get("authorization"):
        raise Problem(401, "missing-api-key", "send your API key as 'Authorization: Bearer <key>'", UNAUTHORIZED)
    if bearer is None:
        raise Problem(401, "invalid-api-key", "the Authorization header must be 'Bearer <key>'", UNAUTHORIZED)
    async with runtime.pool.connection() as conn:
        row = await store.live_key(conn, hash_api_key(bearer.credentials.strip()))
        if row is None:
            raise Problem(401, "invalid-api-key", "the API key is not valid", UNAUTHORIZED)
        plan = plans.get(row["plan"])
        decision = await limits.take_request(conn, row["tenant_id"], plan)
    telemetry.bind_tenant(row["tenant_id"])
    if not decision.allowed:
        raise Problem(429, "rate-limited", f"plan {plan.name!r} allows {plan.requests_per_s:g} requests a second"
                      f" with bursts of {plan.burst}; retry after {decision.retry_after_s} s",
                      decision.headers(plan), extra={"retry_after": decision.retry_after_s, "plan": plan.name})
    response.headers.update(decision.headers(plan))
    caps = KeySpendCaps(daily=row["daily_cap_credits"], monthly=row["monthly_cap_credits"])
    return Caller(row["tenant_id"], row["id"], frozenset(row["scopes"]), caps)


async def scoped_caller(security_scopes: SecurityScopes, caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
    missing = [scope for scope in security_scopes.scopes if scope not in caller.scopes]
    if missing:
        raise Problem(403, "missing-scope", f"this API key lacks the scope {missing[0]!r} that this operation needs",
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
AccountReader = Scoped("account:read")
KeysManager = ScopedCaller("keys:manage")
