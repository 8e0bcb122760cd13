"""`verify_webhook` against requests signed by the `standardwebhooks` package, the reference
implementation of the scheme Genline's delivery service signs with."""

import base64
import json
import secrets
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from genline_client import WebhookVerificationError, verify_webhook

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
OLD_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
BODY = json.dumps({"type": "job.succeeded", "data": {"id": "0f6c2d4e", "state": "succeeded"}})


def signed(body: str = BODY, secret: str = SECRET, sent: float | None = None, message_id: str = "msg_1") -> dict:
    timestamp = datetime.fromtimestamp(int(time.time() if sent is None else sent), UTC)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, timestamp, body)}


def test_a_request_signed_by_the_reference_signer_verifies_and_gives_the_payload():
    assert verify_webhook(signed(), BODY.encode(), secret=SECRET) == json.loads(BODY)
    assert verify_webhook(signed(), BODY, secret=SECRET)["data"]["state"] == "succeeded"


def test_header_names_are_case_insensitive():
    headers = {name.title(): value for name, value in signed().items()}
    assert verify_webhook(headers, BODY, secret=SECRET)["type"] == "job.succeeded"


def test_both_signatures_of_a_rotation_overlap_verify_with_either_secret():
    headers = signed()
    old = signed(secret=OLD_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert verify_webhook(headers, BODY, secret=SECRET)["type"] == "job.succeeded"
    assert verify_webhook(headers, BODY, secret=OLD_SECRET)["type"] == "job.succeeded"
    # and the reference verifier agrees about the same header
    assert Webhook(OLD_SECRET).verify(BODY, headers)["type"] == "job.succeeded"


@pytest.mark.parametrize("tamper", [
    lambda h, b: (h, b.replace("succeeded", "failed")),                       # body changed
    lambda h, b: (h | {"webhook-id": "msg_2"}, b),                            # id changed
    lambda h, b: (h | {"webhook-signature": "v2," + h["webhook-signature"][3:]}, b),  # unknown version
    lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
])
def test_a_tampered_request_is_refused(tamper):
    headers, body = tamper(signed(), BODY)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, secret=SECRET)


def test_the_wrong_secret_is_refused():
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(signed(), BODY, secret=OLD_SECRET)


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused_even_when_signed(offset_s):
    headers = signed(sent=time.time() + offset_s)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, BODY, secret=SECRET)
    assert verify_webhook(headers, BODY, secret=SECRET, tolerance_s=400)["type"] == "job.succeeded"
