"""Callbacks signed as the providers sign them, for the simulators and the route's tests:
Replicate's Standard Webhooks (by the reference signer, `standardwebhooks`), fal's Ed25519 over
`request_id\\nuser_id\\ntimestamp\\nsha256-hex(body)` with the public key in a JWKS document
(https://docs.fal.ai/model-endpoints/webhooks, "Verifying Your Webhook")."""

import base64
import hashlib
import time
import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook


def replicate_signed(body: bytes, secret: str, when: float | None = None) -> dict[str, str]:
    """The headers Replicate sends, signed by the Standard Webhooks reference signer."""
    stamp = datetime.fromtimestamp(int(when or time.time()), UTC)
    webhook_id = f"msg_{uuid.uuid4().hex}"
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, stamp, body.decode()),
            "content-type": "application/json"}


def fal_signed(key: Ed25519PrivateKey, body: bytes, request_id: str = "req-1", when: float | None = None) -> dict:
    timestamp = str(int(when or time.time()))
    message = "\n".join([request_id, "user-1", timestamp, hashlib.sha256(body).hexdigest()]).encode()
    return {"x-fal-webhook-request-id": request_id, "x-fal-webhook-user-id": "user-1",
            "x-fal-webhook-timestamp": timestamp, "x-fal-webhook-signature": key.sign(message).hex()}


def jwks_of(key: Ed25519PrivateKey) -> dict:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "1",
                      "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")}]}
