"""Service tokens (services/common/identity.py): what proves a caller, and what does not."""

import time

import pytest

from services.common.identity import (
    MAY_CALL,
    TOKEN_LIFETIME_S,
    Forbidden,
    ServiceSigner,
    ServiceVerifier,
    Unauthenticated,
    _b64,
    new_service_key,
)

KEYS = {name: new_service_key() for name in ("ingest", "router", "delivery")}
PUBLIC = {name: public for name, (_, public) in KEYS.items()}


def signer(name: str) -> ServiceSigner:
    return ServiceSigner(name, KEYS[name][0])


def verifier(service: str = "delivery") -> ServiceVerifier:
    return ServiceVerifier.of(service, PUBLIC)


def test_a_token_proves_its_signer_to_its_audience():
    assert verifier().caller(signer("ingest").authorization("delivery")) == "ingest"
    assert verifier().authorize(signer("ingest").authorization("delivery"), "webhooks") == "ingest"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic abc", "Bearer x", "Bearer a.b.c", "Bearer e30.AA"])
def test_what_is_not_a_token_is_unauthenticated(authorization):
    with pytest.raises(Unauthenticated):
        verifier().caller(authorization)


def test_a_token_for_another_service_or_from_another_key_is_unauthenticated():
    with pytest.raises(Unauthenticated, match="for 'router'"):
        verifier().caller(signer("ingest").authorization("router"))
    impostor = ServiceSigner("ingest", new_service_key()[0])
    with pytest.raises(Unauthenticated, match="signature"):
        verifier().caller(impostor.authorization("delivery"))
    claims, signature = signer("router").token("delivery").split(".")
    swapped = signer("ingest").token("delivery").split(".")[0]
    with pytest.raises(Unauthenticated, match="signature"):
        verifier().caller(f"Bearer {swapped}.{signature}")
    assert claims != swapped


def test_an_unknown_service_is_unauthenticated():
    stranger = ServiceSigner("billing", new_service_key()[0])
    with pytest.raises(Unauthenticated, match="unknown service"):
        verifier().caller(stranger.authorization("delivery"))


def test_tokens_expire_and_are_renewed_before(monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = signer("ingest").token("delivery")
    one = signer("ingest")
    assert one.token("delivery") == one.token("delivery")  # reused while good
    clock[0] += TOKEN_LIFETIME_S + 31
    with pytest.raises(Unauthenticated, match="expired"):
        verifier().caller(f"Bearer {first}")
    renewed = one.token("delivery")
    assert verifier().caller(f"Bearer {renewed}") == "ingest"


def test_a_long_lived_token_is_refused_even_when_signed():
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from services.common.identity import _unb64
    key = Ed25519PrivateKey.from_private_bytes(_unb64(KEYS["ingest"][0]))
    now = int(time.time())
    claims = _b64(json.dumps({"iss": "ingest", "aud": "delivery", "iat": now, "exp": now + 86400}).encode())
    with pytest.raises(Unauthenticated, match="expired or is not valid yet"):
        verifier().caller(f"Bearer {claims}.{_b64(key.sign(claims.encode()))}")


def test_a_proven_service_without_business_there_is_forbidden():
    assert "router" not in MAY_CALL["delivery"]["webhooks"]
    with pytest.raises(Forbidden, match="router may not call delivery's webhooks"):
        verifier().authorize(signer("router").authorization("delivery"), "webhooks")
    with pytest.raises(Forbidden):
        verifier().authorize(signer("ingest").authorization("delivery"), "something-else")
