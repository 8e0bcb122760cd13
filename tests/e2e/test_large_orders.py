"""Orders at the seed's size on the running services: 60 images from 240 candidates, stored
in chunks as the provider's calls return and scored while the rest is generated, with the
job's progress in its log as a person would watch it; an order larger than the plan allows
is refused with the limit named; one canceled while it streams costs nothing."""

import io
import json

import pytest
from PIL import Image

from tests.e2e.conftest import FINAL
from tests.e2e.test_jobs import UNIT_PRICE
from tests.e2e.test_webhooks import Receiver, create_endpoint, verifies
from tests.polling import until


@pytest.fixture
def webhook_receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def progress_entries(tenant, job_id: str) -> list[dict]:
    entries, after = [], 0
    while True:
        page = tenant.http.get(f"/v1/jobs/{job_id}/events", params={"after": after}).json()
        entries += page["data"]
        if not page["data"]:
            return [entry for entry in entries if entry["type"] == "progress"]
        after = page["data"][-1]["seq"]


def test_sixty_from_two_hundred_forty_succeeds_and_reports_progress_on_the_way(tenant_factory, webhook_receiver):
    receiver = webhook_receiver
    tenant = tenant_factory(credits=10_000)
    watching = create_endpoint(tenant, receiver.url("/progress"), event_types=["job.progress", "job.succeeded"])
    create_endpoint(tenant, receiver.url("/finals"))  # every final event by default: no progress
    job_id = tenant.submit(images=60, candidates=240, seed=60)

    job = tenant.wait_settled([job_id], timeout_s=600)[job_id]

    assert job["state"] == "succeeded" and len(job["outputs"]) == 60
    assert job["billing"]["charged"] == 60 * UNIT_PRICE["generic"]
    assert job["candidates"] >= 240 and len(job["scores"]) >= 240
    # Stored as the calls returned: many objects, none holding the whole attempt.
    assert len({score["key"] for score in job["scores"]}) > 1
    progress = progress_entries(tenant, job_id)
    assert progress, "a 240-candidate job reports its progress while it runs"
    for earlier, later in zip(progress, progress[1:]):
        for count in ("generated", "scored", "passing"):
            assert later["payload"][count] >= earlier["payload"][count]
    last = progress[-1]["payload"]
    assert last["images"] == 60 and last["candidates"] >= 240 and last["scored"] <= last["generated"]
    assert last["needed"] == max(0, 60 - last["passing"])
    previews = [preview for entry in progress for preview in entry["payload"]["previews"]]
    assert previews, "candidates passing on the way are previewed"
    image = tenant.http.get(previews[0]["url"])
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (512, 512)
    # job.progress goes only where it was asked for, signed, and ahead of the job's end.
    requests = receiver.wait("/progress", 2)
    assert all(verifies(watching["secret"], request) for request in requests)
    types = [json.loads(body)["type"] for _, body in requests]
    assert types[0] == "job.progress" and "job.succeeded" in types
    first = json.loads(requests[0][1])["data"]
    assert first["job_id"] == job_id and first["images"] == 60 and first["generated"] >= first["scored"]
    finals = receiver.wait("/finals", 1)
    assert [json.loads(body)["type"] for _, body in finals] == ["job.succeeded"]


def test_an_order_past_the_plan_is_refused_with_its_limit(tenant_factory):
    free = tenant_factory(credits=10_000, plan="free")

    too_many_images = free.http.post("/v1/jobs", json={"prompt": "a lamp", "images": 61, "candidates": 100})
    too_many_candidates = free.http.post("/v1/jobs", json={"prompt": "a lamp", "images": 60, "candidates": 241})
    past_the_platform = free.http.post("/v1/jobs", json={"prompt": "a lamp", "images": 101})

    for response, limit, field in ((too_many_images, 60, "images"), (too_many_candidates, 240, "candidates")):
        assert response.status_code == 422, response.text
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["type"].endswith("order-too-large") and (problem["limit"], problem["field"]) == (limit, field)
        assert str(limit) in problem["detail"] and "free" in problem["detail"]
    assert past_the_platform.status_code == 422
    assert free.http.get("/v1/jobs").json()["data"] == []  # nothing was written


def test_a_large_order_canceled_while_it_streams_ends_canceled_and_costs_nothing(tenant_factory):
    tenant = tenant_factory(credits=10_000)
    before = tenant.balance()
    job_id = tenant.submit(images=60, candidates=240, seed=61)
    until(lambda: progress_entries(tenant, job_id) or tenant.job(job_id)["state"] in FINAL, 300,
          "the order reported no progress")

    assert tenant.http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = tenant.wait_settled([job_id], timeout_s=300)[job_id]

    # Canceled while it streamed, nothing delivered, nothing charged; or, had it won the race,
    # delivered and charged for exactly what it delivered.
    assert job["state"] in ("canceled", "succeeded"), job["state"]
    assert job["billing"]["charged"] == len(job["outputs"]) * UNIT_PRICE["generic"]
    assert tenant.balance() == {"posted": before["posted"] - job["billing"]["charged"], "pending": 0,
                                "available": before["available"] - job["billing"]["charged"]}
    if job["state"] == "canceled":
        assert job["outputs"] == []
