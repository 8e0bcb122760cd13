"""A team in a real headless browser (Debian's chromium, driven by Playwright), against the five
services, a real SMTP server and an OpenID Connect provider on loopback (tests/oidc_provider.py):
an owner, invited by mail, signs in through the provider and invites a developer from the
members page; the developer follows the mailed link, signs in through the provider and makes a
key, which names them as its owner; a viewer is refused every page and action their role does
not allow; the audit log holds who did each of these, from where. Screenshots are saved under
artifacts/console/."""

import json
from collections.abc import Iterator

import httpx
import pytest

from genline_client import Genline
from tests.e2e.conftest import wait_for_audit
from tests.e2e.test_console import PAGE_TIMEOUT_MS, Console, browser, screenshot, tenants  # noqa: F401 (fixtures)
from tests.oidc_provider import Client, Provider, User, provider_on_loopback

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def provider(platform) -> Iterator[Provider]:
    with provider_on_loopback() as running:
        running.add_client(Client("genline-console", "console-client-secret",
                                  [f"{platform.ingest_url}/v1/sso/callback"]))
        for name in ("owner", "dev", "viewer"):
            running.add_user(User(name, f"{name}@example.com"))
        yield running


@pytest.fixture
def people(browser, platform) -> Iterator:  # noqa: F811 (the fixture imported above)
    """`people()`: a browser of a person's own (its cookies are theirs alone)."""
    opened: list[Console] = []

    def person() -> Console:
        opened.append(Console(browser, platform.ingest_url))
        return opened[-1]

    yield person
    for each in opened:
        each.context.close()
    assert not [e for each in opened for e in each.script_errors], "the console's scripts failed"


def sign_in_through_invitation(console, mailbox, email: str, username: str):
    """A new page that follows the invitation mailed to `email` and signs in at the provider."""
    page = console.page()
    page.goto(mailbox.link_to(email))
    page.get_by_test_id("invitation").wait_for()
    page.get_by_role("link", name="Continue with your identity provider").click()
    page.get_by_label("Username").fill(username)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    return page


def in_page_fetch(page, method: str, path: str, body: dict | None = None) -> int:
    """What the API answers the page's own session (its cookie, its CSRF token) for a call."""
    return page.evaluate("""async ([method, path, body]) => {
        const csrf = document.cookie.split('; ').find((c) => c.startsWith('__Host-genline-csrf='));
        const headers = {'Content-Type': 'application/json'};
        if (csrf) headers['X-CSRF-Token'] = csrf.split('=')[1];
        const answer = await fetch(path, {method, headers, body: body ? JSON.stringify(body) : undefined});
        return answer.status;
    }""", [method, path, body])


def test_an_owner_invites_a_developer_who_signs_in_through_the_provider_and_makes_a_key(
        people, tenants, platform, mailbox, provider):  # noqa: F811
    tenant = tenants(1_000)
    configured = tenant.http.put("/v1/sso", json={"issuer": provider.issuer, "client_id": "genline-console",
                                                  "client_secret": "console-client-secret",
                                                  "allowed_domains": ["example.com"]})
    assert configured.status_code == 200, configured.text
    assert tenant.http.post("/v1/invitations", json={"email": "owner@example.com", "role": "owner"}).status_code == 201

    owner = sign_in_through_invitation(people(), mailbox, "owner@example.com", "owner")
    owner.get_by_role("link", name="Members").click()
    owner.get_by_label("Email", exact=True).fill("dev@example.com")
    owner.locator("#invite-role").select_option("developer")
    owner.get_by_role("button", name="Send invitation").click()
    owner.get_by_test_id("invitation-dev@example.com").wait_for()
    screenshot(owner, "teams-owner-members")

    developer = sign_in_through_invitation(people(), mailbox, "dev@example.com", "dev")
    developer.get_by_role("link", name="Account").click()
    developer.get_by_label("Key name").fill("ci")
    developer.get_by_role("button", name="Create key").click()
    secret = developer.get_by_test_id("new-key-secret").inner_text()
    assert secret.startswith("gl_")
    developer.get_by_role("button", name="Done").click()
    developer.get_by_test_id("key-owner").filter(has_text="dev@example.com").wait_for()
    screenshot(developer, "teams-developer-key")
    me = httpx.get(f"{platform.ingest_url}/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert (me["member"]["email"], me["member"]["role"]) == ("dev@example.com", "developer")

    made = wait_for_audit(platform, tenant.id, "api_key.create")
    assert made["actor"] == f"member:{me['member']['id']}"
    assert (made["details"]["actor_email"], made["details"]["origin"]) == ("dev@example.com", "127.0.0.1")
    signed_in = wait_for_audit(platform, tenant.id, "member.sign_in")
    assert signed_in["details"]["method"] == "sso" and signed_in["details"]["origin"] == "127.0.0.1"
    invited = wait_for_audit(platform, tenant.id, "invitation.create")
    assert (invited["details"]["email"], invited["details"]["role"]) == ("dev@example.com", "developer")
    assert invited["actor"].startswith("member:") and invited["details"]["actor_email"] == "owner@example.com"

    owner.goto("/console/audit")
    answer = owner.evaluate("fetch('/v1/audit?action=api_key.create').then(async (r) => [r.status, await r.text()])")
    assert answer[0] == 200 and "api_key.create" in answer[1], answer
    owner.get_by_test_id("audit-api_key.create").first.wait_for()
    screenshot(owner, "teams-audit-log")
    exported = owner.evaluate("fetch('/v1/audit/export').then((r) => r.text())")
    assert exported.startswith("at,actor,email,origin,action") and "api_key.create" in exported


FORBIDDEN_PAGES = ("/console/new", "/console/members", "/console/audit")


def test_a_viewer_is_refused_every_page_and_action_their_role_does_not_allow(people, tenants, mailbox,  # noqa: F811
                                                                              provider, platform):
    tenant = tenants(1_000)
    assert tenant.http.put("/v1/sso", json={"issuer": provider.issuer, "client_id": "genline-console",
                                            "client_secret": "console-client-secret"}).status_code == 200
    with Genline(tenant.api_key, platform.ingest_url) as client:  # the Python client invites as the API does
        invited = client.invite("viewer@example.com", "viewer")
        assert invited["id"] in [i["id"] for i in client.invitations()]
    viewer = sign_in_through_invitation(people(), mailbox, "viewer@example.com", "viewer")

    for name in ("New job", "Members", "Audit log"):
        assert not viewer.locator(".top nav").get_by_role("link", name=name, exact=True).is_visible(), name
    assert not viewer.get_by_role("link", name="New job").is_visible()
    for path in FORBIDDEN_PAGES:
        viewer.goto(path)
        refusal = viewer.get_by_test_id("refused")
        refusal.wait_for(timeout=PAGE_TIMEOUT_MS)
        assert "viewer" in refusal.inner_text()
        screenshot(viewer, f"teams-viewer-refused-{path.rsplit('/', 1)[1]}")
    viewer.goto("/console/account")
    viewer.get_by_test_id("billing-refused").wait_for()
    assert viewer.get_by_role("button", name="Create key").count() == 0
    viewer.get_by_text("Not shown:").first.wait_for()
    screenshot(viewer, "teams-viewer-account")

    forbidden = [("POST", "/v1/api-keys", {"name": "x"}), ("POST", "/v1/jobs", {"prompt": "a cat"}),
                 ("POST", "/v1/billing/checkout", {"pack": "starter"}), ("GET", "/v1/members", None),
                 ("POST", "/v1/invitations", {"email": "x@example.com", "role": "viewer"}), ("GET", "/v1/audit", None)]
    answers = {(method, path): in_page_fetch(viewer, method, path, body) for method, path, body in forbidden}
    assert set(answers.values()) == {403}, json.dumps({f"{m} {p}": s for (m, p), s in answers.items()})
    assert in_page_fetch(viewer, "GET", "/v1/jobs?limit=1") == 200
    with Genline(tenant.api_key, platform.ingest_url) as client:
        viewer_row = next(m for m in client.members() if m["email"] == "viewer@example.com")
        client.remove_member(viewer_row["id"])
    assert in_page_fetch(viewer, "GET", "/v1/jobs?limit=1") == 401  # a removed member's next request
