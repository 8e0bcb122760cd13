"""Signed job receipts on the running services: every final job gets one, chained per tenant;
its hash is in the job, its event log, the JobFinished event and the webhook. They verify
offline with the published keys (genline-client, and `genline receipts verify`); a byte
changed, a receipt dropped or another key's signature fails, saying what failed; after a
key rotation old receipts still verify. `genline replay receipts` finds a delivered object
replaced in the bucket."""

import asyncio
import copy
import json
import os
import subprocess
import sys
import uuid

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb

from genline_client import ReceiptVerificationError, verify_chain, verify_receipt
from services.common.bus.replay import decoded_envelopes, read_topic_to_end
from services.common.contracts import TOPICS, JobFinished
from services.common.storage import Blob
from services.ingest.receipts.document import ReceiptSigner, canonical, jwk
from services.ingest.receipts.replay import ReceiptReplay, replay_receipts
from services.ingest.settings import IngestSettings
from services.ingest.signing_key import new_signing_key_text
from tests.e2e.test_webhooks import receiver  # noqa: F401 - the fixture


def published_keys(platform) -> dict:
    response = httpx.get(f"{platform.ingest_url}/.well-known/genline-keys.json", timeout=10)  # no key needed
    assert response.status_code == 200, response.text
    return response.json()


def chain(tenant) -> list[dict]:
    response = tenant.http.get("/v1/receipts", params={"after": 0})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def run_jobs(tenant, count: int, **body) -> list[str]:
    job_ids = [tenant.submit(images=1, candidates=2, seed=i, **body) for i in range(count)]
    tenant.wait_settled(job_ids)
    return job_ids


def finished_events(bootstrap: str, job_ids: list[str]) -> dict[str, JobFinished]:
    envelopes, _ = decoded_envelopes(asyncio.run(read_topic_to_end(bootstrap, TOPICS["ingest"])))
    return {str(e.event.job_id): e.event for e in envelopes
            if isinstance(e.event, JobFinished) and str(e.event.job_id) in job_ids}


def genline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genline_cli", *args], capture_output=True, text=True, timeout=120,
                          env=os.environ | (env or {}))


def test_receipts_verify_offline_and_any_change_drop_or_forgery_fails_naming_what(
        platform, tenant_factory, endpoints, receiver, tmp_path):  # noqa: F811 - the fixture imported above
    tenant = tenant_factory()
    job_ids = run_jobs(tenant, 3, webhook_url=receiver.url("/hooks"))
    receipts, keys = chain(tenant), published_keys(platform)

    bodies = verify_chain(receipts, keys)  # offline from here on: the receipts and the keys are all it takes
    assert [b["job_id"] for b in bodies] == [r["receipt"]["job_id"] for r in receipts]
    assert sorted(b["job_id"] for b in bodies) == sorted(job_ids) and [b["sequence"] for b in bodies] == [1, 2, 3]
    assert bodies[0]["previous_sha256"] is None
    finished = finished_events(endpoints.kafka_bootstrap, job_ids)
    hooks = {json.loads(body)["data"]["id"]: json.loads(body)["data"] for _, body in receiver.wait("/hooks", 3)}
    for receipt in receipts:
        body, job_id = receipt["receipt"], receipt["receipt"]["job_id"]
        job = tenant.job(job_id)
        assert tenant.http.get(f"/v1/jobs/{job_id}/receipt").json() == receipt
        assert job["receipt"] == {"sha256": receipt["sha256"], "url": f"/v1/jobs/{job_id}/receipt"}
        assert finished[job_id].receipt_sha256 == receipt["sha256"]
        assert hooks[job_id]["receipt"]["sha256"] == receipt["sha256"]
        assert hooks[job_id]["prompt"] == job["prompt"]  # delivery opened the sealed prompt for its tenant
        log = tenant.http.get(f"/v1/jobs/{job_id}/events").json()["data"]
        issued = [e for e in log if e["type"] == "receipt.issued"]
        assert [e["payload"]["sha256"] for e in issued] == [receipt["sha256"]]
        assert log[-1]["type"] == "state" and log[-1]["seq"] == issued[0]["seq"] + 1  # just before the final state
        # What the receipt says is what the job shows.
        assert body["credits"]["charged"] == job["billing"]["charged"] and body["state"] == job["state"]
        assert [(o["sha256"], o["size_bytes"], o["media_type"]) for o in body["outputs"]] == \
            [(o["sha256"], o["size_bytes"], o["media_type"]) for o in job["outputs"]]
        assert {c["index"]: c["failed"] for c in body["candidates"]} == {s["index"]: s["failed"] for s in job["scores"]}
        assert body["template"]["version"] and body["profile"] == {"name": "generic",
                                                                   "version": job["profile_version"]}

    # One byte of any field changed: the receipt no longer verifies, and the error says why.
    for path, change in ((("receipt", "credits", "charged"), 1), (("receipt", "outputs", 0, "sha256"), None),
                         (("receipt", "times", "submitted"), None), (("sha256",), None),
                         (("signature", "value"), None)):
        tampered = copy.deepcopy(receipts[1])
        *parents, last = path
        holder = tampered
        for step in parents:
            holder = holder[step]
        holder[last] = holder[last] + change if change else flip_one_character(holder[last])
        with pytest.raises(ReceiptVerificationError, match="signature does not verify|not the hash of its content"):
            verify_receipt(tampered, keys)
    with pytest.raises(ReceiptVerificationError, match="jumps from 1 to 3: receipt 2 is missing"):
        verify_chain([receipts[0], receipts[2]], keys)
    forger = ReceiptSigner(Ed25519PrivateKey.generate())
    forged = forger.sign(receipts[2]["receipt"] | {"kid": forger.kid})
    with pytest.raises(ReceiptVerificationError, match="signed with key .* not among the published keys"):
        verify_chain([*receipts[:2], forged], keys)

    # The same from a shell: `genline receipts verify FILE… --keys FILE`.
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    for n, receipt in enumerate(receipts):
        (tmp_path / f"{n}.json").write_text(json.dumps(receipt))
    verified = genline("receipts", "verify", *(str(tmp_path / f"{n}.json") for n in range(3)),
                       "--keys", str(tmp_path / "keys.json"))
    assert verified.returncode == 0 and f"OK 3 receipt(s) of {tenant.id}" in verified.stdout, verified.stderr
    dropped = genline("receipts", "verify", str(tmp_path / "0.json"), str(tmp_path / "2.json"),
                      "--keys", str(tmp_path / "keys.json"))
    assert dropped.returncode == 1 and "receipt 2 is missing" in dropped.stderr


def flip_one_character(text: str) -> str:
    middle = len(text) // 2
    return text[:middle] + ("0" if text[middle] != "0" else "1") + text[middle + 1:]


def test_a_served_receipt_is_the_signed_document_whole(tenant_factory, endpoints):
    """A field added to a receipt's body is served and still verifies: the routes send the
    stored document's own canonical bytes, not what a response model keeps of them."""
    tenant = tenant_factory()
    [job_id] = run_jobs(tenant, 1)
    signer = ReceiptSigner(Ed25519PrivateKey.generate())
    amended = signer.sign(chain(tenant)[0]["receipt"] | {"kid": signer.kid, "region": "eu-west-1",
                                                         "terms": {"version": 3}})
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute("UPDATE ingest.receipts SET document = %s, sha256 = %s WHERE job_id = %s",
                     [Jsonb(amended), amended["sha256"], job_id])

    served = tenant.http.get(f"/v1/jobs/{job_id}/receipt")
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.content == canonical(amended)
    keys = {"keys": [jwk(signer.public_key, status="active", created_at="2026-11-25T00:00:00Z")]}
    assert verify_receipt(served.json(), keys)["region"] == "eu-west-1"
    assert chain(tenant) == [amended]
    assert verify_chain(chain(tenant), keys)[0]["terms"] == {"version": 3}


def test_after_a_key_rotation_old_receipts_still_verify(platform, tenant_factory):
    tenant = tenant_factory()
    run_jobs(tenant, 1)
    [old] = chain(tenant)
    rotated = new_signing_key_text()
    platform.service_env["ingest"] = {"GENLINE_RECEIPT_SIGNING_KEY": rotated}
    platform.stop("ingest")
    platform.restart("ingest")

    run_jobs(tenant, 1)
    receipts, keys = chain(tenant), published_keys(platform)
    assert receipts[0] == old and receipts[1]["signature"]["kid"] != old["signature"]["kid"]
    status = {key["kid"]: key["status"] for key in keys["keys"]}
    assert status[old["signature"]["kid"]] == "retired" and status[receipts[1]["signature"]["kid"]] == "active"
    assert [b["sequence"] for b in verify_chain(receipts, keys)] == [1, 2]
    assert receipts[1]["receipt"]["previous_sha256"] == old["sha256"]  # the chain runs across the rotation


def test_replay_receipts_reports_a_delivered_object_replaced_in_the_bucket(tenant_factory, endpoints, object_store):
    tenant = tenant_factory()
    job_ids = run_jobs(tenant, 2)
    settings = endpoints.operator_settings(IngestSettings)
    lines: list[str] = []
    assert replay_receipts(settings, ReceiptReplay(tenant=tenant.id), out=lines.append) == 0, lines
    assert lines[0].startswith("checked 2 receipts of 1 tenants") and lines[-1] == "no differences"

    output = tenant.job(job_ids[1])["outputs"][0]
    replacement = f"not the image that was delivered {uuid.uuid4()}".encode()
    asyncio.run(object_store.put(object_store.public_bucket, output["key"], content=Blob(replacement, output["media_type"])))
    lines.clear()
    assert replay_receipts(settings, ReceiptReplay(tenant=tenant.id), out=lines.append) == 1
    differences = [line for line in lines if line.startswith("DIFFERENCE")]
    assert len(differences) == 1 and differences[0].startswith(f"DIFFERENCE receipt={job_ids[1]} output 1"), lines
    assert f"receipt sha256={output['sha256']}" in differences[0] and lines[-1] == "1 receipt(s) differ"
    command = genline("replay", "receipts", "--tenant", tenant.id, env=endpoints.service_env())
    assert command.returncode == 1 and f"receipt={job_ids[1]} output 1" in command.stdout, command.stderr
