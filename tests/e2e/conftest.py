"""The five services as separate processes on the real broker, database and S3 endpoint."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from genline_stack.embedded import Endpoints, create_topics
from genline_stack.fleet import SERVICES, ServiceFleet
from services.common.contracts import DEFAULT_NAMESPACE, FINAL_STATES, SUBSCRIPTIONS, all_topics, topic_of
from services.ingest.accounts import tenants as accounts
from services.ingest.settings import IngestSettings
from services.ledger.app import grant
from services.ledger.records import CreditGrant
from services.ledger.settings import LedgerSettings
from tests.kafka import unread_records
from tests.mailbox import Mailbox, smtp_server
from tests.payments.stripe_simulator import StripeSimulator, simulator_in_thread

FINAL = set(FINAL_STATES)
LEDGER_ADMIN_TOKEN = "e2e-ledger-admin-token"
PAYMENT_WEBHOOK_SECRET = "whsec_e2e_5d1f0a2c"


# Package scope: the fleet stops when the last e2e test is done, so its idle consumers do
# not take CPU from the suites that run after this package.
@pytest.fixture(scope="session")
def stripe() -> Iterator[StripeSimulator]:
    """The platform's payment processor: a simulator of Stripe's API on loopback."""
    with simulator_in_thread(PAYMENT_WEBHOOK_SECRET) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """The platform's SMTP server: a real one on loopback that keeps what it is handed."""
    with smtp_server() as box:
        yield box


def platform_env(stripe: StripeSimulator, mailbox: Mailbox) -> dict[str, str]:
    """The settings the tests' platforms run with, on top of each service's own."""
    return {"GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "GENLINE_ADMIN_TOKEN": LEDGER_ADMIN_TOKEN,
            "GENLINE_PAYMENT_WEBHOOK_SECRET": PAYMENT_WEBHOOK_SECRET,
            "GENLINE_STRIPE_API_KEY": "sk_test_e2e", "GENLINE_STRIPE_API_BASE": stripe.base_url,
            # Webhook retries within seconds, not a day.
            "GENLINE_WEBHOOK_RETRY_SCHEDULE_S": "[0.3, 0.6, 1.2, 2.4]",
            # The ledger looks for alerts due every second, not every 15.
            "GENLINE_ALERT_INTERVAL_S": "1",
            # Subjects past their retention are erased within a second.
            "GENLINE_SUBJECT_SWEEP_INTERVAL_S": "1",
            # Invitations and sign-in links go out through the mailbox.
            "GENLINE_SMTP_HOST": "127.0.0.1", "GENLINE_SMTP_PORT": str(mailbox.port),
            "GENLINE_SMTP_SECURITY": "none",
            # The identity provider of the console's tests is on loopback.
            "GENLINE_OIDC_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
            "GENLINE_MEMBER_LINK_KEY": "e2e-member-link-key-3f9a1c7d2b"}


# One platform a worker, for the whole session: a worker moves between packages, and a platform
# stopped and started again each time cost its start, and could meet its own consumer groups
# still rebalancing (the embedded broker keeps a member stopped in the middle of a rebalance, and
# the next one to join waited for it past the 120 s a service has to be ready).
@pytest.fixture(scope="session")
def platform(endpoints, tmp_path_factory, stripe, mailbox) -> Iterator[ServiceFleet]:
    fleet = ServiceFleet(endpoints=endpoints, log_dir=tmp_path_factory.mktemp("service-logs"),
                         extra_env=platform_env(stripe, mailbox))
    stripe.webhook_url = f"{fleet.url('ledger')}/v1/webhooks/payments"
    try:
        fleet.start_all()
        yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture(scope="module")
def two_ingests(platform: ServiceFleet) -> Iterator[list[str]]:
    """The URLs of the session's ingest and of a second replica beside it, on the same
    database, as two pods behind one service would be."""
    replica = platform.start_replica("ingest")
    try:
        yield [platform.ingest_url, platform.url(replica)]
    finally:
        platform.stop(replica)


@contextmanager
def own_fleet(endpoints: Endpoints, directory: Path, name: str, registry: dict,
              env: dict[str, str] | None = None) -> Iterator[ServiceFleet]:
    """A fleet with topics and schemas of its own (`<name><random>`), generating on the
    providers of `registry`, with `env` settings on top of the test defaults."""
    namespace = f"{name}{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    providers = directory / "providers.yaml"
    providers.write_text(yaml.safe_dump(registry))
    fleet = ServiceFleet(endpoints=endpoints, log_dir=directory / "logs", namespace=namespace,
                         extra_env={"GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
                                    "GENLINE_PROVIDERS_PATH": str(providers)} | (env or {}))
    try:
        fleet.start_all()
        yield fleet
    finally:
        fleet.stop_all()


@dataclass
class Tenant:
    id: str
    api_key: str
    http: httpx.Client
    endpoints: Endpoints
    ledger_schema: str = "ledger"

    def submit(self, **body) -> str:
        response = self.http.post("/v1/jobs", json={"prompt": "a red bicycle against a brick wall"} | body)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_settled(self, job_ids: list[str], timeout_s: float = 240) -> dict[str, dict]:
        """Until every job is final and its credits settled (or it was rejected)."""
        deadline, done = time.monotonic() + timeout_s, {}
        while len(done) < len(job_ids) and time.monotonic() < deadline:
            for job_id in set(job_ids) - done.keys():
                job = self.job(job_id)
                if job["state"] in FINAL and job["billing"]["state"] in ("settled", "rejected"):
                    done[job_id] = job
            time.sleep(0.3)
        missing = {j: self.job(j)["state"] for j in set(job_ids) - done.keys()}
        assert not missing, f"jobs not settled after {timeout_s}s: {missing}"
        return done

    def balance(self) -> dict:
        with psycopg.connect(self.endpoints.database_url) as conn:
            row = conn.execute(f'SELECT posted, pending FROM "{self.ledger_schema}".accounts WHERE tenant_id = %s',
                               [self.id]).fetchone()
        return {"posted": row[0], "pending": row[1], "available": row[0] - row[1]}


def make_tenant(endpoints: Endpoints, platform: ServiceFleet, credits: int, plan: str = "enterprise") -> Tenant:
    """A tenant with `credits`, on `plan`: by default the largest, so that tests polling
    many jobs are not held to a small plan's rate."""
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    scoped = {"topic_namespace": platform.namespace} if platform.namespace else {}
    ingest = endpoints.settings(IngestSettings, schema_name=platform.schema("ingest"), **scoped)
    api_key = asyncio.run(accounts.create_tenant(ingest, accounts.Tenant(tenant_id, plan=plan)))
    if credits:
        ledger = endpoints.settings(LedgerSettings, schema_name=platform.schema("ledger"), **scoped)
        asyncio.run(grant(ledger, CreditGrant(tenant_id=tenant_id, amount=credits, source="admin", reason="test grant")))
    http = httpx.Client(base_url=platform.ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    return Tenant(tenant_id, api_key, http, endpoints, platform.schema("ledger"))


@pytest.fixture
def tenant_factory(endpoints, platform):
    made: list[Tenant] = []

    def factory(credits: int = 10_000, plan: str = "enterprise") -> Tenant:
        made.append(make_tenant(endpoints, platform, credits, plan))
        return made[-1]

    yield factory
    for tenant in made:
        tenant.http.close()


def wait_for_audit(platform, tenant_id: str, action: str, timeout_s: float = 60) -> dict:
    """The newest audit entry of `action` for the tenant, once the ledger has kept it."""
    deadline = time.monotonic() + timeout_s
    while True:
        entries = httpx.get(f"{platform.url('ledger')}/admin/v1/audit", params={"tenant_id": tenant_id, "action": action},
                            headers={"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}, timeout=10).json()["entries"]
        if entries or time.monotonic() > deadline:
            assert entries, f"no {action} for {tenant_id} in the audit trail after {timeout_s}s"
            return entries[0]
        time.sleep(0.3)


def wait_caught_up(fleet: ServiceFleet, timeout_s: float = 90) -> None:
    """Until every service of the fleet has applied every event on the topics it reads and no
    outbox holds an event still to publish, twice in a row with nothing published between:
    whatever the services do about the events sent so far, they have done (a restarted
    service too, once it has rejoined its group)."""
    namespace = fleet.namespace or DEFAULT_NAMESPACE
    # A service's consumer group is named after its namespace and its schema (EventConsumer.group_id).
    groups = {f"{namespace}-{fleet.schema(name)}": [topic_of(p, namespace) for p in SUBSCRIPTIONS[name]]
              for name in SERVICES}
    deadline, quiet, last = time.monotonic() + timeout_s, 0, None
    while True:
        unread, published = asyncio.run(unread_records(fleet.endpoints.kafka_bootstrap, groups))
        pending = unpublished_outbox_rows(fleet)
        quiet, last = (quiet + 1 if (unread, pending, published) == (0, 0, last) else 0), published
        if quiet == 2:
            return
        assert time.monotonic() < deadline, f"not caught up after {timeout_s}s: {unread} unread, {pending} to publish"
        time.sleep(0.3)


def unpublished_outbox_rows(fleet: ServiceFleet) -> int:
    with psycopg.connect(fleet.endpoints.database_url) as conn:
        return sum(conn.execute(f'SELECT count(*) FROM "{fleet.schema(name)}".outbox WHERE published_at IS NULL')
                   .fetchone()[0] for name in SERVICES)
