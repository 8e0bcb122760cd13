"""`/v1/api-keys`: a tenant's own keys. Create one with a name, a subset of the caller's
scopes and spend caps (the secret is shown once), list them with what each spent, set a key's
caps, revoke one, or rotate one with an overlap in which the old secret still works. All
behind `keys:manage`; a key belongs to the member (or service account) who made it or was given
it, and only `keys:admin` manages keys one does not own."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.common import problems
from services.common.api import RequestModel, StorableText
from services.common.audit import Action, record_action
from services.common.contracts import KeySpendCaps
from services.common.problems import Problem
from services.ingest import members, roles
from services.ingest.accounts import keys, spend_caps
from services.ingest.accounts.keys import SCOPES
from services.ingest.deps import Caller, KeysManager, Runtime, Settings
from services.ingest.ledger_calls import Ledger, LedgerClient

router = APIRouter(prefix="/v1/api-keys", tags=["keys"])
Scope = Annotated[str, Field(pattern="^(" + "|".join(SCOPES) + ")$")]
KEY_ID = "3d9c7a51-6f0e-4b8a-9c21-7e5d4f3a2b10"
KeyId = Annotated[str, Path(max_length=64, examples=[KEY_ID], description="the key's id (not its secret)")]
KEY_EXAMPLE: JsonDict = {
    "id": KEY_ID, "name": "ci reader", "prefix": "gl_Xk3v9", "scopes": ["jobs:read"],
    "created_at": "2026-11-02T10:00:00Z", "last_used_at": "2026-11-02T10:05:00Z", "expires_at": None,
    "daily_cap_credits": 20, "monthly_cap_credits": None, "spent_today": 12, "spent_this_month": 140,
    "owner_id": "5e2b7c10-3a4d-4f6e-8b9a-0c1d2e3f4a5b", "owner_kind": "person", "owner_name": "dev@example.com"}
NEW_KEY_EXAMPLE: JsonDict = {
    "id": KEY_ID, "name": "ci reader", "prefix": "gl_Xk3v9", "scopes": ["jobs:read"],
    "created_at": "2026-11-02T10:00:00Z", "last_used_at": None, "expires_at": None,
    "owner_id": "5e2b7c10-3a4d-4f6e-8b9a-0c1d2e3f4a5b", "secret": "gl_Xk3v9TqL2mZ8wR4yP0aB6cD1eF5gH7iJ9kL3nO5pQ"}


class KeyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci reader", "scopes": ["jobs:read"]}]})

    name: StorableText = Field("", max_length=100, description="shown in listings, to tell keys apart")
    scopes: list[Scope] | None = Field(None, min_length=1, max_length=len(SCOPES),
                                       description="what the key may do; the caller's own scopes when left out")
    daily_cap_credits: int | None = Field(None, ge=0, le=10**12, description="credits the key may spend per UTC"
                                                                            " day; null: no cap")
    monthly_cap_credits: int | None = Field(None, ge=0, le=10**12, description="credits the key may spend per UTC"
                                                                              " month; null: no cap")
    owner_id: Annotated[UUID, Field(strict=False)] | None = Field(None, description="the member or service account the key is for (needs"
                                                    " `keys:admin` unless it is you); you when left out")


class OwnerRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"owner_id": "5e2b7c10-3a4d-4f6e-8b9a-0c1d2e3f4a5b"}]})

    owner_id: Annotated[UUID, Field(strict=False)] | None = Field(description="the member or service account that owns the key from now on;"
                                              " null: the tenant itself")


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
    owner_id: UUID | None = Field(None, description="the member or service account that owns the key; null: the"
                                                    " tenant itself. The key does what its scopes and its owner's"
                                                    " role both allow, and is revoked when its owner is removed")
    owner_kind: Literal["person", "service"] | None = Field(None, description="whether the owner is a person or a"
                                                                             " service account")
    owner_name: str | None = Field(None, description="the owner's email, or the service account's name")


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
        raise Problem(status=404, slug="api-key-not-found", detail=f"no API key {key_id!r}") from None


def new_key_body(issued: keys.IssuedKey, grant: keys.KeyGrant) -> NewApiKey:
    caps = grant.caps
    return NewApiKey(id=issued.id, name=grant.name, prefix=issued.prefix, scopes=list(grant.scopes),
                     created_at=issued.created_at, last_used_at=None, expires_at=None, secret=issued.secret,
                     daily_cap_credits=caps.daily, monthly_cap_credits=caps.monthly, spent_today=0,
                     spent_this_month=0, owner_id=grant.owner_id)


async def check_owned(conn: Any, caller: Caller, *, key_id: UUID) -> None:
    """404 for a key the tenant does not have; 403 for one the caller neither owns nor may
    manage as `keys:admin`."""
    found, owner = await members.key_owner(conn, caller.tenant_id, key_id=key_id)
    if not found:
        raise Problem(status=404, slug="api-key-not-found", detail=f"no API key {key_id}")
    if "keys:admin" not in caller.scopes and not caller.owns(owner):
        raise Problem(status=403, slug="api-key-not-yours", detail="this key belongs to someone else; managing it needs the scope"
                      " 'keys:admin'", extra={"scope": "keys:admin"})


async def owner_scopes(conn: Any, caller: Caller, *, owner_id: UUID | None) -> frozenset[str]:
    """What a key for `owner_id` may at most hold: its owner's role (everything for the
    tenant's own keys). 404 for an owner the tenant does not have; 403 when it is not the
    caller and the caller lacks `keys:admin`."""
    if not caller.owns(owner_id) and "keys:admin" not in caller.scopes:
        raise Problem(status=403, slug="api-key-not-yours", detail="making or moving a key for someone else needs the scope"
                      " 'keys:admin'", extra={"scope": "keys:admin"})
    if owner_id is None:
        return frozenset(SCOPES)
    owner = await members.read_member(conn, caller.tenant_id, member_id=owner_id)
    if owner is None:
        raise Problem(status=404, slug="member-not-found", detail=f"no member or service account {owner_id}")
    return roles.scopes_of(owner["role"])


def key_body(row: dict[str, Any], spent: dict[UUID, spend_caps.KeySpent] | None) -> ApiKey:
    """A key as listed: its row, with what it spent when the ledger answered."""
    used = spent.get(row["id"], spend_caps.KeySpent(0, 0)) if spent is not None else None
    return ApiKey.model_validate(row | {"spent_today": used and used.today, "spent_this_month": used and used.this_month})


@router.post("", status_code=201, response_model=NewApiKey, responses=problems.responses(404))
async def create_api_key(caller: KeysManager, runtime: Runtime, response: Response,
                         body: Annotated[KeyRequest, Body()] = KeyRequest()) -> NewApiKey:
    """A new key for your tenant, with a name and scopes (a subset of yours; 403 names one you
    lack), owned by you, or by the member or service account `owner_id` names (within their
    role). The secret is in this answer only; only its hash is kept."""
    owner_id = body.owner_id if "owner_id" in body.model_fields_set else (caller.member.id if caller.member else None)
    async with runtime.pool.connection() as conn, conn.transaction():
        allowed = caller.scopes & await owner_scopes(conn, caller, owner_id=owner_id)
        scopes = [s for s in SCOPES if s in (body.scopes or allowed)]
        beyond = [s for s in (body.scopes or []) if s not in allowed]
        if beyond:
            raise Problem(status=403, slug="scope-not-held", detail=f"this key cannot be given {beyond[0]!r}: you or its owner do not"
                          " hold it", extra={"scope": beyond[0]})
        caps = KeySpendCaps(daily=body.daily_cap_credits, monthly=body.monthly_cap_credits)
        grant = keys.KeyGrant(name=body.name, scopes=tuple(scopes), caps=caps, owner_id=owner_id)
        issued = await keys.issue_key(conn, caller.tenant_id, grant=grant)
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="api_key.create", target=f"api_key:{issued.id}",
                                                  tenant_id=caller.tenant_id, details={"name": body.name, "scopes": scopes,
                                                                     "owner": str(owner_id) if owner_id else None,
                                                                     **caps.model_dump()}))
    runtime.relay.notify()
    response.headers["Location"] = f"/v1/api-keys/{issued.id}"
    return new_key_body(issued, grant)


@router.get("", response_model=ApiKeyList)
async def list_api_keys(caller: KeysManager, runtime: Runtime, settings: Settings, ledger: Ledger) -> ApiKeyList:
    """Your tenant's keys that still work (all of them with `keys:admin`, else the ones you
    own), oldest first, each with its owner, its spend caps and what it spent today and this
    month (null when the ledger does not answer); never their secrets."""
    async with runtime.pool.connection() as conn:
        rows = [row for row in await keys.list_keys(conn, caller.tenant_id)
                if "keys:admin" in caller.scopes or caller.owns(row["owner_id"])]
    spent = await spend_caps.spent_by_keys(LedgerClient(ledger, settings.ledger_grpc_timeout_s), caller.tenant_id,
                                           key_ids=[row["id"] for row in rows]) if rows else {}
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
        await check_owned(conn, caller, key_id=parse_key_id(key_id))
        row = await keys.set_caps(conn, caller.tenant_id, key_id=parse_key_id(key_id), caps=caps)
        if row is None:
            raise Problem(status=404, slug="api-key-not-found", detail=f"no API key {key_id!r}")
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="api_key.caps", target=f"api_key:{row['id']}",
                                                  tenant_id=caller.tenant_id, details=caps.model_dump()))
    runtime.relay.notify()
    spent = await spend_caps.spent_by_keys(LedgerClient(ledger, settings.ledger_grpc_timeout_s), caller.tenant_id,
                                           key_ids=[row["id"]])
    return key_body(row, spent)


@router.delete("/{key_id}", status_code=204, responses=problems.responses(404))
async def revoke_api_key(key_id: KeyId, caller: KeysManager, runtime: Runtime) -> Response:
    """Revoke a key: from now on every request with it is refused (401), on every replica.
    A key may revoke itself."""
    revoked = parse_key_id(key_id)
    async with runtime.pool.connection() as conn, conn.transaction():
        await check_owned(conn, caller, key_id=revoked)
        if not await keys.revoke_key(conn, caller.tenant_id, key_id=revoked):
            raise Problem(status=404, slug="api-key-not-found", detail=f"no API key {key_id!r}")
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="api_key.revoke", target=f"api_key:{revoked}",
                                                  tenant_id=caller.tenant_id))
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
        await check_owned(conn, caller, key_id=parse_key_id(key_id))
        rotated = await keys.rotate_key(conn, caller.tenant_id, key_id=parse_key_id(key_id), overlap_s=overlap_s)
        if rotated is None:
            raise Problem(status=404, slug="api-key-not-found", detail=f"no API key {key_id!r}")
        issued, old = rotated
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="api_key.rotate",
                                                  target=f"api_key:{old['id']}", tenant_id=caller.tenant_id,
                                                  details={"new_key": str(issued.id), "overlap_s": overlap_s}))
    runtime.relay.notify()
    return RotatedApiKey(new=new_key_body(issued, keys.grant_of(old)),
                         old=ApiKey.model_validate(old))


@router.put("/{key_id}/owner", response_model=ApiKey, responses=problems.responses(404))
async def move_api_key(key_id: KeyId, body: OwnerRequest, caller: KeysManager, runtime: Runtime) -> ApiKey:
    """Give a key to another member or service account (or to the tenant itself, `null`), for
    instance before its owner is removed: a key dies with its owner unless it was moved. Needs
    `keys:admin`; the key then does what its scopes and its new owner's role both allow."""
    moved = parse_key_id(key_id)
    async with runtime.pool.connection() as conn, conn.transaction():
        await check_owned(conn, caller, key_id=moved)
        await owner_scopes(conn, caller, owner_id=body.owner_id)
        await members.set_key_owner(conn, moved, owner_id=body.owner_id)
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="api_key.move", target=f"api_key:{moved}", tenant_id=caller.tenant_id,
                                                  details={"owner": str(body.owner_id) if body.owner_id else None}))
        row = next(row for row in await keys.list_keys(conn, caller.tenant_id) if row["id"] == moved)
    runtime.relay.notify()
    return key_body(row, None)
