"""Providers' callbacks: verified, then they wake the poller of their remote job.

A provider configured with `webhooks` is asked to call back when a job ends (Replicate's
`webhook`, fal's `fal_webhook`). The router's webhook route hands each callback to its
adapter, which checks the signature and names the remote job; `WebhookInbox` then wakes
whoever waits on that job, which polls at once. Polling stays the source of truth: a
callback only shortens the wait, so a forged, lost or repeated one changes no outcome.

Signatures, as the providers publish them:

* Replicate: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
  `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, keyed with the base64 of the account's
  `whsec_…` signing secret);
* fal: Ed25519 over `request_id\\nuser_id\\ntimestamp\\nsha256-hex(body)`
  (`x-fal-webhook-request-id`, `-user-id`, `-timestamp`, `-signature` in hex), checked
  against the keys of fal's JWKS document.

Both refuse a timestamp more than five minutes from now.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TOLERANCE_S = 300


class WebhookRejected(Exception):
    """The callback is not signed by the provider (or not recently): it is ignored."""


class WebhookInbox:
    """Remote jobs waited on, by provider and remote id; a verified callback wakes the waiter."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    async def wait(self, provider: str, remote_id: str, *, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a callback about the job; whether one came."""
        event = self._events.setdefault((provider, remote_id), asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            event.clear()

    def forget(self, provider: str, remote_id: str) -> None:
        self._events.pop((provider, remote_id), None)

    def notify(self, provider: str, remote_id: str) -> None:
        # Kept until the job's poller forgets it: a callback between two polls is not lost.
        self._events.setdefault((provider, remote_id), asyncio.Event()).set()


def verify_standard_webhook(secret: str, headers: Mapping[str, str], *, body: bytes) -> None:
    """Standard Webhooks, as Replicate signs its callbacks."""
    webhook_id, timestamp, signatures = (headers.get(name) for name in
                                         ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (webhook_id and timestamp and signatures):
        raise WebhookRejected("webhook-id, webhook-timestamp and webhook-signature are required")
    _recent(timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.partition(",")[2] for part in signatures.split()]
    if not any(hmac.compare_digest(expected, signature) for signature in offered):
        raise WebhookRejected("no webhook-signature matches")


def verify_fal_webhook(public_keys: list[bytes], headers: Mapping[str, str], *, body: bytes) -> None:
    """fal's Ed25519 signature, against the raw keys of its JWKS document."""
    parts = [headers.get(f"x-fal-webhook-{name}") for name in ("request-id", "user-id", "timestamp", "signature")]
    request_id, user_id, timestamp, signature_hex = parts
    if not (request_id and user_id and timestamp and signature_hex):
        raise WebhookRejected("x-fal-webhook-request-id, -user-id, -timestamp and -signature are required")
    _recent(timestamp)
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise WebhookRejected("x-fal-webhook-signature is not hex") from None
    for raw in public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
            return
        except (InvalidSignature, ValueError):
            continue
    raise WebhookRejected("no key of fal's JWKS verifies the signature")


def callback_json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise WebhookRejected("the callback is not JSON") from None
    if not isinstance(parsed, dict):
        raise WebhookRejected("the callback is not a JSON object")
    return parsed


def jwks_ed25519_keys(document: object) -> list[bytes]:
    """The raw Ed25519 public keys (OKP, crv Ed25519) of a JWKS document."""
    keys = document.get("keys", []) if isinstance(document, dict) else []
    return [_b64url(key["x"]) for key in keys
            if isinstance(key, dict) and key.get("crv") == "Ed25519" and isinstance(key.get("x"), str)]


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _recent(timestamp: str) -> None:
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookRejected("the timestamp is not a number of seconds") from None
    if abs(time.time() - sent) > TOLERANCE_S:
        raise WebhookRejected("the timestamp is more than five minutes from now")
