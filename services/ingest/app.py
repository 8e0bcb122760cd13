"""The ingest service: Genline's public HTTP API and the job read model behind it."""

import grpc
from fastapi import FastAPI

from services.common import telemetry, tracing
from services.common.db import migrate
from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore
from services.common import problems
from services.ingest import handlers
from services.ingest.domain import hash_api_key, new_api_key
from services.ingest.routes import account, admin, jobs
from services.ingest.settings import IngestSettings


def build(settings: IngestSettings):
    runtime = ServiceRuntime("ingest", settings, "services.ingest")
    store = ObjectStore(settings)
    handlers.register(runtime.consumer)
    runtime.consume(["ledger", "router", "scorer", "delivery"])
    app = FastAPI(title="Genline", version="1", lifespan=runtime.lifespan)
    app.state.runtime, app.state.settings, app.state.store = runtime, settings, store
    connect_ledger(runtime, app, settings)
    problems.install(app)
    telemetry.instrument_http(app, "ingest")
    app.include_router(jobs.router)
    app.include_router(account.router)
    app.include_router(admin.router)
    app.router.routes.extend(telemetry.ops_routes(runtime.readiness_checks))
    return runtime, app


def connect_ledger(runtime: ServiceRuntime, app: FastAPI, settings: IngestSettings) -> None:
    """One gRPC channel to the ledger for the life of the service."""

    async def open_channel() -> None:
        app.state.ledger_channel = grpc.aio.insecure_channel(settings.ledger_grpc_target,
                                                             interceptors=tracing.grpc_client_interceptors())
        app.state.ledger_stub = account.rpc.LedgerServiceStub(app.state.ledger_channel)

    async def close_channel() -> None:
        await app.state.ledger_channel.close()

    runtime.startup_hooks.append(open_channel)
    runtime.shutdown_hooks.append(close_channel)


async def create_tenant(settings: IngestSettings, tenant_id: str, name: str | None = None) -> str:
    """Create a tenant (or reuse it) and return a new API key; only its hash is stored."""
    runtime = ServiceRuntime("ingest", settings, "services.ingest")
    key = new_api_key()
    await migrate(runtime.database_url, runtime.name, runtime.migrations)
    await runtime.pool.open(wait=True)
    try:
        async with runtime.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                               [tenant_id, name or tenant_id])
            await conn.execute("INSERT INTO api_keys (key_hash, tenant_id, prefix) VALUES (%s, %s, %s)",
                               [hash_api_key(key), tenant_id, key[:8]])
    finally:
        await runtime.pool.close()
    return key
