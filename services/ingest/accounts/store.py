"""The accounts' tables: tenants and their plans, API keys, the tenants' prompt screening, and
the counters a plan's limits read (the request rate, jobs and images of the day)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from services.common.contracts import FINAL_STATES, KeySpendCaps
from services.common.db import Conn

KEY_COLUMNS = ("id, name, prefix, scopes, created_at, last_used_at, expires_at, revoked_at, daily_cap_credits,"
               " monthly_cap_credits, owner_id")
# The UTC day of the database's clock, which every counter here reads.


# ---- API keys ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NewKey:
    """An API key's row as it is issued: only the secret's hash, and its first characters."""

    key_hash: str
    prefix: str
    name: str
    scopes: tuple[str, ...]
    caps: KeySpendCaps
    owner_id: UUID | None = None


async def insert_key(conn: Conn, tenant_id: str, *, key: NewKey) -> DictRow:
    """Write the key; its id and created_at."""
    row = await (await conn.execute(
        "INSERT INTO api_keys (key_hash, tenant_id, prefix, name, scopes, daily_cap_credits, monthly_cap_credits,"
        " owner_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id, created_at",
        [key.key_hash, tenant_id, key.prefix, key.name, list(key.scopes), key.caps.daily,
         key.caps.monthly, key.owner_id])).fetchone()
    assert row is not None, "an INSERT ... RETURNING gives its row"
    return row


async def list_keys(conn: Conn, tenant_id: str) -> list[DictRow]:
    """The tenant's keys still in use (not revoked, not past their rotation overlap), oldest
    first, each with its owner's kind and email or name (`owner_kind`, `owner_name`)."""
    columns = ", ".join(f"k.{column.strip()}" for column in KEY_COLUMNS.split(","))
    return await (await conn.execute(
        f"SELECT {columns}, m.kind AS owner_kind, coalesce(m.email, m.name) AS owner_name FROM api_keys k"
        " LEFT JOIN members m ON m.id = k.owner_id WHERE k.tenant_id = %s AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now()) ORDER BY k.created_at, k.id", [tenant_id])).fetchall()


async def revoke_key(conn: Conn, tenant_id: str, *, key_id: UUID) -> bool:
    """Revoke a live key of the tenant; False when it has none by that id."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND tenant_id = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())", [key_id, tenant_id])
    return cur.rowcount == 1


async def expire_key(conn: Conn, tenant_id: str, *, key_id: UUID, overlap_s: int) -> DictRow | None:
    """Let a live key of the tenant work `overlap_s` more (never longer than it already would);
    its row, or None when the tenant has no live key by that id."""
    return await (await conn.execute(
        f"UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, 'infinity'), now() + make_interval(secs => %s))"
        f" WHERE id = %s AND tenant_id = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
        f" RETURNING {KEY_COLUMNS}", [overlap_s, key_id, tenant_id])).fetchone()


async def set_caps(conn: Conn, tenant_id: str, *, key_id: UUID, caps: KeySpendCaps) -> DictRow | None:
    """Set a live key's spend caps (None lifts one); the key's row, or None when the tenant has
    no live key by that id. Jobs submitted from now on carry the new caps."""
    return await (await conn.execute(
        f"UPDATE api_keys SET daily_cap_credits = %s, monthly_cap_credits = %s WHERE id = %s AND tenant_id = %s"
        f" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) RETURNING {KEY_COLUMNS}",
        [caps.daily, caps.monthly, key_id, tenant_id])).fetchone()


async def key_hash_is_live(conn: Conn, tenant_id: str, *, key_hash: str) -> bool:
    row = await (await conn.execute(
        "SELECT 1 FROM api_keys WHERE key_hash = %s AND tenant_id = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())", [key_hash, tenant_id])).fetchone()
    return row is not None


# ---- tenants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """A tenant as it is created: its id, its name (its id when None), and its plan (the
    table's default, free, when None)."""

    id: str
    name: str | None = None
    plan: str | None = None


async def insert_tenant(conn: Conn, tenant: Tenant) -> bool:
    """Create the tenant; False when it exists already (it is left as it is)."""
    row = await (await conn.execute(
        "INSERT INTO tenants (id, name, plan) VALUES (%s, %s, coalesce(%s, 'free'))"
        " ON CONFLICT (id) DO NOTHING RETURNING id", [tenant.id, tenant.name or tenant.id, tenant.plan])).fetchone()
    return row is not None


async def set_plan(conn: Conn, tenant_id: str, *, plan: str) -> str | None:
    """Move the tenant to `plan`; the plan it was on, or None when there is no such tenant."""
    row = await (await conn.execute("SELECT plan FROM tenants WHERE id = %s FOR UPDATE", [tenant_id])).fetchone()
    if row is not None:
        await conn.execute("UPDATE tenants SET plan = %s WHERE id = %s", [plan, tenant_id])
    return row["plan"] if row else None


async def tenant_plan(conn: Conn, tenant_id: str) -> str | None:
    """The tenant's plan's name; None when there is no such tenant."""
    row = await (await conn.execute("SELECT plan FROM tenants WHERE id = %s", [tenant_id])).fetchone()
    return row["plan"] if row else None


async def lock_tenant_plan(conn: Conn, tenant_id: str) -> str | None:
    """The tenant's plan's name, its row locked until the transaction ends; None when there is no such tenant."""
    row = await (await conn.execute("SELECT plan FROM tenants WHERE id = %s FOR UPDATE", [tenant_id])).fetchone()
    return row["plan"] if row else None


# ---- prompt screening --------------------------------------------------------------------


async def read_screening(conn: Conn, tenant_id: str) -> DictRow | None:
    """The tenant's own screening rules and policy, as stored; None when it has none."""
    return await (await conn.execute("SELECT rules, policy FROM prompt_screening WHERE tenant_id = %s",
                                     [tenant_id])).fetchone()


async def write_screening(conn: Conn, tenant_id: str, *, rules: list[dict[str, Any]], policy: str | None) -> None:
    await conn.execute(
        "INSERT INTO prompt_screening (tenant_id, rules, policy) VALUES (%s, %s, %s) ON CONFLICT (tenant_id)"
        " DO UPDATE SET rules = EXCLUDED.rules, policy = EXCLUDED.policy, updated_at = now()",
        [tenant_id, Jsonb(rules), policy])


# ---- the counters of a plan's limits -----------------------------------------------------


# The final states written out, as the open jobs' index names them (migration 0007), so the
# planner reads that index: compared with an array parameter, it read every job of the tenant.
COUNT_USAGE = ("SELECT (SELECT count(*) FROM jobs WHERE tenant_id = %(tenant)s AND state NOT IN ("
               + ", ".join(f"'{state}'" for state in FINAL_STATES) + ")) AS active,"
               " coalesce((SELECT images FROM daily_images WHERE tenant_id = %(tenant)s"
               " AND day = (%(day)s::timestamptz AT TIME ZONE 'UTC')::date), 0) AS images_today")


async def count_usage(conn: Conn, tenant_id: str, *, day_start: datetime) -> tuple[int, int]:
    """The tenant's jobs not yet final (the open jobs' index), and the images asked for on
    `day_start`'s day (UTC) by jobs that were not rejected (one row a day, kept by a trigger
    on jobs: migration 0033): one query, whatever the jobs the tenant placed that day."""
    row = await (await conn.execute(COUNT_USAGE, {"day": day_start, "tenant": tenant_id})).fetchone()
    assert row is not None, "an aggregate gives one row"
    return row["active"], row["images_today"]
