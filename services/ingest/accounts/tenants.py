"""Tenants: the tenants table (who may call the API, each on a plan), and the operations on
it that run outside the service (the CLI, the stack's seeding): create a tenant with a key,
move it to another plan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.db import Conn, migrate
from services.common.runtime import ServiceRuntime
from services.ingest.accounts import keys, store
from services.ingest.accounts.store import Tenant as Tenant
from services.ingest.accounts.store import insert_tenant as insert_tenant
from services.ingest.accounts.store import set_plan as set_plan
from services.ingest.plans import load_plans
from services.ingest.session_auth import hash_api_key
from services.ingest.settings import IngestSettings

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


async def key_is_live(conn: Conn, tenant_id: str, *, key: str) -> bool:
    return await store.key_hash_is_live(conn, tenant_id, key_hash=hash_api_key(key))


def check_plan(settings: IngestSettings, plan: str | None) -> None:
    offered = load_plans(settings.plans_path).plans
    if plan is not None and plan not in offered:
        raise ValueError(f"unknown plan {plan!r}; offered: {', '.join(offered)}")


async def set_tenant_plan(settings: IngestSettings, tenant_id: str, *, plan: str) -> str:
    """Move a tenant to another plan (the CLI's set-plan); the plan it was on."""
    check_plan(settings, plan)
    async with tenants_transaction(settings) as conn:
        previous = await set_plan(conn, tenant_id, plan=plan)
    if previous is None:
        raise ValueError(f"no tenant {tenant_id!r}")
    return previous


@asynccontextmanager
async def tenants_transaction(settings: IngestSettings) -> AsyncIterator[Conn]:
    """One transaction on ingest's tables, for commands run outside the service (CLI, seeding)."""
    runtime = ServiceRuntime("ingest", settings, migrations_package="services.ingest")
    await migrate(runtime.database_url, runtime.name, packages=runtime.migrations)
    await runtime.pool.open(wait=True)
    try:
        async with runtime.pool.connection() as conn, conn.transaction():
            yield conn
    finally:
        await runtime.pool.close()


async def create_tenant(settings: IngestSettings, tenant: Tenant) -> str:
    """Create a tenant (or reuse it) and return a new API key; only its hash is stored."""
    key, _ = await ensure_tenant(settings, tenant)
    return key


async def ensure_tenant(settings: IngestSettings, tenant: Tenant, *, known_key: str | None = None) -> tuple[str, bool]:
    """The tenant's API key, `known_key` while it is still a valid key of this tenant, else a
    new one; and whether the tenant was created now (on its plan, the default one when None)."""
    check_plan(settings, tenant.plan)
    async with tenants_transaction(settings) as conn:
        created = await insert_tenant(conn, tenant)
        if known_key and await key_is_live(conn, tenant.id, key=known_key):
            return known_key, created
        key = (await keys.issue_key(conn, tenant.id, grant=keys.KeyGrant(name=keys.OPERATOR_KEY_NAME))).secret
    return key, created
