"""Per-tenant retention on the running services: an operator sets it (audited), delivery's
sweeper deletes outputs and delivered candidates past it, and keeps rejected candidates
the audit period. An attempt's candidates are one object: past the retention its delivered
candidate is blanked in it (ingest then answers 410 for it), and the object goes at the end
of the audit period."""

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import psycopg

from services.common.db import open_pool
from services.common.storage import ObjectStore, candidate_prefix
from services.delivery.retention import RetentionSweeper
from services.delivery.settings import DeliverySettings
from tests.e2e.conftest import LEDGER_ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}


def keys_under(store: ObjectStore, bucket: str, prefix: str) -> set[str]:
    return {obj.key for obj in asyncio.run(store.list_objects(bucket, prefix))}


def sweep(endpoints, schema: str, now: datetime) -> int:
    settings = endpoints.settings(DeliverySettings, environment="test", schema_name=schema)

    async def once() -> int:
        pool = open_pool(settings.database_url.get_secret_value(), schema, size=2)
        await pool.open(wait=True)
        try:
            return await RetentionSweeper(SimpleNamespace(pool=pool, name=schema), ObjectStore(settings),
                                          settings=settings).sweep_once(now)
        finally:
            await pool.close()

    return asyncio.run(once())


def test_outputs_and_candidates_are_deleted_past_the_tenant_s_retention_and_rejected_ones_kept_for_audit(
        platform, tenant_factory, endpoints, object_store):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=4, seed=9)
    job = tenant.wait_settled([job_id])[job_id]
    public, internal = f"{tenant.id}/", candidate_prefix(tenant.id, job_id)
    chosen = job["selected"][0]
    rejected = [s["index"] for s in job["scores"] if s["index"] != chosen]
    attempts = {s["key"] for s in job["scores"]}
    assert len(keys_under(object_store, object_store.public_bucket, public)) == 2  # the image and its thumbnail
    assert keys_under(object_store, object_store.internal_bucket, internal) == attempts
    assert candidate_status(tenant, job_id, [chosen, *rejected]) == {200}

    response = httpx.put(f"{platform.url('ingest')}/admin/v1/tenants/{tenant.id}/retention",
                         json={"outputs_days": 1, "candidates_days": 2}, headers=ADMIN, timeout=10)

    assert response.status_code == 200, response.text
    delivery = platform.schema("delivery")
    deadline = time.monotonic() + 60
    with psycopg.connect(endpoints.database_url) as conn:
        while not conn.execute(f'SELECT 1 FROM "{delivery}".tenant_retention WHERE tenant_id = %s',
                               [tenant.id]).fetchone():
            assert time.monotonic() < deadline, "delivery never applied the retention"
            time.sleep(0.3)
    now = datetime.now(UTC)
    assert sweep(endpoints, delivery, now) == 0  # nothing is old yet

    assert sweep(endpoints, delivery, now + timedelta(days=1, hours=1)) == 2
    assert keys_under(object_store, object_store.public_bucket, public) == set()
    assert candidate_status(tenant, job_id, [chosen, *rejected]) == {200}

    # The delivered candidate is blanked in its attempt's object, once; the rejected ones stay.
    assert sweep(endpoints, delivery, now + timedelta(days=2, hours=1)) == 1
    assert sweep(endpoints, delivery, now + timedelta(days=2, hours=2)) == 0
    assert keys_under(object_store, object_store.internal_bucket, internal) == attempts
    assert candidate_status(tenant, job_id, [chosen]) == {410}
    assert candidate_status(tenant, job_id, rejected) == {200}

    # The audit period counts from when the object was first written, not from its blanking.
    audit_days = DeliverySettings.model_fields["rejected_audit_days"].default
    assert sweep(endpoints, delivery, now + timedelta(days=audit_days, hours=1)) == len(attempts)
    assert keys_under(object_store, object_store.internal_bucket, internal) == set()
    assert candidate_status(tenant, job_id, rejected) == {410}

    assert audited_retention(platform, tenant.id) == [("operator:admin", {"outputs_days": 1, "candidates_days": 2})]


def candidate_status(tenant, job_id: str, indices: list[int]) -> set[int]:
    """The statuses ingest answers for the job's candidates `indices` (a 200 checked against
    the candidate's digest)."""
    scores = {s["index"]: s for s in tenant.http.get(f"/v1/jobs/{job_id}").json()["scores"]}
    statuses = set()
    for index in indices:
        response = tenant.http.get(f"/v1/jobs/{job_id}/candidates/{index}/image")
        if response.status_code == 200:
            assert hashlib.sha256(response.content).hexdigest() == scores[index]["sha256"]
        statuses.add(response.status_code)
    return statuses


def audited_retention(platform, tenant_id: str, timeout_s: float = 30) -> list[tuple]:
    """The retention changes the audit trail shows for the tenant (they reach the ledger's
    trail through ingest's topic)."""
    deadline, entries = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline and not entries:
        trail = httpx.get(f"{platform.url('ledger')}/admin/v1/audit",
                          params={"tenant_id": tenant_id, "action": "retention.set"}, headers=ADMIN, timeout=10)
        assert trail.status_code == 200, trail.text
        entries = [(e["actor"], e["details"]) for e in trail.json()["entries"]]
        time.sleep(0.3)
    return entries


def test_retention_needs_a_known_tenant_and_sane_days(platform):
    unknown = httpx.put(f"{platform.url('ingest')}/admin/v1/tenants/nobody-here/retention",
                        json={"outputs_days": 3}, headers=ADMIN, timeout=10)
    zero = httpx.put(f"{platform.url('ingest')}/admin/v1/tenants/nobody-here/retention",
                     json={"outputs_days": 0}, headers=ADMIN, timeout=10)

    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/tenant-not-found"
    assert zero.status_code == 422

