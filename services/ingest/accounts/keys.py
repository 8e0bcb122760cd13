"""API keys: their scopes, how a key is made and hashed, and the api_keys table (issue, list,
revoke and rotate a tenant's keys). Only a key's SHA-256 is stored; the secret is returned
once, when it is issued."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.rows import DictRow

from services.common.contracts import KeySpendCaps
from services.common.db import Conn

API_KEY_PREFIX = "gl_"
# What a key may do; a key is created with a subset of its creator's. Keys made before
# scopes existed, and keys operators create, hold all of them.
SCOPES = ("jobs:write", "jobs:read", "account:read", "keys:manage", "webhooks:manage", "billing:manage")

# How much of a key is kept in clear, so a tenant can tell its keys apart: "gl_" and 5 more.
DISPLAY_PREFIX_LENGTH = 8
# The name of the keys operators create (CLI, admin API), as the tenant's key listing shows it.
OPERATOR_KEY_NAME = "operator"
KEY_COLUMNS = ("id, name, prefix, scopes, created_at, last_used_at, expires_at, revoked_at, daily_cap_credits,"
               " monthly_cap_credits")


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Keys are 256 random bits, so one SHA-256 is enough: there is nothing to brute-force."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    id: UUID
    secret: str
    prefix: str
    created_at: datetime


async def issue_key(conn: Conn, tenant_id: str, name: str = "",
                    scopes: tuple[str, ...] = SCOPES, caps: KeySpendCaps | None = None) -> IssuedKey:
    secret = new_api_key()
    caps = caps or KeySpendCaps()
    row = await (await conn.execute(
        "INSERT INTO api_keys (key_hash, tenant_id, prefix, name, scopes, daily_cap_credits, monthly_cap_credits)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id, created_at",
        [hash_api_key(secret), tenant_id, secret[:DISPLAY_PREFIX_LENGTH], name, list(scopes), caps.daily,
         caps.monthly])).fetchone()
    assert row is not None, "an INSERT ... RETURNING gives its row"
    return IssuedKey(row["id"], secret, secret[:DISPLAY_PREFIX_LENGTH], row["created_at"])


async def list_keys(conn: Conn, tenant_id: str) -> list[DictRow]:
    """The tenant's keys still in use (not revoked, not past their rotation overlap), oldest first."""
    return await (await conn.execute(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at, id", [tenant_id])).fetchall()


async def revoke_key(conn: Conn, tenant_id: str, key_id: UUID) -> bool:
    """Revoke a live key of the tenant; False when it has none by that id."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND tenant_id = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())", [key_id, tenant_id])
    return cur.rowcount == 1


async def rotate_key(conn: Conn, tenant_id: str, key_id: UUID,
                     overlap_s: int) -> tuple[IssuedKey, DictRow] | None:
    """A new key with the old one's name and scopes; the old one keeps working for `overlap_s`
    (never longer than it already would). None when the tenant has no live key by that id."""
    old = await (await conn.execute(
        f"UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, 'infinity'), now() + make_interval(secs => %s))"
        f" WHERE id = %s AND tenant_id = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
        f" RETURNING {KEY_COLUMNS}", [overlap_s, key_id, tenant_id])).fetchone()
    if old is None:
        return None
    return await issue_key(conn, tenant_id, old["name"], tuple(old["scopes"]), caps_of(old)), old


def caps_of(row: DictRow) -> KeySpendCaps:
    return KeySpendCaps(daily=row["daily_cap_credits"], monthly=row["monthly_cap_credits"])


async def set_caps(conn: Conn, tenant_id: str, key_id: UUID, caps: KeySpendCaps) -> DictRow | None:
    """Set a live key's spend caps (None lifts one); the key's row, or None when the tenant has
    no live key by that id. Jobs submitted from now on carry the new caps."""
    return await (await conn.execute(
        f"UPDATE api_keys SET daily_cap_credits = %s, monthly_cap_credits = %s WHERE id = %s AND tenant_id = %s"
        f" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) RETURNING {KEY_COLUMNS}",
        [caps.daily, caps.monthly, key_id, tenant_id])).fetchone()
