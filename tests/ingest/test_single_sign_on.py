"""Single sign-on through an OpenID Connect provider on loopback (Authlib's authorization
server, PKCE and nonce required; tests/oidc_provider.py), against ingest on the real database:
a sign-in goes to the provider and back with a session; people join just in time with the role
their groups map to, or only by invitation; addresses of other domains are refused; a callback
replayed, an id_token tampered with, expired, for another client or another sign-in are
refused; a key the provider rotated in is accepted."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt

from services.common import targets
from services.ingest.accounts.tenants import Tenant, create_tenant
from services.ingest.members import oidc
from services.ingest.members.links import LinkSigner
from tests.ingest.teams import Team, session_of, team_on
from tests.mailbox import smtp_server
from tests.oidc_provider import Client, Provider, User, provider_on_loopback

pytestmark = pytest.mark.processes
CALLBACK = "http://testserver/v1/sso/callback"
BINDING = "__Host-genline-sso"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with provider_on_loopback() as running:
        running.add_client(Client("genline", "client-secret-for-tests", [CALLBACK]))
        yield running


@pytest.fixture(scope="module")
def team(endpoints, provider) -> Iterator[Team]:
    with smtp_server() as mailbox:
        yield from team_on(endpoints, mailbox)


@pytest.fixture(scope="module")
def configured(team, provider) -> Team:
    answer = team.client.put("/v1/sso", headers=team.operator, json={
        "issuer": provider.issuer, "client_id": "genline", "client_secret": "client-secret-for-tests",
        "allowed_domains": ["example.com"], "group_roles": {"eng": "developer", "finance": "billing"},
        "just_in_time": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["redirect_uri"] == CALLBACK and "client_secret" not in answer.json()
    return team


def begin(team: Team, **params) -> tuple[str, str]:
    """Start a sign-in: the provider's authorization URL, and the browser's binding cookie."""
    started = team.client.get(f"/v1/sso/{team.tenant_id}/start", params=params, follow_redirects=False)
    assert started.status_code == 303, started.text
    binding = next(h.split(";")[0] for h in started.headers.get_list("set-cookie") if h.startswith("__Host-genline-sso"))
    return started.headers["location"], binding


def at_provider(authorize_url: str, username: str) -> str:
    """Sign in at the provider's page as `username`: where it sends the browser back."""
    with httpx.Client(timeout=10) as browser:
        assert browser.get(authorize_url).status_code == 200
        answer = browser.post(authorize_url, data={"username": username})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def come_back(team: Team, callback_url: str, binding: str) -> httpx.Response:
    parts = urlsplit(callback_url)
    return team.client.get(f"{parts.path}?{parts.query}", headers={"Cookie": binding}, follow_redirects=False)


def sign_in(team: Team, username: str, **params) -> httpx.Response:
    url, binding = begin(team, **params)
    return come_back(team, at_provider(url, username), binding)


def refusal(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert location.path == "/console/sign-in", answer.headers["location"]
    return parse_qs(location.query)["error"][0]


def test_the_authorization_request_carries_pkce_state_and_nonce(configured):
    url, _ = begin(configured)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0] and query["redirect_uri"] == [CALLBACK]


def test_a_person_joins_just_in_time_with_the_role_their_groups_map_to(configured, provider):
    provider.add_user(User("ada", "ada@example.com", groups=["eng", "everyone"]))
    answer = sign_in(configured, "ada", return_to="/console/account")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/account", answer.text
    me = session_of(configured.client, answer).get("/v1/me").json()
    assert (me["member"]["email"], me["member"]["role"], me["member"]["signs_in_with_provider"]) == (
        "ada@example.com", "developer", True)


def test_without_a_mapped_group_or_default_role_a_stranger_is_refused(configured, provider):
    provider.add_user(User("eve", "eve@example.com", groups=["visitors"]))
    assert refusal(sign_in(configured, "eve")) == "sso-not-a-member"
    provider.add_user(User("mallory", "mallory@elsewhere.test", groups=["eng"]))
    assert refusal(sign_in(configured, "mallory")) == "sso-domain-refused"


def test_an_invitation_is_accepted_through_the_provider_by_the_invited_address_only(configured, provider):
    provider.add_user(User("bob", "bob@example.com"))
    provider.add_user(User("carol", "carol@example.com"))
    assert configured.invite("bob@example.com", "admin").status_code == 201
    token = configured.token_mailed_to("bob@example.com")
    assert configured.client.post("/v1/invitation-links/lookup", json={"token": token}).json()["sso"] is True
    assert refusal(sign_in(configured, "carol", invitation=token)) == "invitation-for-another"
    answer = sign_in(configured, "bob", invitation=token)
    assert session_of(configured.client, answer).get("/v1/me").json()["member"]["role"] == "admin"


def test_a_replayed_callback_and_a_callback_from_another_browser_are_refused(configured, provider):
    provider.add_user(User("dan", "dan@example.com", groups=["finance"]))
    url, binding = begin(configured)
    callback = at_provider(url, "dan")
    assert refusal(come_back(configured, callback, "__Host-genline-sso=someone-else")) == "sso-state-refused"
    url, binding = begin(configured)
    callback = at_provider(url, "dan")
    assert come_back(configured, callback, binding).headers["location"] == "/console/jobs"
    assert refusal(come_back(configured, callback, binding)) == "sso-state-refused"


def test_a_tampered_id_token_is_refused(configured, provider):
    provider.add_user(User("trudy", "trudy@example.com", groups=["eng"]))
    provider.tamper_next = True
    assert refusal(sign_in(configured, "trudy")) == "sso-token-refused"
    assert sign_in(configured, "trudy").headers["location"] == "/console/jobs"  # the same person, untampered


def test_a_key_the_provider_rotated_in_is_accepted(configured, provider):
    provider.add_user(User("rota", "rota@example.com", groups=["eng"]))
    assert sign_in(configured, "rota").headers["location"] == "/console/jobs"  # the key set is now cached
    provider.rotate(keep_old=False)
    assert sign_in(configured, "rota").headers["location"] == "/console/jobs"


def signed(provider: Provider, **claims) -> str:
    """An id_token of `claims` over good ones; times are seconds from now (`iat: -7200`), read
    when the token is signed, so a slow run does not age them."""
    now = int(time.time())
    body = {"iss": provider.issuer, "aud": ["genline"], "sub": "sub-x", "iat": now, "exp": now + 300,
            "nonce": "n-1"} | {name: now + value if name in ("iat", "exp") else value for name, value in claims.items()}
    key = provider.keys[-1]
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


@pytest.mark.parametrize(("claims", "why"), [
    ({"exp": -3600}, "exp"),
    ({"aud": ["another-client"]}, "aud"),
    ({"iss": "http://127.0.0.1:9/elsewhere"}, "iss"),
    ({"nonce": "another-sign-in"}, "nonce"),
    ({"iat": -7200, "exp": 60}, "too long ago"),
])
def test_an_id_token_for_another_client_sign_in_issuer_or_time_is_refused(provider, claims, why):
    async def check() -> None:
        async with httpx.AsyncClient() as http:
            providers = oidc.OidcClient(http=http, cache_s=60, guard=targets.Guard.of(
                targets.Purpose.IDENTITY_PROVIDERS, ["127.0.0.0/8"]))
            metadata = await providers.metadata(provider.issuer)
            expected = oidc.Expected(provider.issuer, "genline", "n-1")
            assert (await providers.verified_claims(metadata, signed(provider), expected=expected))["sub"] == "sub-x"
            with pytest.raises(oidc.OidcError, match=why):
                await providers.verified_claims(metadata, signed(provider, **claims), expected=expected)

    import asyncio
    asyncio.run(check())


def test_the_provider_refuses_a_code_redeemed_without_the_pkce_verifier(configured, provider):
    provider.add_user(User("pat", "pat@example.com", groups=["eng"]))
    url, _ = begin(configured)
    code = parse_qs(urlsplit(at_provider(url, "pat")).query)["code"][0]
    refused = httpx.post(f"{provider.issuer}/token", auth=("genline", "client-secret-for-tests"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", refused.text


def test_a_provider_on_a_network_not_allowed_is_refused(team, provider):
    """An owner names the issuer, so it must be public unless the deployment allows its network."""
    async def check() -> None:
        async with httpx.AsyncClient() as http:
            with pytest.raises(oidc.OidcError, match="cannot be reached"):
                await oidc.OidcClient(http=http, cache_s=60).metadata(provider.issuer)

    import asyncio
    asyncio.run(check())


def members_of(team: Team, tenant_id: str) -> list[tuple[str, str]]:
    return team.sql("SELECT email, role FROM members WHERE tenant_id = %s AND removed_at IS NULL ORDER BY email",
                    [tenant_id])


def test_an_invitation_is_accepted_only_through_its_own_tenants_sign_in(configured, provider):
    """Any tenant's owner controls an identity provider of their own (here `configured`'s): another
    tenant's invitation, followed through that sign-in by someone the provider says has the invited
    address, is refused there, and the other tenant gains no member."""
    other_id = f"o-{uuid.uuid4().hex[:8]}"
    other_key = asyncio.run(create_tenant(configured.settings, Tenant(other_id, plan="enterprise")))
    invited = configured.client.post("/v1/invitations", json={"email": "their-admin@example.com", "role": "admin"},
                                     headers={"Authorization": f"Bearer {other_key}"})
    assert invited.status_code == 201, invited.text
    token = configured.token_mailed_to("their-admin@example.com")
    provider.add_user(User("posing", "their-admin@example.com"))
    before = members_of(configured, other_id)

    started = configured.client.get(f"/v1/sso/{configured.tenant_id}/start", params={"invitation": token},
                                    follow_redirects=False)
    if started.status_code == 303:  # the sign-in began: see it through, as the attacker would
        binding = next(h.split(";")[0] for h in started.headers.get_list("set-cookie") if h.startswith(BINDING))
        came_back = come_back(configured, at_provider(started.headers["location"], "posing"), binding)
        raise AssertionError(f"another tenant's invitation began a sign-in here; it ended at"
                             f" {came_back.headers.get('location')} and {other_id} now has {members_of(configured, other_id)}")
    assert started.status_code == 404 and started.json()["type"] == "/problems/invitation-not-found", started.text
    assert members_of(configured, other_id) == before
    looked = configured.client.post("/v1/invitation-links/lookup", json={"token": token})
    assert looked.status_code == 200 and looked.json()["tenant_id"] == other_id  # still open, for its own tenant


def test_a_link_of_one_purpose_is_refused_for_another(configured, provider):
    """A sign-in link is no invitation, and an invitation no sign-in link."""
    linked_team_token = configured.client.post("/v1/invitations", headers=configured.operator,
                                               json={"email": "purpose@example.com", "role": "viewer"})
    assert linked_team_token.status_code == 201
    invitation = configured.token_mailed_to("purpose@example.com")
    redeemed = configured.client.post("/v1/sessions/email-link/redeem", json={"token": invitation})
    assert redeemed.status_code == 404 and redeemed.json()["type"] == "/problems/sign-in-link-not-found"
    signer = LinkSigner(configured.settings.member_link_key.get_secret_value().encode())
    sign_in_link = signer.sign("sign-in", time.time() + 600)
    started = configured.client.get(f"/v1/sso/{configured.tenant_id}/start", params={"invitation": sign_in_link},
                                    follow_redirects=False)
    assert started.status_code == 404 and started.json()["type"] == "/problems/invitation-not-found", started.text
