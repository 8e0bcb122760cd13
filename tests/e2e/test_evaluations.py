"""Evaluations on the running services: images the line did not make judged by the scorer
with the verdicts it gives the same images inside a job (the local generator's planted
defects, and the degraded photographs the scorer's tests use), charged per image judged, a
batch told by a signed webhook, URLs fetched only from allowed addresses."""

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.test_api_keys import as_key, assert_problem, create_key
from tests.e2e.test_webhooks import Receiver, verifies
from tests.scorer.conftest import blurred, noisy, png, rgb_photo


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def evaluate(tenant, **body) -> dict:
    response = tenant.http.post("/v1/evaluations", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def wait_evaluated(tenant, evaluation_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        evaluation = tenant.http.get(f"/v1/evaluations/{evaluation_id}").json()
        if evaluation["status"] in ("completed", "failed"):
            return evaluation
        assert time.monotonic() < deadline, f"evaluation still {evaluation['status']}"
        time.sleep(0.5)


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_planted_defects_get_the_verdicts_they_get_inside_a_job(tenant_factory, receiver):
    tenant = tenant_factory(credits=1_000)
    job = next(iter(tenant.wait_settled([tenant.submit(images=2, candidates=8, seed=11)]).values()))
    candidates = [tenant.http.get(f"/v1/jobs/{job['id']}/candidates/{s['index']}/image").content
                  for s in job["scores"]]
    secret = tenant.http.get("/v1/webhooks/default/secret").json()["key"]

    created = tenant.http.post("/v1/evaluations/batches", json={
        "images": [b64(c) for c in candidates], "template": job["template"],
        "webhook_url": receiver.url("/evaluations")})
    assert created.status_code == 202, created.text
    evaluation = wait_evaluated(tenant, created.json()["id"])

    assert evaluation["status"] == "completed" and evaluation["images_done"] == 8
    rejected_in_job = [s for s in job["scores"] if s["judged"] and not s["passed"]]
    assert len(rejected_in_job) == 2
    for score, verdict in zip(job["scores"], evaluation["images"], strict=True):
        if score["judged"]:
            assert (verdict["passed"], sorted(verdict["failed"])) == (score["passed"], sorted(score["failed"]))
            for name in score["failed"]:
                assert verdict["dimensions"][name]["reason"] == score["dimensions"][name]["reason"]
    assert evaluation["charge"]["credits"] == 8 and tenant.balance()["available"] == 1_000 - job["billing"][
        "charged"] - 8
    [told] = receiver.wait("/evaluations", 1)
    assert verifies(secret, told) and b'"evaluation.completed"' in told[1]


def test_the_scorers_degraded_photographs_are_caught_at_once(tenant_factory):
    tenant = tenant_factory(credits=100)
    photo = rgb_photo("coffee")

    evaluation = evaluate(tenant, images=[b64(png(photo)), b64(png(blurred(photo, 6))), b64(png(noisy(photo, 0.2)))])

    clean, soft, grainy = evaluation["images"]
    assert "sharpness" in soft["failed"] and soft["dimensions"]["sharpness"]["tier"] == 1
    assert "noise" in grainy["failed"] and grainy["tier_reached"] == 1
    assert soft["not_measured"] and not soft["passed"]  # the walk stopped at the tier it failed
    assert clean["passed"] is True and clean["tier_reached"] >= 2
    assert evaluation["charge"]["credits"] == 3 and tenant.balance()["available"] == 97


class ImageServer:
    """An image on loopback, and every request that reached it."""

    def __init__(self, image: bytes) -> None:
        seen = self.seen = []

        class Serve(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(200)
                self.send_header("content-length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.server_port}/cat.png"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def image_server():
    server = ImageServer(png(rgb_photo("chelsea")))
    yield server
    server.close()


def test_images_come_by_url_upload_or_delivery_and_private_addresses_are_refused(tenant_factory, platform,
                                                                                 image_server):
    """An ingest whose operator opened loopback for images named by URL (the platform's opens it
    for webhooks only) fetches them; the metadata address stays refused."""
    tenant = tenant_factory(credits=100)
    replica = platform.start_replica("ingest", env={"GENLINE_IMAGE_URL_ALLOWED_NETWORKS": '["127.0.0.0/8"]'})
    try:
        with httpx.Client(base_url=platform.url(replica), headers=tenant.http.headers, timeout=60) as http:
            upload = http.post("/v1/uploads", content=png(rgb_photo("chelsea")),
                               headers={"content-type": "image/png"}).json()
            answer = http.post("/v1/evaluations", json={"images": [{"url": image_server.url()},
                                                                   {"upload_id": upload["id"]}]})
            assert answer.status_code == 200, answer.text
            refused = http.post("/v1/evaluations", json={"images": [{"url": "http://169.254.169.254/latest"}]})
    finally:
        platform.stop(replica)
    by_url, by_upload = answer.json()["images"]
    assert by_url["passed"] == by_upload["passed"] and by_url["score"] == pytest.approx(by_upload["score"])
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/image-unusable"
    strange = tenant.http.post("/v1/evaluations", json={"images": [{"upload_id": upload["id"]}],
                                                        "subject": "5b0e6c1a-7d2f-4e8b-9a3c-1f2e3d4c5b6a"})
    assert strange.status_code == 422 and strange.json()["type"] == "/problems/unknown-subject"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_image_url_is_not_fetched_where_only_webhooks_may_go(tenant_factory, image_server, host):
    """The platform opens loopback to webhook receivers (as `make run` does): an evaluation's
    image there is refused, from a single call and from a batch, fetched never, charged never."""
    tenant = tenant_factory(credits=100)
    single = tenant.http.post("/v1/evaluations", json={"images": [{"url": image_server.url(host)}]}, timeout=60)
    batch = tenant.http.post("/v1/evaluations/batches", json={"images": [{"url": image_server.url(host)}]}, timeout=60)
    for answer in (single, batch):
        assert answer.status_code == 422 and answer.json()["type"] == "/problems/image-unusable", answer.text
        assert "GENLINE_IMAGE_URL_ALLOWED_NETWORKS" in answer.json()["detail"]
    assert image_server.seen == [] and tenant.balance()["available"] == 100


def test_without_credits_no_verdict_is_given(tenant_factory):
    tenant = tenant_factory(credits=1)
    photo = png(rgb_photo("camera"))
    refused = tenant.http.post("/v1/evaluations", json={"images": [b64(photo), b64(photo)]})
    assert refused.status_code == 402 and "images" not in refused.json()
    assert httpx.codes.is_success(tenant.http.post("/v1/evaluations", json={"images": [b64(photo)]}).status_code)


def test_a_key_whose_cap_leaves_no_room_is_refused_before_any_image_is_judged(tenant_factory, platform):
    tenant = tenant_factory(credits=100)
    key = create_key(tenant, name="capped", scopes=["jobs:write", "jobs:read"], daily_cap_credits=0)
    photo = png(rgb_photo("camera"))
    with as_key(platform.ingest_url, key["secret"]) as client:
        single = client.post("/v1/evaluations", json={"images": [b64(photo)]}, timeout=60)
        batch = client.post("/v1/evaluations/batches", json={"images": [b64(photo), b64(photo)]}, timeout=60)
    for refused, images in ((single, 1), (batch, 2)):
        problem = assert_problem(refused, 402, "key-cap-reached")
        assert (problem["cap"], problem["cap_credits"], problem["cost"]) == ("daily", 0, images)
    assert tenant.balance()["available"] == 100  # nothing judged, nothing charged
