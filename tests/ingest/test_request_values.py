"""Every value a request carries outside its body (query strings, path segments, cookies,
headers, a sign-in callback's parameters) is checked before it reaches the database: a NUL,
which PostgreSQL cannot store, or a value past its bound is a 422 naming it (on the
OpenAI-compatible routes, OpenAI's 400), never a server error. One request per route family,
against ingest on the real database."""

from collections.abc import Iterator

import pytest

from tests.ingest.teams import Team, team_on
from tests.mailbox import smtp_server

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def team(endpoints) -> Iterator[Team]:
    with smtp_server() as mailbox:
        yield from team_on(endpoints, mailbox)


# (family, method, path, headers (None: the operator's key), the field named)
REQUESTS = [
    ("sign-in callback", "GET", "/v1/sso/callback?code=&state=%00abc", {}, "query.state"),
    ("sign-in start", "GET", "/v1/sso/t-x/start?return_to=/console/%00", {}, "query.return_to"),
    ("jobs", "GET", "/v1/jobs?template=%00", None, "query.template"),
    ("usage", "GET", "/v1/usage?end_user=%00", None, "query.end_user"),
    ("members", "GET", "/v1/me", {"Cookie": '__Host-genline-session="\\000"'}, "cookie.__Host-genline-session"),
    ("sessions", "POST", "/v1/sessions/email-link/redeem", {"User-Agent": "u" * 9000}, "header.user-agent"),
    ("batches", "GET", "/v1/batches?after=batch_%00", None, "after"),
    ("files", "GET", "/v1/files/file-%00", None, "file_id"),
]


@pytest.mark.parametrize(("family", "method", "path", "headers", "field"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_a_value_that_cannot_be_stored_is_refused_with_a_problem_naming_it(team, family, method, path, headers, field):
    sent = team.operator if headers is None else headers
    body = {"json": {"token": "x" * 20}} if method == "POST" else {}
    answer = team.client.request(method, path, headers=sent, follow_redirects=False, **body)
    if path.startswith(("/v1/batches", "/v1/files")):  # OpenAI's shape: its 400, the parameter named
        assert answer.status_code == 400 and answer.json()["error"]["param"] == field, answer.text
        return
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json", answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field], answer.text
