"""Tests generated from the OpenAPI document the platform serves (read by tests/e2e/openapi_walk.py),
so a route is covered the day it lands:

* every operation that takes an id in its path, query or body, called by a second tenant with the
  first one's: answered as an id that does not exist (in a path, 404), and nothing of the first
  tenant's changed;
* every operation that takes a URL the platform fetches: each private, loopback, link-local and
  encoded spelling of an address (decimal, hex, octal, short, IPv4-mapped IPv6) and a redirect to
  one refused before any connection, on an ingest whose allow-lists are at their defaults;
* every operation, called by a member of each role of `GET /v1/roles`, by a console session and by
  a key the member owns: refused (403, naming the scope) exactly when the role lacks a scope the
  operation lists.

A kind of id the tests cannot make, or a URL field they are not told whether the platform fetches,
fails with what to add here."""

import asyncio
import base64
import hashlib
import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from services.ingest import session_auth
from services.ingest.members import sessions
from services.ingest.members.store.sessions import SessionTimeouts
from tests.e2e.conftest import Tenant, make_tenant
from tests.e2e.openapi_walk import Field, Operation, read_operations, set_at
from tests.e2e.test_webhooks import Receiver
from tests.scorer.conftest import png, rgb_photo

# The kind of stored thing each id names, by the name the document gives it.
KIND_OF = {"job_id": "job", "subject_id": "subject", "subject": "subject", "upload_id": "upload",
           "input_upload": "upload", "key_id": "api_key", "endpoint_id": "endpoint", "attempt_id": "attempt",
           "member_id": "member", "owner_id": "member", "move_keys_to": "member", "invitation_id": "invitation",
           "key": "idempotency_key", "file_id": "file", "input_file_id": "file", "batch_id": "batch",
           "evaluation_id": "evaluation"}
# Positions within a job (its n-th output, its i-th candidate): not ids of their own.
POSITIONS = ("n", "index")
# Ids that name nothing stored here: the tenant's client at its identity provider.
NOT_OURS = ("client_id",)
# URL fields the platform never fetches: where the payment processor sends the payer's browser.
NEVER_FETCHED = {"success_url", "cancel_url"}
# Reads that change by themselves (counts of requests, balances, the trail written behind), left
# out of "nothing changed"; and values that differ between two reads of the same thing.
CHANGING_READS = ("/v1/usage", "/v1/account", "/v1/audit", "/v1/me", "/v1/sessions", "/v1/billing", "/v1/events")
VOLATILE = {"last_used_at", "expires_at", "requests_today", "request_id", "last_seen_at", "url", "thumbnail_url"}
GUARD_REFUSAL = "private, loopback, link-local or reserved address"


def document_of(platform) -> dict:
    return httpx.get(f"{platform.ingest_url}/openapi.json", timeout=30).json()


def another_of_the_same_form(value: str) -> str:
    """An id shaped as `value` that names nothing: its random part replaced."""
    fresh = uuid.uuid4()
    replaced = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", str(fresh), value)
    return replaced if replaced != value else re.sub(r"[0-9a-f]{16,32}", fresh.hex, value)


# ---- the things a tenant owns -------------------------------------------------------------


def jsonl_of_one_refused_line() -> bytes:
    line = {"custom_id": "seam", "method": "POST", "url": "/v1/images/generations",
            "body": {"model": "gpt-image-1", "prompt": "a mug", "n": 0}}
    return json.dumps(line).encode() + b"\n"


def wait_until(read: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while not done(value := read()):
        assert time.monotonic() < deadline, f"{what}: still {value}"
        time.sleep(0.3)
    return value


@dataclass
class Owned:
    """A tenant's things, made on first use by kind: what an id of that kind names."""

    tenant: Tenant
    receiver: Receiver
    made: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> str:
        if kind not in self.made:
            maker = getattr(self, f"make_{kind}", None)
            assert maker is not None, f"no way to make a {kind!r} for the generated tests: add make_{kind} to Owned"
            self.made[kind] = str(maker())
        return self.made[kind]

    def created(self, path: str, **sent) -> dict:
        answer = self.tenant.http.post(path, timeout=60, **sent)
        assert answer.status_code in (200, 201, 202), f"{path}: {answer.text}"
        return answer.json()

    def make_endpoint(self) -> str:
        return self.created("/v1/webhook-endpoints", json={"url": self.receiver.url(f"/{self.tenant.id}"),
                                                           "event_types": ["job.succeeded"]})["id"]

    def make_idempotency_key(self) -> str:
        self["endpoint"]  # before the job, so its webhook is attempted
        key = f"seam-{uuid.uuid4().hex}"
        job_id = self.created("/v1/jobs", json={"prompt": "a red bicycle", "images": 1, "candidates": 2, "seed": 3},
                              headers={"Idempotency-Key": key})["id"]
        self.made["job"] = job_id
        job = self.tenant.wait_settled([job_id])[job_id]
        assert job["state"] == "succeeded", job
        self.made["index"] = str(job["selected"][0])
        return key

    def make_job(self) -> str:
        self["idempotency_key"]
        return self.made["job"]

    def make_attempt(self) -> str:
        path = f"/v1/webhook-endpoints/{self['endpoint']}/attempts"
        self["job"]
        attempts = wait_until(lambda: self.tenant.http.get(path).json()["data"], bool, "no webhook attempt")
        return attempts[0]["id"]

    def make_upload(self) -> str:
        return self.created("/v1/uploads", content=png(rgb_photo("coffee")), headers={"content-type": "image/png"})["id"]

    def make_subject(self) -> str:
        return self.created("/v1/subjects", json={"kind": "product", "name": "a mug"})["id"]

    def make_api_key(self) -> str:
        return self.created("/v1/api-keys", json={"name": "seam", "scopes": ["jobs:read"]})["id"]

    def make_member(self) -> str:
        return self.created("/v1/service-accounts", json={"name": "seam", "role": "viewer"})["id"]

    def make_invitation(self) -> str:
        return self.created("/v1/invitations", json={"email": f"seam-{uuid.uuid4().hex[:8]}@example.com",
                                                     "role": "viewer"})["id"]

    def make_file(self) -> str:
        return self.created("/v1/files", data={"purpose": "batch"},
                            files={"file": ("seam.jsonl", io.BytesIO(jsonl_of_one_refused_line()))})["id"]

    def make_batch(self) -> str:
        batch = self.created("/v1/batches", json={"input_file_id": self["file"], "endpoint": "/v1/images/generations",
                                                  "completion_window": "24h"})
        path = f"/v1/batches/{batch['id']}"
        wait_until(lambda: self.tenant.http.get(path).json()["status"], lambda s: s in ("completed", "failed"),
                   "the batch has not ended")
        return batch["id"]

    def make_evaluation(self) -> str:
        image = base64.b64encode(png(rgb_photo("camera"))).decode()
        return self.created("/v1/evaluations", json={"images": [{"b64": image}]})["id"]

    def value(self, name: str) -> str | int:
        """What the tenant's own thing of this id's kind is called (a position: the job's)."""
        if name == "n":
            return 1
        if name == "index":
            self["job"]
            return int(self.made["index"])
        kind = KIND_OF.get(name)
        assert kind is not None, f"the document has an id {name!r} the generated tests know no kind of: add it to KIND_OF"
        return self[kind]


def filled(operation: Operation, own: Owned, *, foreign: Field | None = None, value: Any = None) -> tuple[str, Any]:
    """The operation's path and body with every id its tenant's own, but `foreign` given `value`."""
    path = operation.path
    for name in re.findall(r"\{([^}]+)\}", path):
        chosen = value if foreign is not None and foreign.where == "path" and foreign.name == name else own.value(name)
        path = path.replace(f"{{{name}}}", str(chosen))
    body = operation.example_with(foreign.route) if foreign is not None else operation.example
    if foreign is not None and foreign.where == "body":
        holder = {name: own.value(name) for name in foreign.siblings_required if name in POSITIONS}
        body = set_at(body, foreign.route[:-1], {**holder, foreign.name: value}) if len(foreign.route) > 1 \
            else set_at(body, foreign.route, value)
    if foreign is not None and foreign.where == "query":
        path += f"?{foreign.name}={value}"
    return path, body


def call(http: httpx.Client, operation: Operation, path: str, body: Any) -> httpx.Response:
    sent = {"json": body} if operation.media_type == "application/json" else {}
    return http.request(operation.method, path, timeout=60, **sent)


def refusal_of(answer: httpx.Response) -> tuple[int, str]:
    """The status and kind of a refusal: a problem's type, or an OpenAI error's code."""
    body = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
    kind = body.get("type") or (body.get("error") or {}).get("code") or ""
    return answer.status_code, str(kind)


def answers_as_unknown(foreign: Field, answer: httpx.Response, *, unknown: str) -> bool:
    """An unknown id in a path is a 404; in a query or body, either it is not looked up at all
    (the call succeeds for any id) or the refusal is about it (it names the id or the field),
    never a body the schema refused before any lookup."""
    if foreign.where == "path":
        return answer.status_code == 404
    if 200 <= answer.status_code < 300:
        return True
    return 400 <= answer.status_code < 500 and "validation-error" not in answer.text and (
        unknown in answer.text or foreign.name in answer.text)


# ---- nothing changed ----------------------------------------------------------------------


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def snapshot(operations: list[Operation], own: Owned) -> dict[str, Any]:
    """Every read of the tenant's things the document offers (but those that change by themselves)."""
    seen = {}
    for operation in operations:
        if operation.method != "GET" or operation.scopes is None or operation.stream \
                or operation.path.startswith(CHANGING_READS):
            continue
        path, _ = filled(operation, own)
        answer = own.tenant.http.get(path, timeout=60)
        content = normalized(answer.json()) if "json" in answer.headers.get("content-type", "") else \
            hashlib.sha256(answer.content).hexdigest()
        seen[str(operation)] = (answer.status_code, content)
    return seen


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="module")
def tenants(endpoints, platform, receiver) -> Iterator[tuple[Owned, Owned]]:
    """Two tenants, each with its own things: `first` is the one attacked, `second` the attacker."""
    first, second = (Owned(make_tenant(endpoints, platform, 1_000), receiver) for _ in range(2))
    yield first, second
    first.tenant.http.close()
    second.tenant.http.close()


# ---- another tenant's ids -----------------------------------------------------------------


def test_another_tenants_id_is_answered_as_one_that_does_not_exist_and_changes_nothing(platform, tenants):
    first, second = tenants
    operations = read_operations(document_of(platform))
    def ours(operation: Operation) -> list[Field]:
        return [f for f in operation.ids if f.name not in POSITIONS + NOT_OURS]

    with_ids = [o for o in operations if o.scopes is not None and not o.stream and ours(o)]
    for kind in sorted({KIND_OF.get(f.name, f.name) for o in with_ids for f in ours(o)}):
        first[kind]  # every kind the document names, made before the first look
    before = snapshot(operations, first)
    wrong, tried = [], 0
    for operation in with_ids:
        for foreign in ours(operation):
            theirs = str(first.value(foreign.name))
            as_theirs = call(second.tenant.http, operation, *filled(operation, second, foreign=foreign, value=theirs))
            nobodys = another_of_the_same_form(theirs)
            as_nobodys = call(second.tenant.http, operation, *filled(operation, second, foreign=foreign, value=nobodys))
            tried += 1
            said, expected = refusal_of(as_theirs), refusal_of(as_nobodys)
            if said != expected or not answers_as_unknown(foreign, as_nobodys, unknown=nobodys):
                wrong.append(f"{operation} {foreign}: another tenant's id answered {said}, an unknown one {expected}:"
                             f" {as_theirs.text[:200]}")
    assert not wrong, "\n".join(wrong)
    after = snapshot(operations, first)
    assert after == before, [name for name in before if after.get(name) != before[name]]
    assert tried >= 30 and len(with_ids) >= 25, (tried, len(with_ids))
    print(f"\n{len(with_ids)} operations, {tried} ids of another tenant's, {len(before)} reads unchanged")


# ---- URLs the platform fetches ------------------------------------------------------------


class Listener:
    """A server on a loopback address that counts every request reaching it; with `location`,
    it redirects there."""

    def __init__(self, host: str, location: str | None = None) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                seen.append(f"{self.command} {self.path}")
                self.send_response(302 if location else 200)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = answer  # noqa: N815 - the handler's hooks

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.address = f"{host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def spellings(port: int, redirector: str) -> list[str]:
    """Hosts (with ports) that are, or lead to, an address no purpose opens by default."""
    loopback = ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]",
                "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]"]
    private = ["10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1", "[fd00::1]", "0.0.0.0"]
    link_local = ["169.254.169.254", "2852039166", "[fe80::1]", "[::ffff:169.254.169.254]"]
    return [f"{host}:{port}" for host in loopback + private + link_local] + [f"{redirector}"]


@pytest.fixture
def closed_ingest(platform) -> Iterator[str]:
    """An ingest beside the platform's, every outbound allow-list at its default (no private
    network opened), but images named by URL opened to 127.0.0.3 alone, where a redirector waits."""
    replica = platform.start_replica("ingest", env={
        "GENLINE_WEBHOOK_ALLOWED_NETWORKS": "[]", "GENLINE_OIDC_ALLOWED_NETWORKS": "[]",
        "GENLINE_IMAGE_URL_ALLOWED_NETWORKS": '["127.0.0.3/32"]'})
    try:
        yield platform.url(replica)
    finally:
        platform.stop(replica)


def test_no_url_an_operation_takes_reaches_a_private_address_however_it_is_spelled(platform, tenants, closed_ingest):
    _, own = tenants
    operations = read_operations(document_of(platform))
    unknown = [f"{o} {f}" for o in operations for f in o.urls if f.name not in NEVER_FETCHED and o.scopes is None]
    assert not unknown, f"a public operation takes a URL: {unknown}"
    fetching = [o for o in operations if [f for f in o.urls if f.name not in NEVER_FETCHED]]
    target = Listener("127.0.0.1")
    redirector = Listener("127.0.0.3", location=f"http://{target.address}/after-the-redirect")
    wrong, tried = [], 0
    try:
        with httpx.Client(base_url=closed_ingest, headers=own.tenant.http.headers, timeout=60) as http:
            for operation in fetching:
                for host in spellings(int(target.address.rsplit(":", 1)[1]), redirector.address):
                    url = f"http://{host}/seam"
                    path, body = filled(operation, own)
                    for each in (f for f in operation.urls if f.name not in NEVER_FETCHED):
                        body = set_at(body, each.route, url)
                    answer = call(http, operation, path, body)
                    tried += 1
                    if answer.status_code == 202 and host == redirector.address:
                        # A batch checks the first address now, and each hop when it fetches.
                        location = answer.headers["location"]
                        answer = httpx.Response(200, text=json.dumps(wait_until(
                            lambda: http.get(location).json(),  # noqa: B023 - read before the next spelling
                            lambda seen: seen["status"] in ("completed", "failed"), "the batch has not ended")))
                    refused = 400 <= answer.status_code < 500 or host == redirector.address
                    if not refused or GUARD_REFUSAL not in answer.text:
                        wrong.append(f"{operation} with {url}: {answer.status_code} {answer.text[:200]}")
    finally:
        target.close()
        redirector.close()
    assert not wrong, "\n".join(wrong)
    assert target.seen == [], f"a private address was reached: {target.seen}"
    assert tried >= 100 and len(fetching) >= 5, (tried, len(fetching))
    print(f"\n{len(fetching)} operations taking URLs, {tried} spellings refused")


# ---- roles --------------------------------------------------------------------------------


@dataclass
class Team:
    """A tenant with a member of every role of the role table, each with a key of their own."""

    tenant: Tenant
    database_url: str
    schema: str
    members: dict[str, tuple[uuid.UUID, str]]  # role: (member id, their key's secret)

    def session(self, member_id: uuid.UUID) -> sessions.OpenedSession:
        """A session opened as a sign-in opens one (an operation may end the caller's sessions)."""
        async def opened() -> sessions.OpenedSession:
            async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True,
                                                             row_factory=dict_row) as conn:
                await conn.execute(f'SET search_path TO "{self.schema}"')
                return await sessions.open_session(conn, sessions.SignIn(
                    tenant_id=self.tenant.id, member_id=member_id, method="invitation", origin=None, user_agent=""),
                    timeouts=SessionTimeouts(3600, 3600))

        return asyncio.run(opened())


@pytest.fixture(scope="module")
def team(endpoints, platform, mailbox) -> Iterator[Team]:
    tenant = make_tenant(endpoints, platform, 1_000)
    table = tenant.http.get("/v1/roles").json()
    members = {}
    for role in [r["name"] for r in table["roles"]]:  # the most powerful first: an owner invites the rest
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        assert tenant.http.post("/v1/invitations", json={"email": email, "role": role}).status_code == 201
        token = mailbox.link_to(email).split("#", 1)[1]
        joined = httpx.post(f"{platform.ingest_url}/v1/invitation-links/accept", json={"token": token}, timeout=30)
        assert joined.status_code == 201, joined.text
        member_id = joined.json()["id"]
        key = tenant.http.post("/v1/api-keys", json={"name": role, "owner_id": member_id})
        assert key.status_code == 201, key.text
        members[role] = (uuid.UUID(member_id), key.json()["secret"])
    yield Team(tenant, endpoints.database_url, platform.schema("ingest"), members)
    tenant.http.close()


def answered(http: httpx.Client, operation: Operation, headers: dict[str, str]) -> tuple[int, dict | None]:
    """The status and, for a refusal, its problem (an OpenAI error read as the problem it stands
    for: its code the problem's type, its message naming the scope). Every id is one no tenant
    has; a stream is closed once its headers came."""
    path = re.sub(r"\{[^}]+\}", lambda m: "0" if m.group(0) in ("{index}", "{n}") else str(uuid.uuid4()),
                  operation.path)
    body = {"json": {}} if operation.media_type is not None else {}
    with http.stream(operation.method, path, headers=headers, **body) as answer:
        kind = answer.headers.get("content-type", "")
        if kind.startswith("application/problem+json"):
            return answer.status_code, json.loads(answer.read())
        if answer.status_code >= 400 and kind.startswith("application/json"):
            error = json.loads(answer.read()).get("error") or {}
            scope = re.search(r"the scope '([^']+)'", error.get("message", ""))
            return answer.status_code, {"type": f"/problems/{str(error.get('code')).replace('_', '-')}",
                                        "scope": scope.group(1) if scope else None}
        return answer.status_code, None


def test_every_operation_answers_every_role_as_the_role_table_says(platform, team):
    table = team.tenant.http.get("/v1/roles").json()
    held = {r["name"]: frozenset(r["scopes"]) for r in table["roles"]}
    assert set(held) == set(team.members) and held["owner"] >= held["viewer"]
    operations = read_operations(document_of(platform))
    wrong = []
    with httpx.Client(base_url=platform.ingest_url, timeout=60) as http:
        for operation in operations:
            for role, (member_id, secret) in team.members.items():
                opened = team.session(member_id)
                by_session = {"Cookie": f"{session_auth.SESSION_COOKIE}={opened.token}", session_auth.CSRF_HEADER: opened.csrf}
                for via, headers in (("session", by_session), ("key", {"Authorization": f"Bearer {secret}"})):
                    status, problem = answered(http, operation, headers)
                    allowed = operation.scopes is None or operation.scopes <= held[role]
                    if allowed and status in (401, 403):
                        wrong.append(f"{role} by {via}: {operation} refused: {problem}")
                    missing = operation.scopes - held[role] if operation.scopes is not None else set()
                    if not allowed and not (status == 403 and problem and problem["type"] == "/problems/missing-scope"
                                            and problem["scope"] in missing):
                        wrong.append(f"{role} by {via}: {operation} answered {status}, not 403 missing-scope")
    assert not wrong, "\n".join(wrong)
    assert len(operations) > 80 and any(o.scopes for o in operations)
    print(f"\n{len(operations)} operations x {len(held)} roles x 2 ways")
