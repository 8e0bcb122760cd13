"""API keys on the running services: scopes checked on every route (403 naming the scope),
keys created with a subset of the creator's scopes and shown once, revocation refused at
once by every ingest replica (no cache), rotation with an overlap in which both secrets work."""

import time
import uuid

import httpx

from services.ingest.roles import SCOPES
from tests.e2e.conftest import LEDGER_ADMIN_TOKEN, wait_for_audit


def as_key(base_url: str, secret: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def create_key(tenant, **body) -> dict:
    response = tenant.http.post("/v1/api-keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"
    return response.json()


def test_a_key_without_jobs_write_reads_but_cannot_submit(tenant_factory, platform):
    tenant = tenant_factory(credits=100)
    job_id = tenant.submit(images=1, candidates=1)
    reader = create_key(tenant, name="dashboard", scopes=["jobs:read"])
    assert reader["secret"].startswith(reader["prefix"]) and reader["scopes"] == ["jobs:read"]
    with as_key(platform.ingest_url, reader["secret"]) as client:
        problem = assert_problem(client.post("/v1/jobs", json={"prompt": "a red bicycle"}), 403, "missing-scope")
        assert problem["scope"] == "jobs:write" and "jobs:write" in problem["detail"]
        assert_problem(client.post(f"/v1/jobs/{job_id}/cancel"), 403, "missing-scope")
        assert_problem(client.get("/v1/account"), 403, "missing-scope")
        assert_problem(client.get("/v1/api-keys"), 403, "missing-scope")
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
        assert [job["id"] for job in client.get("/v1/jobs").json()["data"]] == [job_id]


def test_a_key_grants_only_scopes_it_holds(tenant_factory, platform):
    tenant = tenant_factory(credits=0)
    manager = create_key(tenant, name="key admin", scopes=["keys:manage", "jobs:read"])
    with as_key(platform.ingest_url, manager["secret"]) as client:
        problem = assert_problem(client.post("/v1/api-keys", json={"scopes": ["jobs:write"]}), 403, "scope-not-held")
        assert problem["scope"] == "jobs:write"
        inherited = client.post("/v1/api-keys", json={"name": "same as mine"})
        assert inherited.status_code == 201 and inherited.json()["scopes"] == ["jobs:read", "keys:manage"]
    assert_problem(tenant.http.post("/v1/api-keys", json={"scopes": ["jobs:delete"]}), 422, "validation-error")


def test_keys_are_listed_without_secrets_and_with_their_last_use(tenant_factory, platform):
    tenant = tenant_factory(credits=0)
    reader = create_key(tenant, name="dashboard", scopes=["jobs:read"])
    with as_key(platform.ingest_url, reader["secret"]) as client:
        assert client.get("/v1/jobs").status_code == 200
    listed = tenant.http.get("/v1/api-keys").json()["data"]
    assert [key["name"] for key in listed] == ["operator", "dashboard"]
    assert all("secret" not in key for key in listed)
    assert reader["secret"] not in tenant.http.get("/v1/api-keys").text
    dashboard = listed[1]
    assert dashboard["id"] == reader["id"] and dashboard["prefix"] == reader["prefix"]
    assert dashboard["last_used_at"] is not None and listed[0]["last_used_at"] is not None


def test_a_revoked_key_is_refused_at_once_by_every_replica(tenant_factory, platform, two_ingests):
    tenant = tenant_factory(credits=0)
    doomed = create_key(tenant, name="leaked", scopes=["jobs:read"])
    replicas = [as_key(url, doomed["secret"]) for url in two_ingests]
    try:
        assert [client.get("/v1/jobs").status_code for client in replicas] == [200, 200]
        assert tenant.http.delete(f"/v1/api-keys/{doomed['id']}").status_code == 204
        for client in replicas:
            assert_problem(client.get("/v1/jobs"), 401, "invalid-api-key")
    finally:
        for client in replicas:
            client.close()
    assert doomed["id"] not in [key["id"] for key in tenant.http.get("/v1/api-keys").json()["data"]]
    revocation = wait_for_audit(platform, tenant.id, "api_key.revoke")
    operator_key = tenant.http.get("/v1/api-keys").json()["data"][0]["id"]
    assert (revocation["actor"], revocation["target"]) == (f"key:{operator_key}", f"api_key:{doomed['id']}")
    assert_problem(tenant.http.delete(f"/v1/api-keys/{doomed['id']}"), 404, "api-key-not-found")
    assert_problem(tenant.http.delete("/v1/api-keys/not-a-key"), 404, "api-key-not-found")


def test_a_rotated_key_works_during_the_overlap_and_not_after(tenant_factory, two_ingests):
    tenant = tenant_factory(credits=0)
    old = create_key(tenant, name="ci", scopes=["jobs:read", "account:read"])
    rotated = tenant.http.post(f"/v1/api-keys/{old['id']}/rotate", json={"overlap_s": 5})
    assert rotated.status_code == 201, rotated.text
    new, old_after = rotated.json()["new"], rotated.json()["old"]
    assert new["name"] == "ci" and new["scopes"] == ["jobs:read", "account:read"] and new["secret"] != old["secret"]
    assert old_after["expires_at"] is not None
    with as_key(two_ingests[1], old["secret"]) as old_client, as_key(two_ingests[0], new["secret"]) as new_client:
        assert old_client.get("/v1/account").status_code == 200  # within the overlap
        deadline = time.monotonic() + 30
        while old_client.get("/v1/account").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert_problem(old_client.get("/v1/account"), 401, "invalid-api-key")
        assert new_client.get("/v1/account").status_code == 200
    assert_problem(tenant.http.post(f"/v1/api-keys/{old['id']}/rotate"), 404, "api-key-not-found")


def test_operators_create_a_tenant_and_its_first_key_through_the_admin_api(platform):
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    admin = {"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}
    url = f"{platform.ingest_url}/admin/v1/tenants"
    assert_problem(httpx.post(url, json={"id": tenant_id}, headers={"Authorization": "Bearer nope"}),
                   401, "invalid-admin-token")
    created = httpx.post(url, json={"id": tenant_id, "name": "Acme"}, headers=admin)
    assert created.status_code == 201, created.text
    with as_key(platform.ingest_url, created.json()["api_key"]) as client:
        listed = client.get("/v1/api-keys").json()["data"]
        assert [(k["id"], k["name"], len(k["scopes"])) for k in listed] == [(created.json()["key_id"], "operator", len(SCOPES))]
    assert_problem(httpx.post(url, json={"id": tenant_id}, headers=admin), 409, "tenant-exists")
    assert wait_for_audit(platform, tenant_id, "tenant.create")["actor"] == "operator:admin"
    assert_problem(httpx.post(url, json={"id": "Not A Tenant"}, headers=admin), 422, "validation-error")
