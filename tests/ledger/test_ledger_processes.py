"""The ledger as separate processes on the real broker: concurrent reservations across
consumers, and an event committed but not yet published when the process died."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from genline_stack.ports import free_port, stop_process
from services.common.bus.envelope import envelop
from services.common.contracts import CreditsReserved, JobSpec, JobSubmitted, topic_of
from services.common.db import migrate
from services.ledger.records import CreditGrant
from services.ledger.service import LedgerApp, grant
from tests.kafka import publish_envelopes, read_topic
from tests.metrics import metric_value

pytestmark = pytest.mark.processes  # starts the platform's processes or the stack's servers again


def start_ledger_process(settings, log_path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = os.environ | {
        "GENLINE_DATABASE_URL": settings.database_url.get_secret_value(),
        "GENLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "GENLINE_TOPIC_NAMESPACE": settings.topic_namespace, "GENLINE_SCHEMA_NAME": settings.schema_name,
        "GENLINE_HTTP_PORT": str(port), "GENLINE_GRPC_PORT": str(free_port()),
        "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000", "GENLINE_CONSUMER_BATCH_SIZE": "16",
        "GENLINE_KAFKA_IDEMPOTENT_PRODUCER": str(settings.kafka_idempotent_producer).lower(),
    }
    process = subprocess.Popen([sys.executable, "-m", "services.ledger"], env=env, stdout=open(log_path, "ab"),
                               stderr=subprocess.STDOUT, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    return process, port


def wait_ready(port: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"ledger on {port} not ready")


async def group_members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
        # raw DescribeGroups responses: groups are (error, group, state, protocol type, protocol, members)
        return sum(len(g[5]) for r in responses for g in r.groups if g[2] == "Stable")
    finally:
        await admin.close()


def wait_for_members(bootstrap: str, group: str, count: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if asyncio.run(group_members(bootstrap, group)) >= count:
            return
        time.sleep(1)
    raise TimeoutError(f"group {group} never had {count} stable members")


def submissions(tenant: str, count: int) -> list:
    now = datetime.now(UTC)
    events = []
    for _ in range(count):
        job_id = uuid.uuid4()
        spec = JobSpec(job_id=job_id, tenant_id=tenant, template="generic", prompt="p", images=1, candidates=2,
                       seed=1, submitted_at=now)
        events.append(envelop(JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec), "/test"))
    return events


def consumed_submissions(port: int) -> float:
    return metric_value(f"http://127.0.0.1:{port}", "genline_events_consumed_total",
                        type=JobSubmitted.event_type, outcome="applied")


def test_200_reservations_over_two_ledger_processes_admit_exactly_what_57_images_cost(isolated_settings, tmp_path):
    settings = isolated_settings
    asyncio.run(grant(settings, CreditGrant(tenant_id="hot", amount=57 * 10, source="admin", reason="test")))
    processes = [start_ledger_process(settings, tmp_path / f"ledger-{i}.log") for i in range(2)]
    try:
        for _, port in processes:
            wait_ready(port)
        wait_for_members(settings.kafka_bootstrap, f"{settings.topic_namespace}-{settings.schema_name}", 2)
        ingest_topic = topic_of("ingest", settings.topic_namespace)
        asyncio.run(publish_envelopes(settings.kafka_bootstrap, submissions("hot", 200), lambda _: ingest_topic))
        records = asyncio.run(read_topic(settings.kafka_bootstrap, topic_of("ledger", settings.topic_namespace),
                                         want=201, timeout_s=120))
        per_process = [consumed_submissions(port) for _, port in processes]
    finally:
        for process, _ in processes:
            stop_process(process)
    types = [dict(r.headers)["ce_type"] for r in records]
    assert types.count(CreditsReserved.event_type.encode()) == 57
    assert types.count(b"genline.credits.reservation_rejected.v1") == 143
    assert all(n > 0 for n in per_process), f"both consumers must have taken part: {per_process}"
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute(f'SELECT posted, pending FROM "{settings.schema_name}".accounts WHERE tenant_id = %s',
                           ["hot"]).fetchone()
    assert row == (570, 570)


async def test_an_event_committed_but_never_published_is_relayed_after_a_restart(isolated_settings):
    crashed = LedgerApp(isolated_settings)
    runtime = crashed.runtime
    await migrate(runtime.database_url, runtime.name, packages=runtime.migrations)
    await runtime.pool.open(wait=True)
    granted = await crashed.grant(CreditGrant(tenant_id="t-crash", amount=40, source="admin", reason="before the crash"))  # committed; the relay never ran
    async with runtime.pool.connection() as conn:
        unpublished = await (await conn.execute("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")).fetchone()
    await runtime.pool.close()  # the process dies before publishing
    assert unpublished["n"] == 1

    restarted = LedgerApp(isolated_settings)
    await restarted.runtime.start()
    try:
        records = await read_topic(isolated_settings.kafka_bootstrap,
                                   topic_of("ledger", isolated_settings.topic_namespace), want=1, timeout_s=30)
    finally:
        await restarted.runtime.stop()
    assert len(records) == 1
    assert dict(records[0].headers)["ce_type"] == b"genline.credits.granted.v1"
    assert granted.grant_id and str(granted.grant_id).encode() in records[0].value
