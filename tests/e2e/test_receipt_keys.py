"""One receipt signing key per deployment: every ingest replica signs with the key the
deployment configures (the embedded stack makes one), so the keys document is the same
whichever replica answers, and a receipt signed by either verifies against it."""

import httpx

from genline_client import verify_chain
from tests.e2e.test_receipts import chain, run_jobs


def keys_document(url: str) -> dict:
    response = httpx.get(f"{url}/.well-known/genline-keys.json", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_replicas_answer_one_keys_document_and_each_ones_receipts_verify_against_it(tenant_factory, two_ingests):
    tenant = tenant_factory()
    run_jobs(tenant, 4)  # both replicas consume the job events, so either may sign a receipt
    documents = [keys_document(url) for url in two_ingests]
    assert documents[0] == documents[1]
    [active] = [key["kid"] for key in documents[0]["keys"] if key["status"] == "active"]
    receipts = chain(tenant)
    assert len(receipts) == 4 and {r["signature"]["kid"] for r in receipts} == {active}
    for document in documents:
        assert [body["sequence"] for body in verify_chain(receipts, document)] == [1, 2, 3, 4]
