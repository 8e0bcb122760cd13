"""The console's side of OpenID Connect (the relying party): the provider's discovery document,
its signing keys (JWKS), the authorization code flow with PKCE (S256), and the id_token
checked with joserfc: signature by a key of the provider's set (fetched again once when a token
names a key not yet seen, which is how providers rotate keys), then issuer, audience, expiry,
issue time and the nonce of this very sign-in. Nothing here is kept in the database; the
documents are cached for `cache_s`."""

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from services.common import targets

# What a provider may sign id_tokens with; never `none`, never a symmetric key the client also holds.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_S = 60  # clocks differ a little
MAX_TOKEN_AGE_S = 600  # an id_token issued longer ago than this is not a fresh sign-in


class OidcError(Exception):
    """The provider could not be used, or what it sent back is not to be trusted."""


@dataclass(frozen=True, kw_only=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, kw_only=True)
class Client:
    """The tenant's registration at its provider."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str  # where the provider sends the browser back: registered with it


@dataclass(frozen=True)
class Pkce:
    """One sign-in's secrets: state (ties the answer to this browser's attempt), nonce (ties
    the id_token to it), and the PKCE verifier (only this client can redeem the code)."""

    state: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))

    @property
    def challenge(self) -> str:
        sha = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(sha).rstrip(b"=").decode()


@dataclass(frozen=True)
class Expected:
    """What an id_token must say: who issued it, for which client, for which sign-in."""

    issuer: str
    client_id: str
    nonce: str


def authorization_url(metadata: Metadata, client: Client, *, pkce: Pkce) -> str:
    query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
             "scope": "openid email profile", "state": pkce.state, "nonce": pkce.nonce,
             "code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    separator = "&" if "?" in metadata.authorization_endpoint else "?"
    return f"{metadata.authorization_endpoint}{separator}{urlencode(query)}"


def check_claims(claims: dict[str, Any], expected: Expected, *, now: float) -> None:
    """Issuer, audience (and the authorized party when there are several), expiry, issue time and nonce."""
    registry = jwt.JWTClaimsRegistry(now=int(now), leeway=LEEWAY_S, iss={"essential": True, "value": expected.issuer},
                                     aud={"essential": True, "value": expected.client_id}, exp={"essential": True},
                                     iat={"essential": True}, sub={"essential": True},
                                     nonce={"essential": True, "value": expected.nonce})
    try:
        registry.validate(claims)
    except JoseError as error:
        raise OidcError(f"the id_token was refused: {error.error} {error.description or ''}".strip()) from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != expected.client_id:
        raise OidcError("the id_token names several audiences and another authorized party")
    if claims["iat"] < now - MAX_TOKEN_AGE_S:
        raise OidcError("the id_token was issued too long ago")


@dataclass(kw_only=True)
class OidcClient:
    """Talks to identity providers over `http`, keeping their documents for `cache_s`."""

    http: httpx.AsyncClient
    cache_s: float
    # A tenant names its issuer, so every call goes through the identity providers' guard:
    # public addresses, and the networks opened for them alone; pinned; no redirect.
    guard: targets.Guard = field(default_factory=lambda: targets.Guard(purpose=targets.Purpose.IDENTITY_PROVIDERS))
    _documents: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    async def _get(self, url: str, fresh: bool = False) -> dict[str, Any]:
        cached = self._documents.get(url)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        status, document = await self._call("GET", url, headers={"Accept": "application/json"})
        if status != 200:
            raise OidcError(f"the identity provider did not answer {url[:200]}: HTTP {status}")
        if not isinstance(document, dict):
            raise OidcError(f"the identity provider's {url} is not a JSON object")
        self._documents[url] = (time.monotonic() + self.cache_s, document)
        return document

    async def _call(self, method: str, url: str, **sent: Any) -> tuple[int, Any]:
        """The status and JSON body (None when it is not JSON) of one call, through the guard;
        OidcError when the provider may not be reached."""
        try:
            async with self.guard.stream(method, url, http=self.http, **sent) as response:
                body = await response.aread()
        except (targets.RefusedTarget, ValueError, OSError) as refused:  # a name that cannot even be looked up too
            raise OidcError(f"the identity provider cannot be reached at {url[:200]!r}: {refused}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise OidcError(f"the identity provider did not answer {url[:200]}: {type(error).__name__}") from None
        try:
            return response.status_code, json.loads(body)
        except ValueError:
            return response.status_code, None

    async def metadata(self, issuer: str) -> Metadata:
        """The provider's discovery document, which must name the issuer it was asked for."""
        document = await self._get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        try:
            metadata = Metadata(issuer=document["issuer"], authorization_endpoint=document["authorization_endpoint"], token_endpoint=document["token_endpoint"],
                                jwks_uri=document["jwks_uri"])
        except KeyError as missing:
            raise OidcError(f"the provider's discovery document has no {missing}") from None
        if metadata.issuer != issuer:
            raise OidcError(f"the provider calls itself {metadata.issuer!r}, not {issuer!r}")
        methods = document.get("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            raise OidcError("the provider does not take PKCE with S256")
        return metadata

    async def redeem(self, redemption: "CodeRedemption") -> str:
        """The id_token the provider gives for the code (client_secret_basic, with the PKCE verifier)."""
        r = redemption
        form = {"grant_type": "authorization_code", "code": r.code, "redirect_uri": r.client.redirect_uri,
                "code_verifier": r.verifier, "client_id": r.client.client_id}
        status, answer = await self._call("POST", r.metadata.token_endpoint, form=form,
                                          auth=(r.client.client_id, r.client.client_secret))
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("id_token"), str):
            said = answer.get("error", status) if isinstance(answer, dict) else status
            raise OidcError(f"the identity provider did not redeem the code ({said})")
        return str(answer["id_token"])

    async def verified_claims(self, metadata: Metadata, id_token: str, *, expected: Expected) -> dict[str, Any]:
        """The id_token's claims, once its signature and claims are checked; OidcError else."""
        keys = KeySet.import_key_set(await self._get(metadata.jwks_uri))  # type: ignore[arg-type]
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # a key made since the set was read: the provider rotated
                keys = KeySet.import_key_set(await self._get(metadata.jwks_uri, fresh=True))  # type: ignore[arg-type]
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise OidcError(f"the id_token's signature was refused: {type(error).__name__}") from None
        check_claims(dict(token.claims), expected, now=time.time())
        return dict(token.claims)


@dataclass(frozen=True, kw_only=True)
class CodeRedemption:
    """A token request: the code the provider sent back, redeemed with the verifier of the
    sign-in that began it."""

    metadata: Metadata
    client: Client
    code: str
    verifier: str
