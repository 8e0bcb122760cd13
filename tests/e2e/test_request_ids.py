"""Request ids in problems, on the served ingest and ledger: the body names the
`X-Request-ID` the client sent (echoed in the header), and the access log has its line.
(tests/e2e/test_observability.py covers echoing and replacing ids on success.)"""

import json
import time
import uuid

import httpx
import pytest

HEADER = "X-Request-ID"


def log_entries(platform, service: str, request_id: str, timeout_s: float = 10) -> list[dict]:
    """The JSON log lines of `service` that carry `request_id` (waits for them to be written)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = (platform.log_dir / f"{service}.log").read_text(errors="replace").splitlines()
        found = [json.loads(line) for line in lines if request_id in line and line.startswith("{")]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.parametrize("service, path", [("ingest", "/v1/jobs/not-a-job"), ("ledger", "/admin/v1/reconciliation"),
                                           ("ledger", "/v1/no-such-route")])
def test_problem_bodies_name_the_request_id(platform, service, path):
    sent = f"probe-{uuid.uuid4()}"
    response = httpx.get(f"{platform.url(service)}{path}", headers={HEADER: sent})
    assert response.status_code in (401, 404) and response.headers["content-type"] == "application/problem+json"
    assert response.headers.get_list(HEADER) == [sent] and response.json()["request_id"] == sent
    [access] = [e for e in log_entries(platform, service, sent) if e["logger"] == "genline.access"]
    assert access["status"] == response.status_code and access["path"] == path
