"""Receipts and usage through the Python client (sync and async) and the CLI, against the
five services as processes: a final job's receipt verifies with the published keys, a
changed one does not, the chain comes back whole across pages and verifies, an unknown job
has none, and usage shows the plan's limits as the API counts them."""

import asyncio
import json

import pytest

from genline_client import (
    AsyncGenline,
    Genline,
    NotFound,
    ReceiptVerificationError,
    Usage,
    verify_chain,
    verify_receipt,
)
from tests.e2e.conftest import make_tenant
from tests.e2e.test_jobs_cli import genline


@pytest.fixture(scope="module")
def receipted(platform, endpoints):
    """A tenant with three final jobs, and their ids."""
    tenant = make_tenant(endpoints, platform, 1_000)
    job_ids = [tenant.submit(images=1, candidates=2, seed=seed) for seed in (1, 2, 3)]
    tenant.wait_settled(job_ids)
    return tenant, job_ids


def test_a_final_jobs_receipt_verifies_and_the_chain_comes_back_whole_across_pages(receipted, platform):
    tenant, job_ids = receipted
    with Genline(tenant.api_key, platform.ingest_url) as client:
        keys = client.signing_keys()
        receipt = client.receipt(job_ids[0])
        chain = list(client.receipts(page_size=2))  # two pages and the end
        later = list(client.receipts(after=chain[0]["receipt"]["sequence"]))

    body = verify_receipt(receipt, keys)
    assert body["job_id"] == job_ids[0] and receipt["signature"]["kid"] in {k["kid"] for k in keys["keys"]}
    assert sorted(d["receipt"]["job_id"] for d in chain) == sorted(job_ids)
    assert [d["receipt"]["sequence"] for d in chain] == [1, 2, 3]
    assert verify_chain(chain, keys)  # raises on a changed, dropped or added receipt
    assert later == chain[1:]
    whole = tenant.http.get("/v1/receipts", params={"limit": 3}).json()  # exactly full: no page follows
    assert len(whole["data"]) == 3 and whole["next_after"] is None
    assert tenant.http.get("/v1/receipts", params={"limit": 2}).json()["next_after"] == 2
    assert receipt in chain  # the same document, whichever way it is fetched


def test_a_tampered_receipt_from_the_client_does_not_verify(receipted, platform):
    tenant, job_ids = receipted
    with Genline(tenant.api_key, platform.ingest_url) as client:
        receipt, keys = client.receipt(job_ids[1]), client.signing_keys()
    receipt["receipt"]["state"] = "failed"  # a claim the platform did not sign

    with pytest.raises(ReceiptVerificationError):
        verify_receipt(receipt, keys)


def test_an_unknown_job_has_no_receipt(receipted, platform):
    tenant, _ = receipted
    with Genline(tenant.api_key, platform.ingest_url) as client, pytest.raises(NotFound):
        client.receipt("00000000-0000-4000-8000-000000000000")


def test_usage_shows_the_plan_and_where_the_tenant_stands(receipted, platform):
    tenant, job_ids = receipted
    with Genline(tenant.api_key, platform.ingest_url) as client:
        usage = client.usage()

    assert isinstance(usage, Usage) and usage.tenant_id == tenant.id
    assert usage.plan.name == "enterprise"
    assert [limit.name for limit in usage.limits] == ["requests_burst", "concurrent_jobs", "images_per_day"]
    assert usage.images_today == len(job_ids) and usage.jobs_in_progress == 0
    images = next(limit for limit in usage.limits if limit.name == "images_per_day")
    assert images.used == len(job_ids)


def test_the_async_client_fetches_receipts_and_usage(receipted, platform):
    tenant, job_ids = receipted

    async def scenario():
        async with AsyncGenline(tenant.api_key, platform.ingest_url) as client:
            return (await client.receipt(job_ids[2]), [d async for d in client.receipts(page_size=1)],
                    await client.signing_keys(), await client.usage())

    receipt, chain, keys, usage = asyncio.run(scenario())
    assert verify_receipt(receipt, keys)["job_id"] == job_ids[2]
    assert verify_chain(chain, keys) and len(chain) == 3 and receipt in chain
    assert usage.tenant_id == tenant.id


def test_the_cli_prints_a_receipt_it_verified_and_the_usage(receipted, platform, tmp_path):
    tenant, job_ids = receipted
    as_owner = {"api_url": platform.ingest_url, "api_key": tenant.api_key}
    printed = genline("jobs", "receipt", job_ids[0], "--verify", **as_owner)
    usage_json = genline("usage", "--json", **as_owner)
    usage_table = genline("usage", **as_owner)
    unknown = genline("jobs", "receipt", "00000000-0000-4000-8000-000000000000", **as_owner)

    assert printed.returncode == 0, printed.stderr
    assert "check out" in printed.stderr
    document = json.loads(printed.stdout)  # stdout holds the receipt and nothing else
    assert document["receipt"]["job_id"] == job_ids[0]
    saved, keys = tmp_path / "receipt.json", tmp_path / "keys.json"
    saved.write_text(printed.stdout)
    keys.write_text(json.dumps(tenant.http.get("/.well-known/genline-keys.json").json()))
    offline = genline("receipts", "verify", str(saved), "--keys", str(keys), **as_owner)
    assert offline.returncode == 0, offline.stdout + offline.stderr

    assert usage_json.returncode == 0 and json.loads(usage_json.stdout)["tenant_id"] == tenant.id
    assert usage_table.returncode == 0 and "enterprise" in usage_table.stdout and "images_per_day" in usage_table.stdout
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr and unknown.stdout == ""
