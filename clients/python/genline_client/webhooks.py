"""Verify a webhook from Genline, per the Standard Webhooks specification.

The sender signs `"{webhook-id}.{webhook-timestamp}.{body}"` with HMAC-SHA256 under the
endpoint's secret (`whsec_` + base64 key) and sends `webhook-signature: v1,<base64> …`,
one signature per secret it holds (two while a rotated secret overlaps). A request is
genuine when any `v1` signature matches and its timestamp is within the tolerance of now,
which keeps a captured request from being replayed later.
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from genline_client.errors import GenlineError

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 5 * 60


class WebhookVerificationError(GenlineError):
    """The request is not a genuine, fresh webhook from Genline: do not act on it."""


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str,
                   tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None) -> dict:
    """The webhook's JSON payload when its signature and timestamp check out; otherwise
    `WebhookVerificationError`. `body` must be the raw body as received, not re-serialised."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id, timestamp, signatures = (_header(lowered, name) for name in ("id", "timestamp", "signature"))
    _check_timestamp(timestamp, tolerance_s, now=time.time() if now is None else now)
    payload = body if isinstance(body, bytes) else body.encode()
    expected = sign(secret, message_id, timestamp=int(timestamp), body=payload)
    if not any(hmac.compare_digest(expected, candidate) for candidate in _v1_signatures(signatures)):
        raise WebhookVerificationError("no matching signature")
    try:
        return json.loads(payload)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The base64 HMAC-SHA256 signature of one message (without its `v1,` prefix)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not 'whsec_' followed by base64") from None


def _header(headers: dict[str, str], name: str) -> str:
    # `svix-*` is the same scheme under its original vendor's names.
    value = headers.get(f"webhook-{name}") or headers.get(f"svix-{name}")
    if not value:
        raise WebhookVerificationError(f"missing webhook-{name} header")
    return value


def _check_timestamp(timestamp: str, tolerance_s: int, *, now: float) -> None:
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    if sent < now - tolerance_s:
        raise WebhookVerificationError("the message is too old")
    if sent > now + tolerance_s:
        raise WebhookVerificationError("the message's timestamp is in the future")


def _v1_signatures(header: str) -> list[str]:
    versioned = (part.partition(",") for part in header.split())
    return [signature for version, _, signature in versioned if version == "v1"]
