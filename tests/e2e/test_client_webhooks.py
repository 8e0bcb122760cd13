"""The client's `verify_webhook` on the webhooks delivery really sends (received by the
Standard Webhooks test receiver of test_webhooks.py)."""

import base64
import secrets

import pytest

from genline_client import WebhookVerificationError, verify_webhook
from tests.e2e.test_webhooks import receiver  # noqa: F401 - the fixture

OTHER_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def test_verify_webhook_accepts_what_delivery_sends_and_nothing_else(tenant_factory, receiver):  # noqa: F811
    tenant = tenant_factory()
    endpoint = tenant.http.post("/v1/webhook-endpoints", json={"url": receiver.url("/client"),
                                                               "event_types": ["job.succeeded"]})
    assert endpoint.status_code == 201, endpoint.text
    job_id = tenant.submit(images=1, candidates=2, seed=21)

    headers, body = receiver.wait("/client", 1, timeout_s=240)[0]

    payload = verify_webhook(headers, body, secret=endpoint.json()["secret"])
    assert payload["type"] == "job.succeeded" and job_id in body.decode()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, secret=OTHER_SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body.replace(b"succeeded", b"failed"), secret=endpoint.json()["secret"])
