"""Nothing slow under the tenant's lock: a submission wraps its job's data key (a KMS call in
production) before the transaction that holds the tenant's row FOR UPDATE, so one tenant's
submissions never queue behind KMS. The KMS stand-in below tries that row from another
connection while it is called. And nothing read again: the template catalogue a submission
checks against is the one the process loaded."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.common.templates import load_catalogue
from services.ingest.key_encryption import KMS, AwsKms
from tests.ingest.test_submission import ingest_client


def tenant_row_locked(database_url: str, schema: str) -> bool:
    """Whether another transaction holds a tenant's row (the schema has the one tenant): this
    one cannot lock it at once."""
    with psycopg.connect(database_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        try:
            conn.execute("SELECT 1 FROM tenants FOR UPDATE NOWAIT").fetchall()
        except psycopg.errors.LockNotAvailable:
            return True
        return False


@pytest.fixture
def kms_calls(endpoints, monkeypatch) -> Iterator[tuple[TestClient, list[bool]]]:
    """An ingest whose KEK is on KMS, and, for each KMS call, whether the tenant's row was
    locked during it."""
    locked_during_call: list[bool] = []
    client_of: dict[str, TestClient] = {}

    def wrap_watching_the_tenant(kms: AwsKms, key: bytes, job_id: uuid.UUID) -> tuple[str, bytes]:
        settings = client_of["client"].app_settings
        locked_during_call.append(tenant_row_locked(settings.database_url.get_secret_value(), settings.schema_name))
        return KMS + kms.key_id, key[::-1]  # the stand-in's "ciphertext"; this test never opens it

    monkeypatch.setattr(AwsKms, "wrap", wrap_watching_the_tenant)
    for client in ingest_client(endpoints, data_key_kms_key_id="stand-in-key"):
        client_of["client"] = client
        yield client, locked_during_call


def test_the_data_key_is_wrapped_while_the_tenants_row_is_free(kms_calls):
    client, locked_during_call = kms_calls
    loads = load_catalogue.cache_info().misses
    answers = [client.post("/v1/jobs", json={"prompt": "a red bicycle"}, headers={"Idempotency-Key": "same"})
               for _ in range(2)]  # the retry is answered with the first job, from the record
    assert [answer.status_code for answer in answers] == [202, 202], answers[0].text
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert locked_during_call == [False, False]
    assert load_catalogue.cache_info().misses == loads
