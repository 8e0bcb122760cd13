"""The tenants table: who may call the API, each on a plan."""

import psycopg

from services.ingest.keys import hash_api_key

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


async def insert_tenant(conn: psycopg.AsyncConnection, tenant_id: str, name: str | None = None,
                        plan: str | None = None) -> bool:
    """Create the tenant, on `plan` (the table's default, free, when None); False when it
    exists already (it is left as it is)."""
    row = await (await conn.execute(
        "INSERT INTO tenants (id, name, plan) VALUES (%s, %s, coalesce(%s, 'free'))"
        " ON CONFLICT (id) DO NOTHING RETURNING id", [tenant_id, name or tenant_id, plan])).fetchone()
    return row is not None


async def set_plan(conn: psycopg.AsyncConnection, tenant_id: str, plan: str) -> str | None:
    """Move the tenant to `plan`; the plan it was on, or None when there is no such tenant."""
    row = await (await conn.execute("SELECT plan FROM tenants WHERE id = %s FOR UPDATE", [tenant_id])).fetchone()
    if row is not None:
        await conn.execute("UPDATE tenants SET plan = %s WHERE id = %s", [plan, tenant_id])
    return row["plan"] if row else None


async def key_is_live(conn: psycopg.AsyncConnection, tenant_id: str, key: str) -> bool:
    row = await (await conn.execute(
        "SELECT 1 FROM api_keys WHERE key_hash = %s AND tenant_id = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())", [hash_api_key(key), tenant_id])).fetchone()
    return row is not None
