"""Service identity: every internal call says which service makes it, and proves it.

The network is not a credential. Each service holds an Ed25519 private key of its own
(`GENLINE_SERVICE_KEY`, from a Secret only it mounts) and the public keys of the services
(`GENLINE_SERVICE_KEYS`, name to key: public, a ConfigMap). An internal call carries
`Authorization: Bearer <token>` (HTTP) or the same `authorization` metadata (gRPC), where the
token is `base64url(claims).base64url(signature)` and the claims name the caller (`iss`),
the service called (`aud`), and when the token was made and stops being good (`iat`, `exp`:
five minutes). A caller signs one token per service it calls and reuses it until a minute
before it expires, so a call costs no signature.

The service called checks, in this order: a token at all (else 401 / UNAUTHENTICATED), a
caller it knows, the signature, itself as the audience, the time (401 for any of these);
then `MAY_CALL`, the one table of who may call what (else 403 / PERMISSION_DENIED).

Why signed tokens and not mutual TLS: they work the same over HTTP and gRPC, through any
proxy, ingress or mesh, need no certificate authority or rotation machinery in the cluster,
and are tested for real on the embedded stack; a service holds only its own private key, so
no service can speak for another (a shared secret per pair would let either impersonate the
other). Where a mesh adds mutual TLS underneath, both hold.
"""

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# The services that call each other, each with a key of its own.
INTERNAL_SERVICES = ("ingest", "ledger", "router", "scorer", "delivery")

TOKEN_LIFETIME_S = 300
# A token is signed anew this long before it expires, and a clock this far ahead is forgiven.
RENEW_BEFORE_S = 60
CLOCK_SKEW_S = 30

# Who may call what: service called → what it serves internally → the services allowed.
MAY_CALL: dict[str, dict[str, frozenset[str]]] = {
    # Ingest's data-key API: those who open a job's sealed content.
    "ingest": {"data-keys": frozenset({"router", "scorer", "delivery"})},
    # The ledger's gRPC: balances, quotes and entries for ingest's public API. gRPC server
    # reflection (grpcurl and the like) describes an API to any proven service.
    "ledger": {"genline.ledger.v1.LedgerService": frozenset({"ingest"}),
               # Its billing API: checkouts and auto top-up rules, for ingest's /v1/billing.
               "billing": frozenset({"ingest"}),
               # A tenant's own audit trail, for ingest's /v1/audit (owners and admins).
               "audit": frozenset({"ingest"}),
               # Its evaluation charges: images scored on their own, for ingest's /v1/evaluations.
               "evaluations": frozenset({"ingest"}),
               "grpc.reflection.v1alpha.ServerReflection": frozenset(INTERNAL_SERVICES)},
    # The router's gRPC: providers' state for ingest's operator view.
    "router": {"genline.router.v1.RouterService": frozenset({"ingest"}),
               "grpc.reflection.v1alpha.ServerReflection": frozenset(INTERNAL_SERVICES)},
    # The scorer's internal API: input photos measured, thresholds calibrated, for ingest.
    "scorer": {"measurements": frozenset({"ingest"}), "calibration": frozenset({"ingest"}),
               "evaluations": frozenset({"ingest"})},
    # Delivery's webhook endpoints, secrets and attempts, for ingest's public routes.
    "delivery": {"webhooks": frozenset({"ingest"})},
}


class Unauthenticated(Exception):
    """No token, or one that does not prove who sent it (HTTP 401, gRPC UNAUTHENTICATED)."""


class Forbidden(Exception):
    """A service proven, calling what it has no business with (HTTP 403, gRPC PERMISSION_DENIED)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_service_key() -> tuple[str, str]:
    """A new key pair: (private seed, public key), each base64url."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    return _b64(seed), public_key_of(_b64(seed))


def public_key_of(seed: str) -> str:
    public = Ed25519PrivateKey.from_private_bytes(_unb64(seed)).public_key()
    return _b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def valid_public_key(key: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(_unb64(key))
    except ValueError:
        return False
    return True


class ServiceSigner:
    """Makes this service's tokens, one per audience, renewed before they expire."""

    def __init__(self, service: str, seed: str) -> None:
        self.service, self._key = service, Ed25519PrivateKey.from_private_bytes(_unb64(seed))
        self._tokens: dict[str, tuple[str, float]] = {}

    def token(self, audience: str) -> str:
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and cached[1] - RENEW_BEFORE_S > now:
            return cached[0]
        expires = now + TOKEN_LIFETIME_S
        claims = _b64(json.dumps({"iss": self.service, "aud": audience, "iat": int(now), "exp": int(expires)},
                                 separators=(",", ":")).encode())
        token = f"{claims}.{_b64(self._key.sign(claims.encode()))}"
        self._tokens[audience] = (token, expires)
        return token

    def authorization(self, audience: str) -> str:
        return f"Bearer {self.token(audience)}"


@dataclass(frozen=True)
class ServiceVerifier:
    """Checks the tokens of calls to `service`, against the callers' public keys."""

    service: str
    public_keys: dict[str, Ed25519PublicKey]

    @classmethod
    def of(cls, service: str, public_keys: dict[str, str]) -> "ServiceVerifier":
        return cls(service, {name: Ed25519PublicKey.from_public_bytes(_unb64(key)) for name, key in public_keys.items()})

    def caller(self, authorization: str | None) -> str:
        """The proven caller of a call with this `Authorization` value; Unauthenticated if none."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("an internal call must carry a service token ('Authorization: Bearer <token>')")
        try:
            claims_part, signature = token.strip().split(".")
            claims = json.loads(_unb64(claims_part))
            issuer = claims["iss"]
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("the service token is malformed") from None
        key = self.public_keys.get(issuer) if isinstance(issuer, str) else None
        if key is None:
            raise Unauthenticated(f"the service token names an unknown service {issuer!r}")
        try:
            key.verify(_unb64(signature), claims_part.encode())
        except (InvalidSignature, ValueError):
            raise Unauthenticated(f"the service token's signature is not {issuer}'s") from None
        self._check_claims(claims)
        return str(issuer)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("aud") != self.service:
            raise Unauthenticated(f"the service token is for {claims.get('aud')!r}, not {self.service}")
        now = time.time()
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int | float) or not isinstance(issued, int | float):
            raise Unauthenticated("the service token has no valid times")
        if expires < now - CLOCK_SKEW_S or issued > now + CLOCK_SKEW_S or expires - issued > TOKEN_LIFETIME_S:
            raise Unauthenticated("the service token has expired or is not valid yet")

    def authorize(self, authorization: str | None, capability: str) -> str:
        """The proven caller, once it may use `capability` of this service; else Unauthenticated or Forbidden."""
        caller = self.caller(authorization)
        if caller not in MAY_CALL.get(self.service, {}).get(capability, frozenset()):
            raise Forbidden(f"{caller} may not call {self.service}'s {capability}")
        return caller
