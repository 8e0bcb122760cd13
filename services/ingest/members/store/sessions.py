"""The console's sessions and single sign-on: sessions by the hash of their token (the live
session a request's cookie names is the kernel's read, store/callers.py), the
tenants' OpenID Connect providers, sign-ins under way, and the id_tokens already used."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from services.common.db import Conn


@dataclass(frozen=True, kw_only=True)
class NewSession:
    token_hash: str
    csrf_hash: str
    tenant_id: str
    member_id: UUID
    method: str
    origin: str | None
    user_agent: str
    lifetime_s: int


@dataclass(frozen=True)
class SessionTimeouts:
    """How long a session lives: idle (since its last request) and absolute (since sign-in)."""

    idle_s: int
    absolute_s: int


async def insert_session(conn: Conn, session: NewSession) -> DictRow:
    row = await (await conn.execute(
        "INSERT INTO sessions (token_hash, csrf_hash, tenant_id, member_id, method, origin, user_agent, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING id, created_at, expires_at",
        [session.token_hash, session.csrf_hash, session.tenant_id, session.member_id, session.method,
         session.origin, session.user_agent[:300], session.lifetime_s])).fetchone()
    assert row is not None, "an INSERT ... RETURNING gives its row"
    return row


async def end_session(conn: Conn, session_id: UUID, *, reason: str) -> bool:
    cur = await conn.execute("UPDATE sessions SET ended_at = now(), ended_reason = %s WHERE id = %s"
                             " AND ended_at IS NULL", [reason, session_id])
    return cur.rowcount == 1


async def end_sessions_of(conn: Conn, member_id: UUID, *, reason: str) -> int:
    """End every session of the member; how many were still open."""
    cur = await conn.execute("UPDATE sessions SET ended_at = now(), ended_reason = %s WHERE member_id = %s"
                             " AND ended_at IS NULL", [reason, member_id])
    return cur.rowcount


async def list_sessions(conn: Conn, member_id: UUID, *, timeouts: SessionTimeouts) -> list[DictRow]:
    """The member's sessions still open, newest first."""
    return await (await conn.execute(
        "SELECT id, method, origin, user_agent, created_at, last_seen_at,"
        " least(expires_at, last_seen_at + make_interval(secs => %s)) AS expires_at FROM sessions"
        " WHERE member_id = %s AND ended_at IS NULL AND expires_at > now()"
        " AND last_seen_at > now() - make_interval(secs => %s) ORDER BY created_at DESC",
        [timeouts.idle_s, member_id, timeouts.idle_s])).fetchall()


# ---- single sign-on ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProviderRow:
    """A tenant's provider as stored: the client secret wrapped under `secret_kek`."""

    tenant_id: str
    issuer: str
    client_id: str
    secret_kek: str | None
    client_secret: bytes
    allowed_domains: list[str]
    groups_claim: str
    group_roles: dict[str, str]
    just_in_time: bool
    default_role: str | None


async def write_provider(conn: Conn, provider: ProviderRow) -> None:
    await conn.execute(
        "INSERT INTO sso_providers (tenant_id, issuer, client_id, secret_kek, client_secret, allowed_domains,"
        " groups_claim, group_roles, just_in_time, default_role) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id,"
        " secret_kek = EXCLUDED.secret_kek, client_secret = EXCLUDED.client_secret,"
        " allowed_domains = EXCLUDED.allowed_domains, groups_claim = EXCLUDED.groups_claim,"
        " group_roles = EXCLUDED.group_roles, just_in_time = EXCLUDED.just_in_time,"
        " default_role = EXCLUDED.default_role, updated_at = now()",
        [provider.tenant_id, provider.issuer, provider.client_id, provider.secret_kek, provider.client_secret,
         provider.allowed_domains, provider.groups_claim, Jsonb(provider.group_roles), provider.just_in_time,
         provider.default_role])


async def read_provider(conn: Conn, tenant_id: str) -> ProviderRow | None:
    row = await (await conn.execute(
        "SELECT tenant_id, issuer, client_id, secret_kek, client_secret, allowed_domains, groups_claim, group_roles,"
        " just_in_time, default_role FROM sso_providers WHERE tenant_id = %s", [tenant_id])).fetchone()
    return ProviderRow(**row) if row else None


async def delete_provider(conn: Conn, tenant_id: str) -> bool:
    cur = await conn.execute("DELETE FROM sso_providers WHERE tenant_id = %s", [tenant_id])
    return cur.rowcount == 1


@dataclass(frozen=True, kw_only=True)
class SignInAttempt:
    """A sign-in through a provider, between the redirect to it and the browser's return."""

    state: str
    browser_hash: str
    tenant_id: str
    nonce: str
    code_verifier: str
    invitation: str | None
    return_to: str


async def insert_attempt(conn: Conn, attempt: SignInAttempt, *, lifetime_s: int) -> None:
    await conn.execute("DELETE FROM sso_attempts WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO sso_attempts (state, browser_hash, tenant_id, nonce, code_verifier, invitation, return_to,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
        [attempt.state, attempt.browser_hash, attempt.tenant_id, attempt.nonce, attempt.code_verifier,
         attempt.invitation, attempt.return_to, lifetime_s])


async def take_attempt(conn: Conn, state: str) -> SignInAttempt | None:
    """The attempt with this state, taken (a state works once); None when unknown or expired."""
    row: dict[str, Any] | None = await (await conn.execute(
        "DELETE FROM sso_attempts WHERE state = %s RETURNING state, browser_hash, tenant_id, nonce, code_verifier,"
        " invitation, return_to, expires_at > now() AS live", [state])).fetchone()
    if row is None or not row.pop("live"):
        return None
    return SignInAttempt(**row)


async def first_use_of_token(conn: Conn, token_hash: str, *, expires_at: datetime) -> bool:
    """Record an id_token as used; False when it was used before (a replay)."""
    await conn.execute("DELETE FROM sso_seen_tokens WHERE expires_at < now()")
    row = await (await conn.execute("INSERT INTO sso_seen_tokens (token_hash, expires_at) VALUES (%s, %s)"
                                    " ON CONFLICT DO NOTHING RETURNING token_hash", [token_hash, expires_at])).fetchone()
    return row is not None
