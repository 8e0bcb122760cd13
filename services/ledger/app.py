"""The ledger service: prepaid credits, reserved on submission and charged on delivery."""

from services.common.runtime import ServiceRuntime, ops_app
from services.ledger import handlers
from services.ledger.settings import LedgerSettings


def build(settings: LedgerSettings):
    runtime = ServiceRuntime("ledger", settings, "services.ledger")
    handlers.register(runtime.consumer, settings)
    runtime.consume(["ingest", "router", "scorer", "delivery"])
    return runtime, ops_app(runtime)


async def grant(settings: LedgerSettings, tenant_id: str, amount: int, reason: str) -> int:
    """Grant credits through the ledger's own code and outbox (used by seeding and the CLI)."""
    runtime = ServiceRuntime("ledger", settings, "services.ledger")
    await runtime.start()
    try:
        async with runtime.pool.connection() as conn, conn.transaction():
            granted = await handlers.grant_credits(conn, tenant_id, amount, reason)
            await runtime.emit(conn, granted)
        await runtime.relay.relay_batch()
    finally:
        await runtime.stop()
    return granted.available_after
