"""The role matrix: every operation of ingest's OpenAPI document, called by a member of every
role of the role table (with a console session, and with a key the member owns), answers as the
table and the document say: refused (403, naming the scope) when the role lacks a scope the
operation lists, never refused when it holds them all. Nothing here is written per route: the
expectations come from services.ingest.accounts.roles.ROLES and the document's security
requirements, so a route added later is covered the day it is added."""

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.rows import dict_row

from services.ingest.accounts import roles
from services.ingest.members import sessions
from services.ingest.store.sessions import SessionTimeouts
from tests.ingest.teams import Team, team_on
from tests.mailbox import smtp_server

pytestmark = pytest.mark.processes
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scopes: frozenset[str] | None  # None: no credentials asked (public)
    body: bool

    def url(self) -> str:
        """The path with every parameter filled by something no tenant has."""
        return re.sub(r"\{[^}]+\}", lambda m: "0" if m.group(0) in ("{index}", "{n}") else str(uuid.uuid4()),
                      self.path)


def operations(document: dict) -> list[Operation]:
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            requirements = operation.get("security") or [{}]
            public = {} in requirements  # anyone may call it (a key, when sent, only shows its own things)
            scopes = None if public else frozenset(next(r["session"] for r in requirements if "session" in r))
            found.append(Operation(method.upper(), path, scopes, "requestBody" in operation))
    return found


@pytest.fixture(scope="module")
def team(endpoints) -> Iterator[Team]:
    with smtp_server() as mailbox:
        yield from team_on(endpoints, mailbox)


@pytest.fixture(scope="module")
def members(team) -> dict[str, tuple[uuid.UUID, str]]:
    """A member of every role (an owner first: the tenant keeps one), and a key each owns (made
    for them with the operator's key: not every role may make keys)."""
    made = {}
    for role in roles.ROLE_NAMES:
        member_id = team.join(f"{role}@example.com", role).get("/v1/me").json()["member"]["id"]
        key = team.client.post("/v1/api-keys", json={"name": role, "owner_id": member_id}, headers=team.operator)
        assert key.status_code == 201, key.text
        made[role] = (uuid.UUID(member_id), key.json()["secret"])
    return made


def fresh_session(team: Team, member_id: uuid.UUID) -> sessions.OpenedSession:
    """A session opened as a sign-in opens one (an operation may end the caller's sessions)."""
    async def opened() -> sessions.OpenedSession:
        url = team.settings.database_url.get_secret_value()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
            await conn.execute(f'SET search_path TO "{team.settings.schema_name}"')
            return await sessions.open_session(conn, sessions.SignIn(
                tenant_id=team.tenant_id, member_id=member_id, method="invitation", origin=None, user_agent=""),
                timeouts=SessionTimeouts(3600, 3600))

    return asyncio.run(opened())


def call(team: Team, operation: Operation, headers: dict[str, str]) -> tuple[int, dict | None]:
    """The status and, for a problem, its body (a stream is closed once its headers came). An
    error of the OpenAI-shaped routes reads as the problem it stands for: its code is the
    problem's type, and its message names the scope."""
    body = {"json": {}} if operation.body else {}
    with team.client.stream(operation.method, operation.url(), headers=headers, **body) as answer:
        if answer.headers.get("content-type", "").startswith("application/problem+json"):
            return answer.status_code, json.loads(answer.read())
        if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/json"):
            error = json.loads(answer.read()).get("error") or {}
            scope = re.search(r"the scope '([^']+)'", error.get("message", ""))
            return answer.status_code, {"type": f"/problems/{str(error.get('code')).replace('_', '-')}",
                                        "scope": scope.group(1) if scope else None}
        return answer.status_code, None


def test_every_operation_answers_every_role_as_the_role_table_says(team, members):
    document = team.client.get("/openapi.json").json()
    matrix = operations(document)
    assert len(matrix) > 40 and any(o.scopes for o in matrix)
    wrong = []
    for operation in matrix:
        for role, (member_id, secret) in members.items():
            held = roles.ROLES[role]
            opened = fresh_session(team, member_id)
            by_session = {"Cookie": f"{sessions.SESSION_COOKIE}={opened.token}", sessions.CSRF_HEADER: opened.csrf}
            for via, headers in (("session", by_session), ("key", {"Authorization": f"Bearer {secret}"})):
                status, problem = call(team, operation, headers)
                allowed = operation.scopes is None or operation.scopes <= held
                if allowed and status in (401, 403):
                    wrong.append(f"{role} by {via}: {operation.method} {operation.path} refused: {problem}")
                missing = operation.scopes - held if operation.scopes is not None else set()
                if not allowed and not (status == 403 and problem and problem["type"] == "/problems/missing-scope"
                                        and problem["scope"] in missing):
                    wrong.append(f"{role} by {via}: {operation.method} {operation.path} answered {status}, not 403"
                                 " missing-scope")
    assert not wrong, "\n".join(wrong)


def test_the_console_reads_the_same_role_table(team):
    table = team.client.get("/v1/roles").json()
    assert {r["name"]: set(r["scopes"]) for r in table["roles"]} == {r: set(s) for r, s in roles.ROLES.items()}
    assert [s["name"] for s in table["scopes"]] == list(roles.SCOPES)
