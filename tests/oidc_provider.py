"""An OpenID Connect provider on loopback for the tests, hosted by Authlib (its Flask
authorization server, its authorization code grant with PKCE required, its OpenID Connect code
extension with the nonce required): discovery, a JWKS whose keys rotate when a test says so, a
sign-in page where a person types their username, and the token endpoint. What it checks and
signs is Authlib's; this module only holds its users, its client and its keys.

`tamper_next` makes the next id_token it issues carry a signature that does not verify, as a
token altered on its way would (the provider's own signing is untouched otherwise)."""

import html
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import werkzeug.serving
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey

# Authlib refuses plain http unless told: the provider listens on loopback only.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


@dataclass
class User:
    username: str
    email: str
    groups: list[str] = field(default_factory=list)
    email_verified: bool = True

    @property
    def sub(self) -> str:
        return f"sub-{self.username}"


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope):
        return " ".join(s for s in (scope or "").split() if s in {"openid", "email", "profile"})

    def check_redirect_uri(self, redirect_uri):
        return not self.redirect_uris or redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class Provider:
    """The provider's state: users, one client, the signing keys (newest signs), codes."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.keys: list[RSAKey] = []
        self.issuer = ""
        self.tamper_next = False
        self.rotate()

    def rotate(self, keep_old: bool = True) -> str:
        """A new signing key, published at once; the old ones stay published unless told."""
        key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"},
                                  private=True)
        self.keys = [*self.keys, key] if keep_old else [key]
        return key.kid or ""

    def add_user(self, user: User) -> User:
        self.users[user.username] = user
        return user

    def add_client(self, client: Client) -> Client:
        self.clients[client.client_id] = client
        return client


def flask_app(provider: Provider) -> Flask:
    app = Flask("oidc-provider")
    app.secret_key = secrets.token_bytes(16)

    class AuthorizationCode(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code, req):
            data = req.payload.data
            provider.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri, req.payload.scope,
                                        req.user, data.get("nonce"), data.get("code_challenge"),
                                        data.get("code_challenge_method"))

        def query_authorization_code(self, code, client):
            found = provider.codes.get(code)
            return found if found and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code):
            provider.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return authorization_code.user

    class OpenIdCode(OpenIDCode):
        def exists_nonce(self, nonce, req):
            return False

        def resolve_client_private_key(self, client):
            return provider.keys[-1]

        def get_encode_header(self, client):
            return {"alg": "RS256", "kid": provider.keys[-1].kid}

        def get_client_claims(self, client):
            return {"iss": provider.issuer, "aud": [client.client_id], "exp": int(time.time()) + 300}

        def generate_user_info(self, user, scope):
            return UserInfo(sub=user.sub, email=user.email, email_verified=user.email_verified, groups=user.groups,
                            name=user.username)

        def process_token(self, grant, response):
            token = super().process_token(grant, response)
            if provider.tamper_next and "id_token" in token:
                provider.tamper_next = False
                head, body, signature = token["id_token"].split(".")
                token["id_token"] = f"{head}.{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
            return token

    server = AuthorizationServer(app, query_client=provider.clients.get, save_token=lambda token, req: None)
    server.register_grant(AuthorizationCode, [CodeChallenge(required=True), OpenIdCode(require_nonce=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return jsonify({
            "issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/authorize",
            "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]})

    @app.get("/jwks")
    def jwks():
        return jsonify(KeySet(list(provider.keys)).as_dict(private=False))

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        if request.method == "GET":
            try:
                server.get_consent_grant(end_user=None)
            except Exception as error:  # noqa: BLE001 - the provider's page says what Authlib refused
                return f"<p>refused: {html.escape(str(error))}</p>", 400
            return ("<!doctype html><title>Example identity provider</title><form method=post>"
                    "<label>Username <input name=username></label><button>Sign in</button></form>")
        user = provider.users.get(request.form.get("username", ""))
        return server.create_authorization_response(grant_user=user)

    @app.post("/token")
    def token():
        return server.create_token_response()

    return app


@contextmanager
def provider_on_loopback() -> Iterator[Provider]:
    """The provider, listening on 127.0.0.1 (a port of its own) until the block ends."""
    provider = Provider()
    server = werkzeug.serving.make_server("127.0.0.1", 0, flask_app(provider), threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(5)
