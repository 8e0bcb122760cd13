"""Jobs from HTTP to downloaded links, across the five services as separate processes."""

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

UNIT_PRICE = {"generic": 10, "headshot": 20, "product": 15}


def download_png(url: str) -> bytes:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.verify()  # raises if the file is not a complete, valid image
    assert image.format == "PNG"
    return response.content


def test_twenty_jobs_succeed_and_are_charged_exactly_for_what_was_delivered(tenant_factory):
    tenant = tenant_factory(credits=5_000)
    before = tenant.balance()
    requests = [{"images": 1 + i % 4, "candidates": 3 + i % 4, "template": ("generic", "product")[i % 2],
                 "seed": i} for i in range(20)]
    with ThreadPoolExecutor(4) as pool:
        job_ids = list(pool.map(lambda body: tenant.submit(**body), requests))

    jobs = tenant.wait_settled(job_ids)

    assert {job["state"] for job in jobs.values()} == {"succeeded"}
    expected_charge = 0
    for job in jobs.values():
        assert len(job["outputs"]) == job["images"]
        for output in job["outputs"]:
            assert hashlib.sha256(download_png(output["url"])).hexdigest() == output["sha256"]
            assert output["key"].startswith(f"{tenant.id}/") and output["key"].endswith(f"/{job['id']}/{output['n']}.png")
        assert job["billing"]["charged"] == len(job["outputs"]) * UNIT_PRICE[job["template"]]
        expected_charge += job["billing"]["charged"]
        assert {"submitted", "admitted", "generating", "scoring", "delivering", "succeeded"} <= job["timestamps"].keys()
    after = tenant.balance()
    assert before["available"] - after["available"] == expected_charge
    assert after["pending"] == 0


def test_every_candidate_is_scored_and_defects_are_never_delivered(tenant_factory):
    tenant = tenant_factory()
    job = tenant.wait_settled([tenant.submit(images=2, candidates=8, seed=11)])
    job = next(iter(job.values()))
    assert len(job["scores"]) == 8
    # Rejected: judged, not passed. The rest passed, or were left without a verdict once
    # two better candidates had passed (the scorer's last tier measures only what it needs).
    rejected = [s for s in job["scores"] if s["judged"] and not s["passed"]]
    assert len(rejected) == 2  # the local generator makes floor(8 x 0.25) defective candidates
    for score in rejected:
        failing = [score["dimensions"][name] for name in score["failed"]]
        assert failing and all("below the minimum" in d["reason"] or "above the maximum" in d["reason"]
                               for d in failing)
        unmeasured = [d for name, d in score["dimensions"].items() if d["value"] is None]
        assert all("unavailable" in d["reason"] or "unmeasured" in d["reason"] for d in unmeasured)
    assert set(job["selected"]).isdisjoint(s["index"] for s in rejected)
