"""API keys: their scopes, how a key is made, and the api_keys table (issue, list, revoke and
rotate a tenant's keys, written by accounts/store.py). Only a key's SHA-256 is stored (hashed by
the kernel, session_auth.py, which looks a key up by it); the secret is returned once, when it
is issued."""

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from psycopg.rows import DictRow

from services.common.contracts import KeySpendCaps
from services.common.db import Conn
from services.ingest import roles
from services.ingest.accounts import store
from services.ingest.accounts.store import list_keys as list_keys
from services.ingest.accounts.store import revoke_key as revoke_key
from services.ingest.accounts.store import set_caps as set_caps
from services.ingest.session_auth import hash_api_key

API_KEY_PREFIX = "gl_"
# What a key may do; a key is created with a subset of its creator's. Keys made before
# scopes existed, and keys operators create, hold all of them.
SCOPES = roles.SCOPES

# How much of a key is kept in clear, so a tenant can tell its keys apart: "gl_" and 5 more.
DISPLAY_PREFIX_LENGTH = 8
# The name of the keys operators create (CLI, admin API), as the tenant's key listing shows it.
OPERATOR_KEY_NAME = "operator"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, kw_only=True)
class IssuedKey:
    id: UUID
    secret: str
    prefix: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class KeyGrant:
    """What a key is issued as: its name, the scopes it holds and its spend caps."""

    name: str = ""
    scopes: tuple[str, ...] = SCOPES
    caps: KeySpendCaps = field(default_factory=KeySpendCaps)
    owner_id: UUID | None = None  # a member or service account; None: the tenant's own


async def issue_key(conn: Conn, tenant_id: str, *, grant: KeyGrant) -> IssuedKey:
    secret = new_api_key()
    row = await store.insert_key(conn, tenant_id, key=store.NewKey(
        key_hash=hash_api_key(secret), prefix=secret[:DISPLAY_PREFIX_LENGTH], name=grant.name, scopes=grant.scopes, caps=grant.caps, owner_id=grant.owner_id))
    return IssuedKey(id=row["id"], secret=secret, prefix=secret[:DISPLAY_PREFIX_LENGTH], created_at=row["created_at"])


async def rotate_key(conn: Conn, tenant_id: str, *, key_id: UUID,
                     overlap_s: int) -> tuple[IssuedKey, DictRow] | None:
    """A new key with the old one's name and scopes; the old one keeps working for `overlap_s`
    (never longer than it already would). None when the tenant has no live key by that id."""
    old = await store.expire_key(conn, tenant_id, key_id=key_id, overlap_s=overlap_s)
    if old is None:
        return None
    return await issue_key(conn, tenant_id, grant=grant_of(old)), old


def caps_of(row: DictRow) -> KeySpendCaps:
    return KeySpendCaps(daily=row["daily_cap_credits"], monthly=row["monthly_cap_credits"])


def grant_of(row: DictRow) -> KeyGrant:
    """A stored key's name, scopes, caps and owner, as a key rotated from it is issued with."""
    return KeyGrant(name=row["name"], scopes=tuple(row["scopes"]), caps=caps_of(row), owner_id=row["owner_id"])
