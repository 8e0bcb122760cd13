"""Who calls: the API key or the console session a request carries; the request rate of a
tenant's plan, taken as each request is authenticated, and that of anonymous clients."""

from typing import Any, Protocol

from psycopg.rows import DictRow

from services.common.db import Conn

# A key's last use is written at most this often, so a busy key costs no write per request.
LAST_USED_RESOLUTION = "1 minute"
# A session's last activity is written at most this often, so a busy console costs no write per request.
SEEN_RESOLUTION_S = 15
# The day a tenant's requests are counted in.
TODAY = "(now() AT TIME ZONE 'UTC')::date"


async def live_key(conn: Conn, key_hash: str) -> dict[str, Any] | None:
    """The API key with this hash, neither revoked nor expired nor its owner removed, with its
    tenant's plan, its owner's role, and whether its last use was written recently (`fresh`);
    its last use written when not."""
    row: dict[str, Any] | None = await (await conn.execute(
        "SELECT k.id, k.tenant_id, k.scopes, k.daily_cap_credits, k.monthly_cap_credits, t.plan,"
        " k.last_used_at > now() - %s::interval AS fresh, k.owner_id, m.role AS owner_role, m.email AS owner_email"
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id LEFT JOIN members m ON m.id = k.owner_id"
        " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())"
        " AND (k.owner_id IS NULL OR m.removed_at IS NULL)",
        [LAST_USED_RESOLUTION, key_hash])).fetchone()
    if row is not None and not row["fresh"]:
        await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", [row["id"]])
    return row


async def live_session(conn: Conn, token_hash: str, *, idle_s: int) -> DictRow | None:
    """The session with this token, with its member and the tenant's plan, while it is neither
    ended, idle longer than `idle_s`, past its absolute expiry, nor its member removed; its last
    activity written when older than SEEN_RESOLUTION_S."""
    row = await (await conn.execute(
        "SELECT s.id, s.tenant_id, s.csrf_hash, s.member_id, m.role, m.email, m.kind, t.plan,"
        " s.last_seen_at > now() - make_interval(secs => %s) AS fresh"
        " FROM sessions s JOIN members m ON m.id = s.member_id JOIN tenants t ON t.id = s.tenant_id"
        " WHERE s.token_hash = %s AND s.ended_at IS NULL AND s.expires_at > now()"
        " AND s.last_seen_at > now() - make_interval(secs => %s) AND m.removed_at IS NULL",
        [SEEN_RESOLUTION_S, token_hash, idle_s])).fetchone()
    if row is not None and not row["fresh"]:
        await conn.execute("UPDATE sessions SET last_seen_at = now() WHERE id = %s", [row["id"]])
    return row


async def take_anonymous_request(conn: Conn, client: str, *, interval_s: float,
                                 tolerance_s: float) -> float | None:
    """Count one request of an anonymous `client` (its address) against a GCRA rate, as
    accounts/limits.py does for tenants: how far its TAT now runs ahead (allowed), or None
    (refused)."""
    row = await (await conn.execute(
        "INSERT INTO anonymous_rate_limits AS r (client, tat) VALUES (%(client)s, now() + make_interval(secs => %(t)s))"
        " ON CONFLICT (client) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => %(t)s)"
        " WHERE greatest(r.tat, now()) + make_interval(secs => %(t)s) <= now() + make_interval(secs => %(tol)s)"
        " RETURNING extract(epoch FROM tat - now())::float8 AS ahead",
        {"client": client, "t": interval_s, "tol": tolerance_s})).fetchone()
    return row["ahead"] if row else None


async def forget_idle_clients(conn: Conn) -> None:
    """Drop the rate rows of addresses idle for an hour: their next request starts afresh anyway."""
    await conn.execute("DELETE FROM anonymous_rate_limits WHERE tat < now() - interval '1 hour'")


# ---- a tenant's request rate, taken as a request is authenticated ------------------------


class Rate(Protocol):
    """A plan's request rate (GCRA): one request every `interval_s`, bursts up to `tolerance_s` ahead."""

    @property
    def interval_s(self) -> float: ...

    @property
    def tolerance_s(self) -> float: ...


async def take_request(conn: Conn, tenant_id: str, *, rate: Rate) -> tuple[bool, float]:
    """Count one request against the tenant's rate, and among the requests it was answered
    today; the row moves only when the request is allowed. Whether it was, and how far the
    rate's TAT runs ahead of now (seconds)."""
    row = await (await conn.execute(
        "INSERT INTO rate_limits AS r (tenant_id, tat, day, requests)"
        f" VALUES (%(tenant)s, now() + make_interval(secs => %(t)s), {TODAY}, 1)"
        " ON CONFLICT (tenant_id) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => %(t)s),"
        " requests = CASE WHEN r.day = EXCLUDED.day THEN r.requests + 1 ELSE 1 END, day = EXCLUDED.day"
        " WHERE greatest(r.tat, now()) + make_interval(secs => %(t)s) <= now() + make_interval(secs => %(tol)s)"
        " RETURNING extract(epoch FROM tat - now())::float8 AS ahead",
        {"tenant": tenant_id, "t": rate.interval_s, "tol": rate.tolerance_s})).fetchone()
    if row is not None:
        return True, row["ahead"]
    row = await (await conn.execute("SELECT extract(epoch FROM tat - now())::float8 AS ahead FROM rate_limits"
                                    " WHERE tenant_id = %s", [tenant_id])).fetchone()
    return False, row["ahead"] if row else 0.0


async def requests_today(conn: Conn, tenant_id: str) -> tuple[int, float]:
    """Requests answered today (UTC), and how far the rate's TAT runs ahead of now (seconds)."""
    row = await (await conn.execute(
        f"SELECT CASE WHEN day = {TODAY} THEN requests ELSE 0 END AS requests,"
        " extract(epoch FROM tat - now())::float8 AS ahead FROM rate_limits WHERE tenant_id = %s",
        [tenant_id])).fetchone()
    return (row["requests"], row["ahead"]) if row else (0, 0.0)
