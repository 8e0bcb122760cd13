"""Payment webhooks' signatures, without I/O: a `t=<unix time>,v1=<hex hmac-sha256>` header
as Stripe signs its webhooks, checked before the ledger grants any credits for a payment.
"""

import hashlib
import hmac


class SignatureError(ValueError):
    pass


def sign_payload(secret: str, timestamp: int, payload: bytes) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(secret: str, header: str | None, payload: bytes, now: float, tolerance_s: int) -> int:
    """Check a `t=<unix time>,v1=<hex hmac-sha256 of "t.payload">` header, as Stripe signs
    webhooks; returns the timestamp. Any v1 may match (secrets rotate)."""
    if not header:
        raise SignatureError("the signature header is missing")
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    signatures = [v for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        raise SignatureError("the signature header must read t=<timestamp>,v1=<signature>")
    timestamp = int(stamps[0])
    expected = sign_payload(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, s.strip()) for s in signatures):
        raise SignatureError("no signature matches the payload")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"the timestamp is more than {tolerance_s}s from now; the event may be replayed")
    return timestamp
