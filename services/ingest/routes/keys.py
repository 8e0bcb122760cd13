"""`/v1/api-keys`: a tenant's own keys. Create one with a name, a subset of the caller's
scopes and spend caps (the secret is shown once), list them with what each spent, set a key's
caps, revoke one, or rotate one with an overlap in which the old secret still works. All
behind `keys:manage`."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.common import problems
from services.common.api import RequestModel, StorableText
from services.common.audit import Action, key_actor, record_action
from services.common.contracts import KeySpendCaps
from services.common.problems import Problem
from services.ingest.accounts import keys, spend_caps
from services.ingest.accounts.keys import SCOPES
from services.ingest.deps import KeysManager, Runtime, Settings
from services.ingest.ledger_calls import Ledger, LedgerClient

router = APIRouter(prefix="/v1/api-keys", tags=["keys"])
Scope = Annotated[str, Field(pattern="^(" + "|".join(SCOPES) + ")$")]
KEY_ID = "3d9c7a51-6f0e-4b8a-9c21-7e5d4f3a2b10"
KeyId = Annotated[str, Path(max_length=64, examples=[KEY_ID], description="the key's id (not its secret)")]
KEY_EXAMPLE: JsonDict = {
    "id": KEY_ID, "name": "ci reader", "prefix": "gl_Xk3v9", "scopes": ["jobs:read"],
    "created_at": "2026-11-02T10:00:00Z", "last_used_at": "2026-11-02T10:05:00Z", "expires_at": None,
    "daily_cap_credits": 20, "monthly_cap_credits": None, "spent_today": 12, "spent_this_month": 140}
NEW_KEY_EXAMPLE: JsonDict = {
    "id": KEY_ID, "name": "ci reader", "prefix": "gl_Xk3v9", "scopes": ["jobs:read"],
    "created_at": "2026-11-02T10:00:00Z", "last_used_at": None, "expires_at": None,
    "secret": "gl_Xk3v9TqL2mZ8wR4yP0aB6cD1eF5gH7iJ9kL3nO5pQ"}


class KeyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci reader", "scopes": ["jobs:read"]}]})

    name: StorableText = Field("", max_length=100, description="shown in listings, to tell keys apart")
    scopes: list[Scope] | None = Field(None, min_length=1, max_length=len(SCOPES),
                                       description="what the key may do; the caller's own scopes when left out")
    daily_cap_credits: int | None = Field(None, ge=0, le=10**12, description="credits the key may spend per UTC"
                                                                            " day; null: no cap")
    monthly_cap_credits: int | None = Field(None, ge=0, le=10**12, description="credits the key may spend per UTC"
                                                                              " month; null: no cap")


class CapsRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"daily_cap_credits": 20, "monthly_cap_credits": 400}]})

    daily_cap_credits: int | None = Field(None, ge=0, le=10**12, description="credits per UTC day; null lifts the cap")
    monthly_cap_credits: int | None = Field(None, ge=0, le=10**12,
                                            description="credits per UTC month; null lifts the cap")

    def caps(self) -> KeySpendCaps:
        return KeySpendCaps(daily=self.daily_cap_credits, monthly=self.monthly_cap_credits)


class RotateRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_s": 3600}]})

    overlap_s: int | None = Field(None, ge=0, le=365 * 24 * 3600,
                                  description="seconds the old secret keeps working; the platform's default"
                                              " (a day) when left out")


class ApiKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [KEY_EXAMPLE]})

    id: UUID
    name: str
    prefix: str = Field(description="the first characters of the secret")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = Field(description="to the minute; null when never used")
    expires_at: datetime | None = Field(description="when a rotated key stops working; null while it is current")
    daily_cap_credits: int | None = Field(None, description="credits the key may spend per UTC day; null: no cap")
    monthly_cap_credits: int | None = Field(None, description="credits the key may spend per UTC month; null: no cap")
    spent_today: int | None = Field(None, description="credits held and charged for the key's jobs today (UTC);"
                                                      " null when the ledger does not answer")
    spent_this_month: int | None = Field(None, description="the same, this UTC month")


class NewApiKey(ApiKey):
    model_config = ConfigDict(json_schema_extra={"examples": [NEW_KEY_EXAMPLE]})

    secret: str = Field(description="the key itself, shown this once: store it now")


class ApiKeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [KEY_EXAMPLE]}]})

    data: list[ApiKey]


class RotatedApiKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "new": NEW_KEY_EXAMPLE, "old": KEY_EXAMPLE | {"expires_at": "2026-11-02T11:05:00Z"}}]})

    new: NewApiKey
    old: ApiKey = Field(description="the rotated key, working until its expires_at")


def parse_key_id(key_id: str) -> UUID:
    try:
        return UUID(key_id)
    except ValueError:
        raise Problem(404, "api-key-not-found", f"no API key {key_id!r}") from None


def new_key_body(issued: keys.IssuedKey, grant: keys.KeyGrant) -> NewApiKey:
    caps = grant.caps
    return NewApiKey(id=issued.id, name=grant.name, prefix=issued.prefix, scopes=list(grant.scopes),
                     created_at=issued.created_at, last_used_at=None, expires_at=None, secret=issued.secret,
                     daily_cap_credits=caps.daily, monthly_cap_credits=caps.monthly, spent_today=0,
                     spent_this_month=0)


def key_body(row: dict[str, Any], spent: dict[UUID, spend_caps.KeySpent] | None) -> ApiKey:
    """A key as listed: its row, with what it spent when the ledger answered."""
    used = spent.get(row["id"], spend_caps.KeySpent(0, 0)) if spent is not None else None
    return ApiKey.model_validate(row | {"spent_today": used and used.today, "spent_this_month": used and used.this_month})


@router.post("", status_code=201, response_model=NewApiKey)
async def create_api_key(caller: KeysManager, runtime: Runtime, response: Response,
                         body: Annotated[KeyRequest, Body()] = KeyRequest()) -> NewApiKey:
    """A new key for your tenant, with a name and scopes (a subset of this key's; 403 names
    one it lacks). The secret is in this answer only; only its hash is kept."""
    scopes = [s for s in SCOPES if s in (body.scopes or caller.scopes)]
    beyond = [s for s in (body.scopes or []) if s not in caller.scopes]
    if beyond:
        raise Problem(403, "scope-not-held", f"this API key cannot grant {beyond[0]!r}, a scope it does not hold",
                      extra={"scope": beyond[0]})
    caps = KeySpendCaps(daily=body.daily_cap_credits, monthly=body.monthly_cap_credits)
    grant = keys.KeyGrant(body.name, tuple(scopes), caps)
    async with runtime.pool.connection() as conn, conn.transaction():
        issued = await keys.issue_key(conn, caller.tenant_id, grant)
        await record_action(runtime, conn, Action(key_actor(str(caller.key_id)), "api_key.create",
                                                  f"api_key:{issued.id}", caller.tenant_id,
                                                  {"name": body.name, "scopes": scopes, **caps.model_dump()}))
    runtime.relay.notify()
    response.headers["Location"] = f"/v1/api-keys/{issued.id}"
    return new_key_body(issued, grant)


@router.get("", response_model=ApiKeyList)
async def list_api_keys(caller: KeysManager, runtime: Runtime, settings: Settings, ledger: Ledger) -> ApiKeyList:
    """Your tenant's keys that still work, oldest first, each with its spend caps and what it
    spent today and this month (null when the ledger does not answer); never their secrets."""
    async with runtime.pool.connection() as conn:
        rows = await keys.list_keys(conn, caller.tenant_id)
    spent = await spend_caps.spent_by_keys(LedgerClient(ledger, settings.ledger_grpc_timeout_s), caller.tenant_id,
                                           [row["id"] for row in rows]) if rows else {}
    return ApiKeyList(data=[key_body(row, spent) for row in rows])


@router.put("/{key_id}/caps", response_model=ApiKey, responses=problems.responses(404))
async def set_api_key_caps(key_id: KeyId, body: CapsRequest, caller: KeysManager, runtime: Runtime,
                           settings: Settings, ledger: Ledger) -> ApiKey:
    """Set a key's spend caps, in credits per UTC day and per UTC month (null lifts a cap).
    A job the key submits from now on is refused (402 `key-cap-reached`) when its cost would
    take the key's spend past a cap; what the key holds and was charged counts, what was
    released does not. Rotating a key keeps its caps."""
    caps = body.caps()
    async with runtime.pool.connection() as conn, conn.transaction():
        row = await keys.set_caps(conn, caller.tenant_id, parse_key_id(key_id), caps)
        if row is None:
            raise Problem(404, "api-key-not-found", f"no API key {key_id!r}")
        await record_action(runtime, conn, Action(key_actor(str(caller.key_id)), "api_key.caps", f"api_key:{row['id']}",
                                                  caller.tenant_id, caps.model_dump()))
    runtime.relay.notify()
    spent = await spend_caps.spent_by_keys(LedgerClient(ledger, settings.ledger_grpc_timeout_s), caller.tenant_id,
                                           [row["id"]])
    return key_body(row, spent)


@router.delete("/{key_id}", status_code=204, responses=problems.responses(404))
async def revoke_api_key(key_id: KeyId, caller: KeysManager, runtime: Runtime) -> Response:
    """Revoke a key: from now on every request with it is refused (401), on every replica.
    A key may revoke itself."""
    revoked = parse_key_id(key_id)
    async with runtime.pool.connection() as conn, conn.transaction():
        if not await keys.revoke_key(conn, caller.tenant_id, revoked):
            raise Problem(404, "api-key-not-found", f"no API key {key_id!r}")
        await record_action(runtime, conn, Action(key_actor(str(caller.key_id)), "api_key.revoke", f"api_key:{revoked}",
                                                  caller.tenant_id))
    runtime.relay.notify()
    return Response(status_code=204)


@router.post("/{key_id}/rotate", status_code=201, response_model=RotatedApiKey, responses=problems.responses(404))
async def rotate_api_key(key_id: KeyId, caller: KeysManager, runtime: Runtime, settings: Settings,
                         body: Annotated[RotateRequest, Body()] = RotateRequest()) -> RotatedApiKey:
    """A new secret for a key, with its name and scopes; the old secret keeps working for
    `overlap_s` seconds (never longer than it already would), then is refused."""
    overlap_s = min(settings.max_key_rotation_overlap_s,
                    body.overlap_s if body.overlap_s is not None else settings.key_rotation_overlap_s)
    async with runtime.pool.connection() as conn, conn.transaction():
        rotated = await keys.rotate_key(conn, caller.tenant_id, parse_key_id(key_id), overlap_s)
        if rotated is None:
            raise Problem(404, "api-key-not-found", f"no API key {key_id!r}")
        issued, old = rotated
        await record_action(runtime, conn, Action(key_actor(str(caller.key_id)), "api_key.rotate",
                                                  f"api_key:{old['id']}", caller.tenant_id,
                                                  {"new_key": str(issued.id), "overlap_s": overlap_s}))
    runtime.relay.notify()
    return RotatedApiKey(new=new_key_body(issued, keys.grant_of(old)),
                         old=ApiKey.model_validate(old))
