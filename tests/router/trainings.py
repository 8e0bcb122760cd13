"""What the trainings' tests drive a `TrainingSupervisor` with: the router's tables in a schema of
their own on the real PostgreSQL, the real S3, a subject sealed there with its key served over
HTTP, trainers built from providers.yaml entries over the simulators (identity_apis.py), and
the events the supervisor announces, kept in order (the outbox is the service tests' matter)."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from services.common.contracts import Event, SubjectRef
from services.common.data_keys import DataKeys
from services.common.db import Pool
from services.router import store as router_store
from services.router.clock import Clock, LoopClock
from services.router.domain import AdmittedJob
from services.router.providers.base import ProviderContext
from services.router.providers.registry import parse_registry
from services.router.providers.trainers import build_trainer
from services.router.providers.webhooks import WebhookInbox
from services.router.subjects import store
from services.router.subjects.files import SubjectFiles
from services.router.subjects.training import TrainingSettings, TrainingSupervisor
from tests.router.market import SECRET
from tests.router.service import job_spec


class Announced:
    """The runtime a supervisor announces through: its pool, and the events it emitted."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.events: list[Event] = []
        self.relay = self

    async def emit(self, conn: Any, event: Event) -> None:
        self.events.append(event)

    def notify(self) -> None:
        pass

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@dataclass
class Bench:
    pool: Pool
    files: SubjectFiles
    client: httpx.AsyncClient
    inbox: WebhookInbox = field(default_factory=WebhookInbox)

    def supervisor(self, entries: dict[str, dict], **options: Any) -> tuple[TrainingSupervisor, Announced]:
        """A supervisor of the trainers these providers.yaml entries declare, announcing to a fresh record."""
        registry = parse_registry({"providers": entries})
        context = ProviderContext(client=self.client, webhooks=self.inbox)
        trainers = {c.name: build_trainer(c, context, secret=SECRET) for c in registry.trainers()}
        announced = Announced(self.pool)
        clock: Clock = options.pop("clock", LoopClock())
        owner = options.pop("owner", f"router-{uuid.uuid4().hex[:6]}")
        settings = TrainingSettings(**({"lease_s": 30.0} | options))
        return TrainingSupervisor(runtime=announced, trainers=trainers, files=self.files, owner=owner, settings=settings, clock=clock,  # type: ignore[arg-type]
                                  webhooks=self.inbox), announced

    async def identity(self, provider: str, subject: SubjectRef, base: str = "flux-dev") -> store.IdentityRow:
        """An order of the subject admitted, and the identity it trains written down, as planning writes them."""
        spec = job_spec(subject=subject, tenant_id="t-subjects")
        row = store.IdentityRow(identity_id=uuid.uuid4(), tenant_id=spec.tenant_id, subject_id=subject.subject_id,
                                photo_set_sha256=subject.photo_set_sha256, provider=provider, model="trainer",
                                base=base, trigger_word=subject.trigger_word, job_id=spec.job_id,
                                expected_cost_micro_usd=2_000_000)
        async with self.pool.connection() as conn:
            await router_store.admit_job(conn, AdmittedJob(spec=spec, budget_micro_usd=0))
            assert await store.new_identity(conn, row)
        return row

    async def claimed(self, supervisor: TrainingSupervisor, row: store.IdentityRow) -> store.IdentityRow:
        """The row as `supervisor` claims it to drive it."""
        async with self.pool.connection() as conn:
            rows = await store.claim_identities(conn, router_store.Lease(supervisor.owner, supervisor.settings.lease_s),
                                                limit=100)
        [mine] = [r for r in rows if r.identity_id == row.identity_id]
        return mine

    async def row(self, identity_id: uuid.UUID) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            return await (await conn.execute("SELECT * FROM identities WHERE identity_id = %s",
                                              [identity_id])).fetchone()


def data_keys_at(endpoints: Any, url: str) -> DataKeys:
    from services.router.settings import RouterSettings
    return DataKeys(endpoints.settings(RouterSettings, environment="test", data_key_url=url), "router")


@asynccontextmanager
async def serving_here(app: Starlette) -> AsyncIterator[str]:
    """`app` on a free port of 127.0.0.1 in this event loop (a callback then wakes what waits here)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
