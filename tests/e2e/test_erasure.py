"""Deleting a job on the running services: its images leave both buckets, its prompt leaves
every service's tables (elsewhere than ingest's read model it was only ever sealed), the
billing stays, the job answers 410, and the erasure is in the audit trail."""

import asyncio
import uuid

import httpx
import psycopg

from genline_stack.fleet import SERVICES
from services.common.storage import ObjectStore, candidate_prefix
from tests.e2e.conftest import LEDGER_ADMIN_TOKEN
from tests.polling import until


def tables_holding(database_url: str, schemas: list[str], text: str) -> list[str]:
    """`schema.table` of every table with a row in which `text` appears, in any column (bytea
    read as escaped text, so an outbox body is searched too)."""
    found = []
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = ANY(%s) AND t.table_type = 'BASE TABLE'", [schemas]).fetchall()
        by_table: dict[tuple[str, str], list[str]] = {}
        for schema, table, column, data_type in columns:
            as_text = f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f"\"{column}\"::text"
            by_table.setdefault((schema, table), []).append(f"{as_text} LIKE %(pattern)s")
        for (schema, table), tests in sorted(by_table.items()):
            hit = conn.execute(f'SELECT 1 FROM "{schema}"."{table}" WHERE {" OR ".join(tests)} LIMIT 1',
                               {"pattern": f"%{text}%"}).fetchone()
            if hit:
                found.append(f"{schema}.{table}")
    return found


def webhook_messages(database_url: str, schema: str, job_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f'SELECT count(*) FROM "{schema}".webhook_messages WHERE job_id = %s', [job_id]).fetchone()[0]


def keys_under(store: ObjectStore, bucket: str, prefix: str) -> list[str]:
    return [obj.key for obj in asyncio.run(store.list_objects(bucket, prefix))]


def test_deleting_a_job_erases_its_images_and_prompt_everywhere_and_keeps_its_billing(
        platform, tenant_factory, endpoints, object_store):
    tenant = tenant_factory()
    marker = f"erasure-marker-{uuid.uuid4().hex}"
    # A webhook nobody answers: delivery keeps the message (the job as shown, prompt included).
    job_id = tenant.submit(prompt=f"a lighthouse at dusk {marker}", images=2, candidates=3, seed=5,
                           webhook_url="http://127.0.0.1:9/hooks")
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded"
    schemas = [platform.schema(name) for name in SERVICES]
    public_folder = job["outputs"][0]["key"].rsplit("/", 1)[0] + "/"
    candidates = candidate_prefix(tenant.id, job_id)
    before = tenant.balance()
    # What the erasure must remove is there to begin with, so the checks below can fail.
    assert len(keys_under(object_store, object_store.public_bucket, public_folder)) == 4  # 2 images, 2 thumbnails
    assert len(keys_under(object_store, object_store.internal_bucket, candidates)) == 1  # the attempt's candidates
    until(lambda: webhook_messages(endpoints.database_url, platform.schema("delivery"), job_id), 60,
          "the webhook was never queued", pause_s=0.5)
    # Sealed everywhere else (events, outboxes, the router's spec, the queued webhook): only
    # ingest's read model, which answers the tenant, holds the prompt in clear.
    assert tables_holding(endpoints.database_url, schemas, marker) == [f"{platform.schema('ingest')}.jobs"]

    erased = tenant.http.delete(f"/v1/jobs/{job_id}")

    assert erased.status_code == 202, erased.text
    assert erased.json() == {"id": job_id, "state": "erasing"}
    gone = tenant.http.get(f"/v1/jobs/{job_id}")
    assert gone.status_code == 410 and gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["type"] == "/problems/job-erased"
    assert tenant.http.delete(f"/v1/jobs/{job_id}").status_code == 410
    assert job_id not in {j["id"] for j in tenant.http.get("/v1/jobs").json()["data"]}
    until(lambda: not keys_under(object_store, object_store.public_bucket, public_folder)
          and not keys_under(object_store, object_store.internal_bucket, candidates), 60, "objects remain", pause_s=0.5)
    until(lambda: not tables_holding(endpoints.database_url, schemas, marker), 60,
          lambda: f"the prompt is still in {tables_holding(endpoints.database_url, schemas, marker)}", pause_s=0.5)
    assert httpx.get(job["outputs"][0]["url"], timeout=10).status_code in (403, 404)
    assert tenant.balance() == before
    with psycopg.connect(endpoints.database_url) as conn:
        transfer = conn.execute(f'SELECT state, charged FROM "{platform.schema("ledger")}".transfers'
                                " WHERE job_id = %s", [job_id]).fetchone()
    assert transfer == ("posted", job["billing"]["charged"])

    def erasure_in_trail() -> list[dict]:
        response = httpx.get(f"{platform.url('ledger')}/admin/v1/audit", params={"tenant_id": tenant.id},
                             headers={"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}, timeout=10)
        assert response.status_code == 200, response.text
        return [e for e in response.json()["entries"] if e["action"] == "job.erase"]

    entries = until(erasure_in_trail, 60, "no job.erase in the audit trail", pause_s=0.5)
    assert [(e["service"], e["target"]) for e in entries] == [("ingest", f"job:{job_id}")]
    # On the name of the key that asked (the tenant's own key, which no member owns), from its address.
    assert entries[0]["actor"].startswith("key:") and entries[0]["details"]["origin"] == "127.0.0.1"


def test_a_job_still_running_cannot_be_deleted_and_another_tenant_s_job_is_unknown(tenant_factory):
    owner, stranger = tenant_factory(), tenant_factory()
    job_id = owner.submit(images=1, candidates=2)

    refused = owner.http.delete(f"/v1/jobs/{job_id}")  # milliseconds after submission: not final
    foreign = stranger.http.delete(f"/v1/jobs/{job_id}")

    assert refused.status_code == 409 and refused.json()["type"] == "/problems/job-not-final"
    assert foreign.status_code == 404 and foreign.json()["type"] == "/problems/job-not-found"
    assert owner.wait_settled([job_id])[job_id]["state"] == "succeeded"  # and the job runs on untouched
