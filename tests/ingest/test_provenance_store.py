"""What POST /v1/verify reads on the real database: the job whose delivered output carries a
manifest label or a watermark id (through the index over the views' outputs), and the
request rate of callers without an account, per address (GCRA: a burst, then refusals)."""

import asyncio
import json
import uuid

import pytest

from services.ingest.accounts.tenants import Tenant, create_tenant, tenants_transaction
from services.ingest.jobs import store
from services.ingest.settings import IngestSettings
from services.ingest.store import callers


@pytest.fixture(scope="module")
def settings(endpoints) -> IngestSettings:
    return endpoints.settings(IngestSettings, environment="test", schema_name=f"verify_{uuid.uuid4().hex[:8]}")


def run_in_transaction(settings, work):
    async def go():
        async with tenants_transaction(settings) as conn:
            return await work(conn)
    return asyncio.run(go())


def test_a_job_is_found_by_its_outputs_manifest_label_or_watermark_id(settings):
    tenant_id, job_id = f"t-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    asyncio.run(create_tenant(settings, Tenant(tenant_id)))
    output = {"n": 2, "sha256": "ab" * 32, "manifest_label": f"urn:c2pa:{uuid.uuid4()}", "watermark_id": "0a1b2c3d4e5f"}
    other = {"n": 1, "sha256": "cd" * 32, "manifest_label": f"urn:c2pa:{uuid.uuid4()}", "watermark_id": "ffffffffffff"}

    async def write_and_find(conn):
        await conn.execute("INSERT INTO jobs (id, tenant_id, state, view, created_at, updated_at, template)"
                           " VALUES (%s, %s, 'succeeded', %s::jsonb, now(), now(), 'generic')",
                           [job_id, tenant_id, json.dumps({"outputs": [other, output]})])
        return (await store.job_with_output(conn, manifest_label=output["manifest_label"]),
                await store.job_with_output(conn, watermark_id=output["watermark_id"]),
                await store.job_with_output(conn, watermark_id="123456789abc"))

    by_label, by_mark, unknown = run_in_transaction(settings, write_and_find)
    assert by_label == (job_id, tenant_id, output) and by_mark == (job_id, tenant_id, output)
    assert unknown is None


def test_an_address_gets_a_burst_then_is_refused_and_another_address_is_not(settings):
    client = f"192.0.2.{uuid.uuid4().int % 250}"

    async def burst(conn):
        taken = [await callers.take_anonymous_request(conn, client, interval_s=1.0, tolerance_s=3.0) for _ in range(5)]
        return taken, await callers.take_anonymous_request(conn, client + "1", interval_s=1.0, tolerance_s=3.0)

    taken, elsewhere = run_in_transaction(settings, burst)
    assert [ahead is not None for ahead in taken] == [True, True, True, False, False]
    assert elsewhere is not None

    async def idle_an_hour_then_forget(conn):
        await conn.execute("UPDATE anonymous_rate_limits SET tat = now() - interval '2 hours' WHERE client = %s",
                           [client])
        await callers.forget_idle_clients(conn)
        return await (await conn.execute("SELECT client FROM anonymous_rate_limits WHERE client IN (%s, %s)",
                                         [client, client + "1"])).fetchall()

    assert [row["client"] for row in run_in_transaction(settings, idle_an_hour_then_forget)] == [client + "1"]
