"""Who calls: the API key or the console session a request carries; the request rate of a
tenant's plan, taken as each request is authenticated, and that of anonymous clients."""

from typing import Any

from psycopg.rows import DictRow

from services.common.db import Conn
from services.ingest.plans import Rates

# A key's last use is written at most this often, so a busy key costs no write per request.
LAST_USED_RESOLUTION = "1 minute"
# A session's last activity is written at most this often, so a busy console costs no write per request.
SEEN_RESOLUTION_S = 15
# The day a tenant's requests are counted in.
TODAY = "(now() AT TIME ZONE 'UTC')::date"


# Who calls, and the request it makes taken against its tenant's plan's rate, in one statement:
# `who` is the key's or session's row (with its tenant's plan, and `fresh`: its last use written
# recently), `seen` writes its last use when not fresh, `rate` finds its plan's rate (a plan no
# longer offered: the default's), `taken` moves the tenant's GCRA row when the request fits
# (counting it among today's), and the answer is the caller's row with `allowed` and `ahead`
# (how far the TAT runs ahead of now; for a refused request, read after it: `taken`).
# A request is taken only when `who` says it `counts`: a change made with a session counts only
# with the session's CSRF token, so a page elsewhere that makes a browser send the cookie
# spends none of the tenant's rate (deps.py refuses it, 403).
KEY = (
    "SELECT k.id, k.tenant_id, k.scopes, k.daily_cap_credits, k.monthly_cap_credits, t.plan,"
    " k.last_used_at > now() - %(resolution)s::interval AS fresh, k.owner_id, m.role AS owner_role, m.email AS owner_email,"
    " true AS counts"
    " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id LEFT JOIN members m ON m.id = k.owner_id"
    " WHERE k.key_hash = %(hash)s AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())"
    " AND (k.owner_id IS NULL OR m.removed_at IS NULL)")
KEY_SEEN = "UPDATE api_keys SET last_used_at = now() WHERE id = (SELECT id FROM who WHERE fresh IS NOT TRUE)"
SESSION = (
    "SELECT s.id, s.tenant_id, s.csrf_hash, s.member_id, m.role, m.email, m.kind, t.plan,"
    " s.last_seen_at > now() - make_interval(secs => %(resolution)s) AS fresh,"
    " (%(safe)s OR s.csrf_hash = %(csrf)s) AS counts"
    " FROM sessions s JOIN members m ON m.id = s.member_id JOIN tenants t ON t.id = s.tenant_id"
    " WHERE s.token_hash = %(hash)s AND s.ended_at IS NULL AND s.expires_at > now()"
    " AND s.last_seen_at > now() - make_interval(secs => %(idle)s) AND m.removed_at IS NULL")
SESSION_SEEN = "UPDATE sessions SET last_seen_at = now() WHERE id = (SELECT id FROM who WHERE fresh IS NOT TRUE)"
TAKEN = (
    "WITH who AS ({who}), seen AS ({seen}),"
    " rate AS (SELECT w.tenant_id, p.t, p.tol FROM who AS w CROSS JOIN LATERAL ("
    "  SELECT p.t, p.tol FROM unnest(%(names)s::text[], %(intervals)s::float8[], %(tolerances)s::float8[]) AS p(name, t, tol)"
    "  WHERE p.name = w.plan OR p.name = %(default)s ORDER BY coalesce(p.name = w.plan, false) DESC LIMIT 1) AS p"
    "  WHERE w.counts),"
    " taken AS (INSERT INTO rate_limits AS r (tenant_id, tat, day, requests)"
    f"  SELECT tenant_id, now() + make_interval(secs => t), {TODAY}, 1 FROM rate"
    "  ON CONFLICT (tenant_id) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => (SELECT t FROM rate)),"
    "  requests = CASE WHEN r.day = EXCLUDED.day THEN r.requests + 1 ELSE 1 END, day = EXCLUDED.day"
    "  WHERE greatest(r.tat, now()) + make_interval(secs => (SELECT t FROM rate))"
    "  <= now() + make_interval(secs => (SELECT tol FROM rate))"
    "  RETURNING extract(epoch FROM tat - now())::float8 AS ahead)"
    " SELECT w.*, taken.ahead IS NOT NULL AS allowed, taken.ahead FROM who AS w LEFT JOIN taken ON true")


async def taken(conn: Conn, sql: str, *, params: dict[str, Any]) -> DictRow | None:
    """TAKEN's row; for a request refused, how far the TAT runs ahead as it stands now, read in a
    statement of its own: a request of another replica may have moved it since this
    statement's snapshot, and the 429 names when to come back."""
    row = await (await conn.execute(sql, params)).fetchone()
    if row is not None and row["counts"] and not row["allowed"]:
        now = await (await conn.execute("SELECT extract(epoch FROM tat - now())::float8 AS ahead FROM rate_limits"
                                        " WHERE tenant_id = %s", [row["tenant_id"]])).fetchone()
        row["ahead"] = now["ahead"] if now else 0.0
    return row


def rate_params(rates: Rates) -> dict[str, Any]:
    return {"names": rates.names, "intervals": rates.intervals_s, "tolerances": rates.tolerances_s,
            "default": rates.default}


async def key_caller(conn: Conn, key_hash: str, *, rates: Rates) -> DictRow | None:
    """The API key with this hash, neither revoked nor expired nor its owner removed, with its
    tenant's plan and its owner's role, and the request taken against the plan's rate
    (`allowed`, `ahead`); its last use written when not recent. None: no such live key (no
    request is taken)."""
    params = {"hash": key_hash, "resolution": LAST_USED_RESOLUTION} | rate_params(rates)
    return await taken(conn, TAKEN.format(who=KEY, seen=KEY_SEEN), params=params)


async def session_caller(conn: Conn, token_hash: str, *, idle_s: int, csrf_hash: str | None,
                         rates: Rates) -> DictRow | None:
    """The session with this token, with its member and the tenant's plan, while it is neither
    ended, idle longer than `idle_s`, past its absolute expiry, nor its member removed, and the
    request taken against the plan's rate (`allowed`, `ahead`) when it reads (`csrf_hash` None)
    or carries the session's CSRF token (the hash of the one sent); its last activity written
    when older than SEEN_RESOLUTION_S. None: no such live session."""
    params = {"hash": token_hash, "resolution": SEEN_RESOLUTION_S, "idle": idle_s, "safe": csrf_hash is None,
              "csrf": csrf_hash or ""} | rate_params(rates)
    return await taken(conn, TAKEN.format(who=SESSION, seen=SESSION_SEEN), params=params)


async def take_anonymous_request(conn: Conn, client: str, *, interval_s: float,
                                 tolerance_s: float) -> float | None:
    """Count one request of an anonymous `client` (its address) against a GCRA rate, as
    TAKEN does for tenants: how far its TAT now runs ahead (allowed), or None
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


# ---- a tenant's requests today ---------------------------------------------------------------


async def requests_today(conn: Conn, tenant_id: str) -> tuple[int, float]:
    """Requests answered today (UTC), and how far the rate's TAT runs ahead of now (seconds)."""
    row = await (await conn.execute(
        f"SELECT CASE WHEN day = {TODAY} THEN requests ELSE 0 END AS requests,"
        " extract(epoch FROM tat - now())::float8 AS ahead FROM rate_limits WHERE tenant_id = %s",
        [tenant_id])).fetchone()
    return (row["requests"], row["ahead"]) if row else (0, 0.0)
