"""Prompts sealed in events, on the running services: a job's prompt travels sealed with its
own data key; erasing the job destroys the key, after which the topics, every outbox (the
ledger's is its journal, kept for ever) and every event read raw hold the prompt nowhere in
clear, the job's events still read (its prompt as erased), and `genline replay ledger`,
`replay jobs` and `replay audit` still find no difference. The keys' internal API answers
only the services that open sealed content, proven by their identity."""

import asyncio
import base64
import uuid

import httpx
import psycopg
import pytest

from genline_stack.fleet import SERVICES
from services.common.bus.replay import decoded_envelopes, read_topic_to_end
from services.common.contracts import PUBLISHERS, JobSubmitted, all_topics
from services.common.sealing import ERASED, BrokenSeal, JobField, open_sealed
from services.common.settings import AuditorSettings
from services.ingest.jobs.replay import JobReplay, replay_jobs
from services.ingest.key_encryption import keyring_of
from services.ingest.settings import IngestSettings
from services.ledger.audit_replay import AuditReplay, replay_audit
from services.ledger.replay import LedgerReplay, replay_ledger
from services.ledger.settings import LedgerSettings
from tests.e2e.conftest import wait_caught_up, wait_for_audit
from tests.identity import headers_as


def raw_records(bootstrap: str) -> list:
    """Every record of every topic and dead-letter topic, as the broker holds it."""
    async def read_all() -> list:
        return [r for topic in all_topics() for r in await read_topic_to_end(bootstrap, topic)]

    return asyncio.run(read_all())


def in_clear(records: list, marker: str) -> list[str]:
    needle = marker.encode()
    return [f"{r.topic}/{r.partition}/{r.offset}" for r in records
            if needle in (r.value or b"") or any(needle in (value or b"") for _, value in (r.headers or ()))]


def outboxes_holding(database_url: str, schemas: list[str], marker: str) -> list[str]:
    """The outboxes (journals) with a row whose body or headers, read raw, hold `marker`."""
    with psycopg.connect(database_url) as conn:
        return [schema for schema in schemas if conn.execute(
            f'SELECT 1 FROM "{schema}".outbox WHERE position(%s IN body) > 0 OR headers::text LIKE %s LIMIT 1',
            [marker.encode(), f"%{marker}%"]).fetchone()]


def stored_key(database_url: str, job_id: str) -> tuple[str | None, bytes] | None:
    """The job's row in `data_keys` as a copy of the database holds it: (kek_id, wrapped key)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT kek_id, key FROM ingest.data_keys WHERE job_id = %s", [job_id]).fetchone()
    return (row[0], bytes(row[1])) if row else None


def data_key(endpoints, job_id: str) -> bytes | None:
    """The job's data key, opened with ingest's key-encryption key."""
    stored = stored_key(endpoints.database_url, job_id)
    keyring = keyring_of(endpoints.settings(IngestSettings))
    return keyring.unwrap(stored[0], stored[1], job_id=uuid.UUID(job_id)) if stored else None


def submitted_of(records: list, job_id: str) -> list[JobSubmitted]:
    envelopes, _ = decoded_envelopes([r for r in records if r.key == job_id.encode()])
    return [e.event for e in envelopes if isinstance(e.event, JobSubmitted)]


def test_an_erased_job_s_prompt_is_nowhere_in_clear_and_the_replays_still_agree(
        platform, tenant_factory, endpoints):
    tenant = tenant_factory()
    marker = f"sealed-marker-{uuid.uuid4().hex}"
    job_id = tenant.submit(prompt=f"a harbour at night {marker}", images=1, candidates=2, seed=3)
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded" and job["prompt"].endswith(marker)  # the tenant sees its prompt
    wait_caught_up(platform)
    schemas = [platform.schema(name) for name in SERVICES]
    records = raw_records(endpoints.kafka_bootstrap)
    # Sealed from the start: on no topic nor in any outbox in clear, though the job's events
    # carry it (the key opens the one ingest published).
    assert not in_clear(records, marker) and not outboxes_holding(endpoints.database_url, schemas, marker)
    [submitted] = submitted_of(records, job_id)
    key = data_key(endpoints, job_id)
    assert key is not None and open_sealed(key, JobField(job_id, "prompt"), sealed=submitted.job.prompt).endswith(marker)

    assert tenant.http.delete(f"/v1/jobs/{job_id}").status_code == 202
    wait_for_audit(platform, tenant.id, "job.erase")
    wait_caught_up(platform)

    assert data_key(endpoints, job_id) is None  # the key row is gone
    records = raw_records(endpoints.kafka_bootstrap)
    assert not in_clear(records, marker)
    assert not outboxes_holding(endpoints.database_url, schemas, marker)
    ours = [r for r in records if r.key == job_id.encode()]
    envelopes, malformed = decoded_envelopes(ours)
    assert malformed == 0 and len(envelopes) >= len(PUBLISHERS)  # every service's events of the job still read
    [submitted] = submitted_of(records, job_id)
    assert open_sealed(data_key(endpoints, job_id), JobField(job_id, "prompt"), sealed=submitted.job.prompt) == ERASED

    lines: list[str] = []
    assert replay_ledger(endpoints.settings(LedgerSettings), LedgerReplay("ledger"), out=lines.append) == 0, lines
    assert replay_jobs(endpoints.operator_settings(IngestSettings), JobReplay(tenant=tenant.id, settle_s=30),
                       out=lines.append) == 0, lines
    assert replay_audit(endpoints.operator_settings(LedgerSettings), AuditReplay("ledger", settle_s=30), out=lines.append) == 0, lines
    assert lines.count("no differences") == 3, lines


def test_a_copy_of_the_database_alone_opens_no_sealed_prompt(platform, tenant_factory, endpoints):
    """What a leaked backup holds: every row of `data_keys`, wrapped under a KEK that is not
    in the database, and the job's sealed prompt; no stored key opens it as it is."""
    tenant = tenant_factory()
    marker = f"leaked-backup-{uuid.uuid4().hex}"
    job_id = tenant.submit(prompt=f"a lighthouse {marker}", images=1, candidates=2)
    tenant.wait_settled([job_id])
    wait_caught_up(platform)
    [submitted] = submitted_of(raw_records(endpoints.kafka_bootstrap), job_id)
    with psycopg.connect(endpoints.database_url) as conn:
        backup = [(kek_id, bytes(key)) for kek_id, key in conn.execute("SELECT kek_id, key FROM ingest.data_keys")]

    kek_id, wrapped = stored_key(endpoints.database_url, job_id)
    assert kek_id is not None and kek_id.startswith("local:") and len(wrapped) == 12 + 32 + 16
    assert all(kek is not None for kek, _ in backup)  # nothing stored in clear
    for _, key in backup:  # no stored value, nor any 32 bytes of one, opens the prompt
        for candidate in [key] + [key[i:i + 32] for i in range(len(key) - 31)]:
            with pytest.raises(BrokenSeal):
                open_sealed(candidate, JobField(job_id, "prompt"), sealed=submitted.job.prompt)
    assert open_sealed(data_key(endpoints, job_id), JobField(job_id, "prompt"), sealed=submitted.job.prompt).endswith(marker)


def test_the_data_key_api_answers_only_the_services_that_open_sealed_content(platform, tenant_factory, endpoints):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2)
    url = f"{platform.admin_url('ingest')}/internal/v1/jobs/{job_id}/data-key"
    refused = [httpx.get(url, headers=headers, timeout=10) for headers in
               ({}, {"Authorization": "Bearer not-a-token"}, headers_as(endpoints, "ledger", "ingest"),
                headers_as(endpoints, "router", "delivery"))]
    answered = httpx.get(url, headers=headers_as(endpoints, "router", "ingest"), timeout=10)
    unknown = httpx.get(url.replace(job_id, str(uuid.uuid4())), headers=headers_as(endpoints, "delivery", "ingest"),
                        timeout=10)
    assert [r.status_code for r in refused] == [401, 401, 403, 401]
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    assert answered.status_code == 200 and base64.b64decode(answered.json()["key"]) == data_key(endpoints, job_id)
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/data-key-not-found"
    tenant.wait_settled([job_id])


def test_the_read_model_shows_the_auditor_no_prompt_and_the_tenant_its_own(platform, tenant_factory, endpoints):
    """Ingest's read model keeps a job's prompt sealed: the auditor's role, which reads every
    schema, finds it nowhere in clear there, while the tenant reads it on its job; a replay
    without the key-encryption key still finds no difference."""
    tenant = tenant_factory()
    marker = f"read-model-{uuid.uuid4().hex}"
    job_id = tenant.submit(prompt=f"a quiet lane {marker}", images=1, candidates=2)
    assert tenant.wait_settled([job_id])[job_id]["prompt"].endswith(marker)
    assert tenant.job(job_id)["prompt"] == f"a quiet lane {marker}"

    auditor = endpoints.person_settings("auditor", AuditorSettings)  # its own role, no key-encryption key
    with psycopg.connect(auditor.database_url.get_secret_value()) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "genline_auditor"
        [(view,)] = conn.execute("SELECT view::text FROM ingest.jobs WHERE id = %s", [job_id]).fetchall()
        holding = conn.execute("SELECT count(*) FROM ingest.jobs WHERE view::text LIKE %s",
                               [f"%{marker}%"]).fetchone()[0]
    assert marker not in view and holding == 0
    assert '"ciphertext"' in view  # sealed, as the events carry it

    lines: list[str] = []
    assert replay_jobs(auditor, JobReplay(tenant=tenant.id, settle_s=30), out=lines.append) == 0, lines
