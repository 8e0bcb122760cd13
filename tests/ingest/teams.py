"""Ingest in this process on the real database and broker, with a real SMTP server on loopback,
for the tests of a tenant's members: a tenant with its operator key, members invited by mail
and signed in, and their sessions driven as the console drives them (the cookies sent back,
the CSRF token echoed on every change)."""

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

import httpx
import psycopg
from fastapi.testclient import TestClient

from genline_stack.embedded import create_topics
from services.common.contracts import all_topics
from services.ingest.accounts.tenants import Tenant, create_tenant
from services.ingest.app import build
from services.ingest.session_auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from services.ingest.settings import IngestSettings
from tests.mailbox import Mailbox


@dataclass
class Session:
    """A member signed in: the session's cookies, and its CSRF token to echo."""

    client: TestClient
    cookies: dict[str, str]
    set_cookie: list[str] = field(default_factory=list)

    @property
    def csrf(self) -> str:
        return self.cookies[CSRF_COOKIE]

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} | kwargs.pop("headers", {})
        if method not in ("GET", "HEAD"):
            headers.setdefault(CSRF_HEADER, self.csrf)
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)


def session_of(client: TestClient, response: httpx.Response) -> Session:
    """The session a sign-in's answer opened, from its Set-Cookie headers."""
    set_cookie = response.headers.get_list("set-cookie")
    jar: SimpleCookie = SimpleCookie()
    for header in set_cookie:
        jar.load(header)
    cookies = {name: jar[name].value for name in (SESSION_COOKIE, CSRF_COOKIE) if name in jar and jar[name].value}
    assert SESSION_COOKIE in cookies, set_cookie
    return Session(client, cookies, set_cookie)


@dataclass
class Team:
    """A tenant on an ingest of its own: its operator key (`admin`: every scope, owned by no
    member) and the mailbox its mail goes to."""

    client: TestClient
    settings: IngestSettings
    tenant_id: str
    operator_key: str
    mailbox: Mailbox

    @property
    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_key}"}

    def invite(self, email: str, role: str, by: Session | None = None) -> httpx.Response:
        body = {"email": email, "role": role}
        if by is not None:
            return by.request("POST", "/v1/invitations", json=body)
        return self.client.post("/v1/invitations", json=body, headers=self.operator)

    def token_mailed_to(self, email: str) -> str:
        return self.mailbox.link_to(email).split("#", 1)[1]

    def join(self, email: str, role: str) -> Session:
        """A member in `role`, invited by the operator key and signed in through the link."""
        assert self.invite(email, role).status_code == 201
        accepted = self.client.post("/v1/invitation-links/accept", json={"token": self.token_mailed_to(email)})
        assert accepted.status_code == 201, accepted.text
        return session_of(self.client, accepted)

    def sql(self, statement: str, params: list | None = None) -> list[tuple]:
        with psycopg.connect(self.settings.database_url.get_secret_value(), autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.settings.schema_name}"')
            cursor = conn.execute(statement, params or [])
            return cursor.fetchall() if cursor.description else []


def team_on(endpoints, mailbox: Mailbox, **overrides) -> Iterator[Team]:
    suffix = uuid.uuid4().hex[:8]
    settings = endpoints.settings(IngestSettings, environment="test", topic_namespace=f"m{suffix}",
                                  schema_name=f"ingest_{suffix}", smtp_host="127.0.0.1", smtp_port=mailbox.port,
                                  smtp_security="none", member_link_key="a-link-key-for-these-tests-only-" + suffix,
                                  oidc_allowed_networks=["127.0.0.0/8"],
                                  **overrides)
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(settings.topic_namespace)))
    tenant_id = f"t-{suffix}"
    key = asyncio.run(create_tenant(settings, Tenant(tenant_id, plan="enterprise")))
    _, app = build(settings)
    with TestClient(app) as client:
        yield Team(client, settings, tenant_id, key, mailbox)
