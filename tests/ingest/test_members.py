"""A tenant's members on the real database, broker and a real SMTP server on loopback:
invitations mailed and accepted into their role, once; the last owner kept; roles given only
within one's own; keys owned by members, managed by their owners, dying with them unless moved;
sessions that end (idle, absolute, sign-out, sign-out everywhere, a role change, a removal)
and refuse a change without their CSRF token."""

import json
from collections.abc import Iterator

import pytest

from services.common.contracts import AuditRecorded
from services.ingest.session_auth import SESSION_COOKIE
from tests.ingest.teams import Team, session_of, team_on
from tests.mailbox import Mailbox, smtp_server
from tests.polling import until

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="module")
def team(endpoints, mailbox) -> Iterator[Team]:
    yield from team_on(endpoints, mailbox)


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"/problems/{slug}", response.text
    return response.json()


def test_an_invitation_is_mailed_signed_and_accepted_once_into_its_role(team):
    invited = team.invite("Dev.One@Example.com", "developer")
    assert invited.status_code == 201, invited.text
    assert invited.json()["mailed"] is True and invited.json()["email"] == "dev.one@example.com"
    message = team.mailbox.wait_for("dev.one@example.com")
    assert team.tenant_id in message["Subject"]
    token = team.token_mailed_to("dev.one@example.com")

    looked = team.client.post("/v1/invitation-links/lookup", json={"token": token}).json()
    assert (looked["tenant_id"], looked["role"], looked["sso"]) == (team.tenant_id, "developer", False)
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert_problem(team.client.post("/v1/invitation-links/accept", json={"token": forged}), 404, "invitation-not-found")

    accepted = team.client.post("/v1/invitation-links/accept", json={"token": token})
    assert accepted.status_code == 201, accepted.text
    cookie = next(h for h in accepted.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/")), cookie
    me = session_of(team.client, accepted).get("/v1/me").json()
    assert (me["via"], me["member"]["role"], me["member"]["email"]) == ("session", "developer", "dev.one@example.com")
    assert "keys:manage" in me["scopes"] and "members:manage" not in me["scopes"]

    again = team.client.post("/v1/invitation-links/accept", json={"token": token})
    assert_problem(again, 404, "invitation-not-found")


def test_a_revoked_invitation_no_longer_works_and_open_ones_are_listed(team):
    team.invite("gone@example.com", "viewer")
    token = team.token_mailed_to("gone@example.com")
    listed = team.client.get("/v1/invitations", headers=team.operator).json()["data"]
    invitation = next(i for i in listed if i["email"] == "gone@example.com")
    assert team.client.delete(f"/v1/invitations/{invitation['id']}", headers=team.operator).status_code == 204
    assert_problem(team.client.post("/v1/invitation-links/accept", json={"token": token}), 404, "invitation-not-found")
    assert "gone@example.com" not in [i["email"] for i in team.client.get("/v1/invitations",
                                                                           headers=team.operator).json()["data"]]


def test_roles_are_given_only_within_one_s_own_and_the_last_owner_stays(team):
    owner = team.join("owner@example.com", "owner")
    admin = team.join("admin@example.com", "admin")
    owner_id = owner.get("/v1/me").json()["member"]["id"]
    assert_problem(admin.request("PUT", f"/v1/members/{owner_id}/role", json={"role": "viewer"}), 403,
                   "role-beyond-yours")
    assert_problem(team.invite("another-owner@example.com", "owner", by=admin), 403, "role-beyond-yours")
    assert_problem(owner.request("PUT", f"/v1/members/{owner_id}/role", json={"role": "admin"}), 409, "last-owner")
    assert_problem(owner.request("DELETE", f"/v1/members/{owner_id}"), 409, "last-owner")
    # The database keeps the rule too, whatever the service does.
    with pytest.raises(Exception, match="without an owner"):
        team.sql("UPDATE members SET role = 'admin' WHERE id = %s", [owner_id])


def test_a_role_change_ends_the_member_s_sessions_and_their_keys_narrow(team):
    member = team.join("shifting@example.com", "developer")
    key = member.request("POST", "/v1/api-keys", json={"name": "mine"}).json()
    assert "jobs:write" in key["scopes"] and key["owner_id"] == member.get("/v1/me").json()["member"]["id"]
    member_id = key["owner_id"]
    changed = team.client.put(f"/v1/members/{member_id}/role", json={"role": "viewer"}, headers=team.operator)
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    assert_problem(member.get("/v1/me"), 401, "session-ended")
    with_key = {"Authorization": f"Bearer {key['secret']}"}
    assert set(team.client.get("/v1/me", headers=with_key).json()["scopes"]) == {"jobs:read", "receipts:read",
                                                                                 "account:read"}
    assert_problem(team.client.post("/v1/jobs", json={"prompt": "a cat"}, headers=with_key), 403, "missing-scope")


def test_developers_manage_only_their_own_keys_and_keys_die_with_their_owner_unless_moved(team):
    dev, other = team.join("keys-a@example.com", "developer"), team.join("keys-b@example.com", "developer")
    mine = dev.request("POST", "/v1/api-keys", json={"name": "a"}).json()
    theirs = other.request("POST", "/v1/api-keys", json={"name": "b"}).json()
    assert [k["id"] for k in dev.get("/v1/api-keys").json()["data"]] == [mine["id"]]
    assert_problem(dev.request("DELETE", f"/v1/api-keys/{theirs['id']}"), 403, "api-key-not-yours")
    assert_problem(dev.request("POST", "/v1/api-keys", json={"scopes": ["members:manage"]}), 403, "scope-not-held")
    listed = {k["id"]: k for k in team.client.get("/v1/api-keys", headers=team.operator).json()["data"]}
    assert listed[theirs["id"]]["owner_name"] == "keys-b@example.com" and listed[theirs["id"]]["owner_kind"] == "person"

    robot = team.client.post("/v1/service-accounts", json={"name": "nightly", "role": "developer"},
                             headers=team.operator).json()
    removed = team.client.delete(f"/v1/members/{mine['owner_id']}", params={"move_keys_to": robot["id"]},
                                 headers=team.operator)
    assert removed.status_code == 204
    assert team.client.get("/v1/me", headers={"Authorization": f"Bearer {mine['secret']}"}).json()["member"]["id"] == \
        robot["id"]
    assert team.client.delete(f"/v1/members/{theirs['owner_id']}", headers=team.operator).status_code == 204
    refused = team.client.get("/v1/me", headers={"Authorization": f"Bearer {theirs['secret']}"})
    assert_problem(refused, 401, "invalid-api-key")
    assert_problem(other.get("/v1/me"), 401, "session-ended")


def requests_counted(team) -> int:
    return team.sql("SELECT requests FROM rate_limits WHERE tenant_id = %s", [team.tenant_id])[0][0]


def test_a_change_without_the_session_s_csrf_token_or_from_another_origin_is_refused(team):
    member = team.join("csrf@example.com", "developer")
    assert member.get("/v1/me").status_code == 200
    counted = requests_counted(team)
    assert_problem(member.request("POST", "/v1/api-keys", json={}, headers={"X-CSRF-Token": ""}), 403, "csrf-refused")
    assert_problem(member.request("POST", "/v1/api-keys", json={}, headers={"X-CSRF-Token": "guessed"}), 403,
                   "csrf-refused")
    assert requests_counted(team) == counted  # a page elsewhere cannot spend the tenant's rate through a browser
    assert_problem(member.request("POST", "/v1/api-keys", json={}, headers={"Origin": "https://evil.example"}), 403,
                   "csrf-refused")
    assert member.get("/v1/me").status_code == 200  # reading needs no token
    assert member.request("POST", "/v1/api-keys", json={}, headers={"Origin": "http://testserver"}).status_code == 201


def test_sessions_end_when_idle_too_long_or_at_their_absolute_expiry(team):
    idle, old = team.join("idle@example.com", "viewer"), team.join("old@example.com", "viewer")
    assert idle.get("/v1/me").status_code == 200 and old.get("/v1/me").status_code == 200
    team.sql("UPDATE sessions SET last_seen_at = now() - make_interval(secs => %s) WHERE member_id ="
             " (SELECT id FROM members WHERE email = 'idle@example.com')", [team.settings.session_idle_s + 1])
    team.sql("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE member_id ="
             " (SELECT id FROM members WHERE email = 'old@example.com')")
    assert_problem(idle.get("/v1/me"), 401, "session-ended")
    assert_problem(old.get("/v1/me"), 401, "session-ended")


def test_sign_out_ends_one_session_and_sign_out_everywhere_ends_them_all(team):
    first = team.join("everywhere@example.com", "billing")
    second = session_of(team.client, team.client.post("/v1/sessions/email-link/redeem", json={
        "token": mailed_sign_in_token(team, "everywhere@example.com")}))
    third = session_of(team.client, team.client.post("/v1/sessions/email-link/redeem", json={
        "token": mailed_sign_in_token(team, "everywhere@example.com")}))
    assert len(first.get("/v1/sessions").json()["data"]) == 3
    assert third.request("DELETE", "/v1/sessions/current").json() == {"ended": 1}
    assert_problem(third.get("/v1/me"), 401, "session-ended")
    assert first.request("POST", "/v1/sessions/end-all").json() == {"ended": 2}
    assert_problem(first.get("/v1/me"), 401, "session-ended")
    assert_problem(second.get("/v1/me"), 401, "session-ended")


def mailed_sign_in_token(team: Team, email: str) -> str:
    before = len(team.mailbox.messages)
    asked = team.client.post("/v1/sessions/email-link", json={"tenant_id": team.tenant_id, "email": email})
    assert asked.status_code == 202, asked.text
    message = until(lambda: team.mailbox.messages[before:] and team.mailbox.messages[-1], 20, "no sign-in mail")
    assert message["To"] == email and "Sign in" in message["Subject"]
    return team.token_mailed_to(email)


def test_a_sign_in_link_works_once_and_says_nothing_of_strangers(team):
    team.join("linked@example.com", "viewer")
    token = mailed_sign_in_token(team, "linked@example.com")
    assert team.client.post("/v1/sessions/email-link/redeem", json={"token": token}).status_code == 201
    assert_problem(team.client.post("/v1/sessions/email-link/redeem", json={"token": token}), 404,
                   "sign-in-link-not-found")
    stranger = team.client.post("/v1/sessions/email-link", json={"tenant_id": team.tenant_id,
                                                                 "email": "nobody@example.com"})
    assert stranger.status_code == 202 and stranger.json() == {"sent": "if-member"}



def audit_records(team: Team) -> list[dict]:
    """Every audit record this ingest wrote (its outbox), oldest first."""
    rows = team.sql("SELECT body FROM outbox WHERE event_type = %s ORDER BY seq", [AuditRecorded.event_type])
    return [json.loads(bytes(body)) for (body,) in rows]


def test_every_member_action_names_its_actor_with_their_address(team):
    """The trail's CSV has an email column: a member's every action fills it, the sign-in that
    accepts an invitation too."""
    joined = team.join("audited@example.com", "admin")
    token = mailed_sign_in_token(team, "audited@example.com")
    linked = session_of(team.client, team.client.post("/v1/sessions/email-link/redeem", json={"token": token}))
    assert linked.request("POST", "/v1/invitations", json={"email": "later@example.com", "role": "viewer"}).status_code == 201
    assert joined.request("DELETE", "/v1/sessions/current").status_code == 200

    by_members = [r for r in audit_records(team) if r["actor"].startswith("member:")]
    assert {"member.sign_in", "invitation.accept", "invitation.create", "member.sign_out"} <= {
        r["action"] for r in by_members}
    unnamed = [(r["action"], r["details"].get("method")) for r in by_members if not r["details"].get("actor_email")]
    assert not unnamed, f"member actions without the actor's address: {unnamed}"
