"""Bad input gets a clear RFC 9457 problem, never a 500."""

import json
import uuid

import httpx
import pytest

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_FIELDS <= body.keys() and body["status"] == status
    return body


@pytest.mark.parametrize("body, field", [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x", "images": 0}, "images"),
    ({"prompt": "x", "images": 101}, "images"),
    ({"prompt": "x", "images": 4, "candidates": 2}, "candidates"),
    ({"prompt": "x", "template": "nonexistent"}, "template"),
    ({"prompt": "x", "colour": "blue"}, "colour"),
    ({"prompt": 42}, "prompt"),
])
def test_malformed_job_is_422_naming_the_field(tenant_factory, body, field):
    tenant = tenant_factory(credits=0)
    problem = assert_problem(tenant.http.post("/v1/jobs", json=body), 422)
    assert problem["type"] == "/problems/validation-error"
    assert field in problem["detail"] or any(field in e["field"] or field in e["message"] for e in problem["errors"])


def test_body_that_is_not_json_is_422(tenant_factory):
    tenant = tenant_factory(credits=0)
    response = tenant.http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer gl_wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"}])
def test_missing_or_wrong_api_key_is_401(platform, headers):
    response = httpx.post(f"{platform.ingest_url}/v1/jobs", json={"prompt": "x"}, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(httpx.get(f"{platform.ingest_url}/v1/jobs/{uuid.uuid4()}", headers=headers), 401)


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "0"], ids=["unknown", "not-a-uuid", "zero"])
def test_unknown_job_is_404(tenant_factory, job_id):
    tenant = tenant_factory(credits=0)
    assert_problem(tenant.http.get(f"/v1/jobs/{job_id}"), 404)


def test_another_tenants_job_is_404_not_403(tenant_factory):
    owner, stranger = tenant_factory(), tenant_factory(credits=0)
    job_id = owner.submit(images=1)
    assert_problem(stranger.http.get(f"/v1/jobs/{job_id}"), 404)
    assert owner.http.get(f"/v1/jobs/{job_id}").status_code == 200


def test_job_costing_more_than_the_balance_is_rejected_with_a_reason_and_no_charge(tenant_factory):
    tenant = tenant_factory(credits=25)  # 3 generic images cost 30
    job = tenant.wait_settled([tenant.submit(images=3)])
    job = next(iter(job.values()))
    assert job["state"] == "rejected"
    assert job["failure"] == {"code": "insufficient_credits", "stage": "admission",
                              "reason": "the job costs 30 credits but only 25 are available"}
    assert job["outputs"] == [] and tenant.balance() == {"posted": 25, "pending": 0, "available": 25}


def test_tenant_without_credit_account_is_rejected(tenant_factory):
    tenant = tenant_factory(credits=0)
    job = next(iter(tenant.wait_settled([tenant.submit()]).values()))
    assert job["state"] == "rejected" and job["failure"]["code"] == "unknown_account"


def test_idempotency_key_returns_the_first_job(tenant_factory):
    tenant = tenant_factory()
    body, key = {"prompt": "a teapot", "images": 1}, {"Idempotency-Key": str(uuid.uuid4())}
    first = tenant.http.post("/v1/jobs", json=body, headers=key)
    again = tenant.http.post("/v1/jobs", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    changed = tenant.http.post("/v1/jobs", json=body | {"images": 2}, headers=key)
    assert assert_problem(changed, 422)["type"] == "/problems/idempotency-key-reused"


def test_unknown_route_and_wrong_method_are_problems(platform):
    assert_problem(httpx.get(f"{platform.ingest_url}/v1/nothing-here"), 404)
    assert_problem(httpx.delete(f"{platform.ingest_url}/v1/jobs"), 405)


def test_services_expose_health_readiness_and_metrics(platform):
    for name in platform.ports:
        assert httpx.get(f"{platform.url(name)}/healthz").json()["status"] == "ok"  # with its release (test_observability)
        assert httpx.get(f"{platform.url(name)}/readyz").status_code == 200
        assert "genline_" in httpx.get(f"{platform.url(name)}/metrics").text


def post_json(http: httpx.Client, path: str, body: dict) -> httpx.Response:
    """JSON with \\u escapes, so a lone surrogate travels as the client wrote it."""
    return http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize("path, body, field", [
    ("/v1/jobs", {"prompt": "a red\x00 bicycle"}, "prompt"),
    ("/v1/jobs", {"prompt": "a red bicycle", "model": "local-painter\x00"}, "model"),
    ("/v1/jobs", {"prompt": "a red \ud83d bicycle"}, "prompt"),
    ("/v1/jobs", {"prompt": "a red bicycle", "quality": {"require": ["sharp\x00ness"]}}, "quality"),
    (f"/v1/jobs/{uuid.uuid4()}/outputs/1/report", {"reason": "blurry\x00"}, "reason"),
    ("/v1/quotes", {"template": "generic\ud800"}, "template"),
], ids=["prompt-nul", "model-nul", "prompt-surrogate", "quality-nul", "report-reason-nul", "template-surrogate"])
def test_text_postgresql_cannot_store_is_422_naming_the_field(tenant_factory, path, body, field):
    tenant = tenant_factory(credits=0)
    problem = assert_problem(post_json(tenant.http, path, body), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["errors"][0]["code"] == "unstorable_text"


@pytest.mark.parametrize("path, body, field", [
    ("/v1/jobs", {"prompt": "x", "use_retry_tokens": "yes"}, "use_retry_tokens"),
    ("/v1/jobs", {"prompt": "x", "images": "2"}, "images"),
    ("/v1/jobs", {"prompt": "x", "seed": 7.0}, "seed"),
    ("/v1/jobs", {"prompt": "x", "quality": {"thresholds": {"sharpness": {"min": "80"}}}},
     "quality.thresholds.sharpness.min"),
    ("/v1/quotes", {"images": "1"}, "images"),
    ("/v1/quotes", {"use_retry_tokens": 1}, "use_retry_tokens"),
])
def test_numbers_and_booleans_are_not_read_from_other_types(tenant_factory, path, body, field):
    tenant = tenant_factory(credits=0)
    problem = assert_problem(tenant.http.post(path, json=body), 422)
    assert field in [e["field"] for e in problem["errors"]]
