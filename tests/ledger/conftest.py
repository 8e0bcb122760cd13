import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from genline_stack.embedded import create_topics
from genline_stack.ports import free_port
from services.common.contracts import all_topics
from services.common.runtime import listen
from services.ledger.app import build
from services.ledger.settings import LedgerSettings

ADMIN_TOKEN = "admin-test-token-3b7e"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def isolated_ledger_settings(endpoints, **overrides) -> LedgerSettings:
    """Ledger settings on topics and a schema of their own, so nothing else consumes or
    writes them and a replay sees exactly this ledger's history."""
    suffix = uuid.uuid4().hex[:8]
    namespace, schema = f"t{suffix}", f"ledger_{suffix}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    return endpoints.settings(LedgerSettings, **({"environment": "test", "topic_namespace": namespace,
                                                   "schema_name": schema} | overrides))


@pytest.fixture
def isolated_settings(endpoints) -> LedgerSettings:
    return isolated_ledger_settings(endpoints)


def served_ledger_settings(endpoints, **overrides) -> LedgerSettings:
    """Isolated settings for a ledger served on free ports, with its admin API on."""
    return isolated_ledger_settings(endpoints, **({"http_port": free_port(), "grpc_port": free_port(),
                                                   "admin_token": ADMIN_TOKEN} | overrides))


async def admin_grant(http: httpx.AsyncClient, tenant_id: str, credits: int, **terms) -> dict:
    response = await http.post("/admin/v1/grants", json={"tenant_id": tenant_id, "credits": credits} | terms,
                               headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


@asynccontextmanager
async def served_ledger(settings: LedgerSettings) -> AsyncIterator[str]:
    """The ledger service as it runs in production (HTTP app, consumer, outbox relay, gRPC
    and sweeper, started by its lifespan), served by uvicorn in this event loop; yields its
    base URL."""
    _, app = build(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve(sockets=listen("127.0.0.1", settings.http_ports())))
    while not server.started:
        if serving.done():  # startup failed: its exception says why
            await serving
            raise RuntimeError("the ledger stopped during startup")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.http_port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def ledger(endpoints):
    """A ledger on a schema of its own, without a broker (tests.ledger.test_reservations)."""
    from tests.ledger.test_reservations import open_scratch, scratch_ledger

    app = await open_scratch(scratch_ledger(endpoints))
    yield app
    await app.runtime.pool.close()


@pytest.fixture
async def replica(ledger):
    """A second ledger on the first one's schema, with its own connections, as a replica is."""
    from services.common.runtime import ServiceRuntime
    from services.ledger import handlers
    from services.ledger.app import LedgerApp

    settings = ledger.settings
    app = LedgerApp(settings, ServiceRuntime(ledger.runtime.name, settings, migrations_package="services.ledger"))
    app.runtime.consumer.on_batch(handlers.CONSUMES.handled, app.ledger.apply_events)
    await app.runtime.pool.open(wait=True)
    yield app
    await app.runtime.pool.close()
