"""The ledger's HTTP surface on the running service: Stripe's payment webhooks (verified by
its library), the admin API, and the reconciliation of payments against grants. The flows
of checkouts, auto top-ups, refunds and disputes are in test_stripe_payments.py."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import httpx
import psycopg
import pytest

from genline_stack.ports import free_port
from services.common.bus.envelope import from_kafka
from services.common.contracts import CreditsGranted, topic_of
from services.ledger.settings import DEV_LEDGER_SECRETS, LedgerSettings
from tests.kafka import read_topic
from tests.ledger.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    admin_grant,
    served_ledger,
    served_ledger_settings,
)

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

WEBHOOK_SECRET = "whsec_test_9f2c41d0"
TOLERANCE_S = 300


def webhook_ledger_settings(endpoints):
    return served_ledger_settings(endpoints, payment_webhook_secret=WEBHOOK_SECRET,
                                  payment_webhook_tolerance_s=TOLERANCE_S)


@pytest.fixture(scope="module")
def shared_settings(endpoints):
    return webhook_ledger_settings(endpoints)


@pytest.fixture(scope="module")
async def shared_http(shared_settings):
    """One ledger for the tests that look only at balances and responses (each uses its own
    tenants); starting one costs seconds."""
    async with served_ledger(shared_settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
def settings(endpoints):
    return webhook_ledger_settings(endpoints)


@pytest.fixture
async def http(settings):
    """A ledger of its own, for tests that read everything it published."""
    async with served_ledger(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


def signature(payload: bytes, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    """Stripe's scheme, written out here rather than borrowed from the code under test."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def payment(event_id: str, tenant_id: str, credits: int, amount_minor: int = 1999) -> bytes:
    """A payment made outside the ledger's checkouts, naming its tenant and credits."""
    return json.dumps({"id": event_id, "object": "event", "type": "payment_intent.succeeded", "data": {"object": {
        "id": f"pi_{event_id}", "object": "payment_intent", "amount": amount_minor, "amount_received": amount_minor,
        "currency": "usd", "status": "succeeded", "metadata": {"tenant_id": tenant_id, "credits": str(credits)}}}},
    ).encode()


async def post_webhook(http: httpx.AsyncClient, payload: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": header} if header is not None else {})
    return await http.post("/v1/webhooks/payments", content=payload, headers=headers)


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["type"].endswith(kind) and problem["detail"]
    return problem


def available(settings, tenant_id: str) -> int:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute(f'SELECT posted - pending FROM "{settings.schema_name}".accounts WHERE tenant_id = %s',
                           [tenant_id]).fetchone()
    return row[0] if row else 0


async def ledger_grants(settings, want: int) -> list[CreditsGranted]:
    """The grants the ledger published, from the start of its (isolated) topic (its audit
    events of the same operations left out)."""
    records = await read_topic(settings.kafka_bootstrap, topic_of("ledger", settings.topic_namespace), want,
                               keep=lambda r: dict(r.headers)["ce_type"] == CreditsGranted.event_type.encode())
    return [from_kafka(r).event for r in records]


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_a_signed_payment_grants_its_credits_and_publishes_the_grant(http, settings):
    buyer, event_id = tenant(), f"evt_{uuid.uuid4().hex}"

    response = await post_webhook(http, payment(event_id, buyer, 500), signature(payment(event_id, buyer, 500),
                                                                                   int(time.time())))

    assert response.status_code == 200, response.text
    assert response.json()["granted"] == 500
    assert available(settings, buyer) == 500
    [granted] = await ledger_grants(settings, want=1)
    assert isinstance(granted, CreditsGranted)
    assert (granted.tenant_id, granted.amount, granted.source, granted.payment_id) == (buyer, 500, "payment", event_id)
    assert str(granted.grant_id) == response.json()["grant_id"]


async def test_a_repeated_event_is_acknowledged_and_grants_nothing_more(http, settings):
    buyer, event_id = tenant(), f"evt_{uuid.uuid4().hex}"
    body = payment(event_id, buyer, 300)
    assert (await post_webhook(http, body, signature(body, int(time.time())))).status_code == 200

    # Freshly signed, so only the event id can refuse it.
    replay = await post_webhook(http, body, signature(body, int(time.time()) + 1))

    assert replay.status_code == 200  # Stripe retries anything else for days
    assert (replay.json()["duplicate"], replay.json()["granted"]) == (True, 0)
    assert available(settings, buyer) == 300
    await admin_grant(http, buyer, 1)  # published after anything the replay could have caused
    published = await ledger_grants(settings, want=2)
    assert sorted((g.source, g.amount) for g in published) == [("admin", 1), ("payment", 300)]


def signed_with_another_secret(body: bytes) -> str | None:
    return signature(body, int(time.time()), "whsec_someone_else")


def signed_for_another_body(body: bytes) -> str | None:
    return signature(body.replace(b'"credits": "250"', b'"credits": "2500"'), int(time.time()))


def stale(body: bytes) -> str | None:
    return signature(body, int(time.time()) - TOLERANCE_S - 60)


def missing(_body: bytes) -> str | None:
    return None


def malformed(body: bytes) -> str | None:
    return signature(body, int(time.time())).split(",")[1]  # v1=… without t=…


async def reconciliation_lines(http: httpx.AsyncClient, tenant_id: str) -> list[dict]:
    response = await http.get("/admin/v1/reconciliation", headers=ADMIN)
    assert response.status_code == 200, response.text
    return [line for line in response.json()["lines"] if line["tenant_id"] == tenant_id]


@pytest.mark.parametrize("sign, says", [
    (signed_with_another_secret, "No signatures found matching"),
    (signed_for_another_body, "No signatures found matching"),
    (stale, "Timestamp outside the tolerance zone"),
    (missing, "No Stripe-Signature header"),
    (malformed, "Unable to extract timestamp"),
])
async def test_a_refused_webhook_is_400_and_grants_nothing(shared_http, shared_settings, sign, says):
    buyer, event_id = tenant(), f"evt_{uuid.uuid4().hex}"
    await admin_grant(shared_http, buyer, 7)
    body = payment(event_id, buyer, 250)

    response = await post_webhook(shared_http, body, sign(body))

    problem = assert_problem(response, 400, "invalid-signature")
    assert says in problem["detail"]
    assert available(shared_settings, buyer) == 7
    assert await reconciliation_lines(shared_http, buyer) == []


async def test_a_refused_signature_leaves_the_event_id_usable(shared_http, shared_settings):
    """A forged event must not burn the id of the real one that follows."""
    buyer, event_id = tenant(), f"evt_{uuid.uuid4().hex}"
    body = payment(event_id, buyer, 250)
    assert (await post_webhook(shared_http, body, signed_with_another_secret(body))).status_code == 400

    assert (await post_webhook(shared_http, body, signature(body, int(time.time())))).status_code == 200
    assert available(shared_settings, buyer) == 250


async def test_an_event_that_is_not_a_payment_grants_nothing(shared_http, shared_settings):
    buyer = tenant()
    refund = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "customer.created",
                         "data": {"object": {"id": "cus_1", "object": "customer"}}}).encode()
    no_credits = payment(f"evt_{uuid.uuid4().hex}", buyer, 5).replace(b'"credits": "5"', b'"credits": "five"')

    ignored = await post_webhook(shared_http, refund, signature(refund, int(time.time())))
    refused = await post_webhook(shared_http, no_credits, signature(no_credits, int(time.time())))

    assert ignored.status_code == 200 and ignored.json()["granted"] == 0
    assert_problem(refused, 400, "invalid-payload")
    assert available(shared_settings, buyer) == 0


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-the-token"},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
], ids=["missing", "wrong", "not-bearer"])
async def test_the_admin_api_refuses_a_missing_or_wrong_token(shared_http, shared_settings, headers):
    buyer = tenant()
    for response in [
        await shared_http.post("/admin/v1/grants", json={"tenant_id": buyer, "credits": 5}, headers=headers),
        await shared_http.get("/admin/v1/reconciliation", headers=headers),
        await shared_http.put(f"/admin/v1/accounts/{buyer}/report-policy", json={"report_policy": "refund"},
                              headers=headers),
    ]:
        assert_problem(response, 401, "invalid-admin-token")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert available(shared_settings, buyer) == 0


async def test_an_admin_grant_adds_credits_and_a_bad_grant_is_422(shared_http, shared_settings):
    buyer = tenant()
    assert (await admin_grant(shared_http, buyer, 120))["available"] == 120
    assert (await admin_grant(shared_http, buyer, 30))["available"] == 150

    for body in [{"tenant_id": buyer, "credits": 0}, {"tenant_id": buyer, "credits": -5},
                 {"tenant_id": "Not A Tenant!", "credits": 5}, {"tenant_id": buyer}]:
        assert_problem(await shared_http.post("/admin/v1/grants", json=body, headers=ADMIN), 422, "validation-error")
    assert available(shared_settings, buyer) == 150


@pytest.mark.parametrize("body, field", [
    ({"credits": 5, "reason": "pilot\x00"}, "reason"),
    ({"credits": "5"}, "credits"),
    ({"credits": 5, "expires_at": 1893456000}, "expires_at"),
    ({"credits": 5, "expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # RFC 3339 needs the offset
])
async def test_a_grant_is_refused_for_unstorable_text_coerced_numbers_or_a_vague_date(shared_http, shared_settings,
                                                                                      body, field):
    buyer = tenant()
    response = await shared_http.post("/admin/v1/grants", json={"tenant_id": buyer} | body, headers=ADMIN)
    problem = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert available(shared_settings, buyer) == 0


async def test_a_report_policy_for_a_tenant_id_with_a_nul_is_422(shared_http):
    response = await shared_http.put("/admin/v1/accounts/acme%00/report-policy", json={"report_policy": "refund"},
                                     headers=ADMIN)
    assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == "path.tenant_id"


async def test_a_signed_payment_whose_event_id_has_a_nul_grants_nothing(shared_http, shared_settings):
    buyer = tenant()
    body = payment(f"evt_{uuid.uuid4().hex}\x00", buyer, 100)
    assert_problem(await post_webhook(shared_http, body, signature(body, int(time.time()))), 400, "invalid-payload")
    assert available(shared_settings, buyer) == 0


async def test_reconciliation_lists_each_payment_against_its_grant_and_finds_a_mismatch(shared_http, shared_settings):
    buyer, event_id = tenant(), f"evt_{uuid.uuid4().hex}"
    body = payment(event_id, buyer, 800, amount_minor=4999)
    paid = (await post_webhook(shared_http, body, signature(body, int(time.time())))).json()
    await admin_grant(shared_http, buyer, 50)  # not a payment: not in the report

    assert await reconciliation_lines(shared_http, buyer) == [
        {"event_id": event_id, "tenant_id": buyer, "credits_paid": 800, "amount_minor": 4999, "currency": "usd",
         "grant_id": paid["grant_id"], "credits_granted": 800, "credits_reclaimed": 0}]

    with psycopg.connect(shared_settings.database_url.get_secret_value()) as conn:
        conn.execute(f'UPDATE "{shared_settings.schema_name}".grants SET amount = 700, remaining = 700'
                     " WHERE payment_id = %s", [event_id])
    report = (await shared_http.get("/admin/v1/reconciliation", headers=ADMIN)).json()
    assert {"event_id": event_id, "problem": "paid for 800 credits, granted 700"} in report["problems"]


async def test_reconciliation_totals_add_up_payments_by_currency(http):
    for credits, amount in [(100, 999), (250, 1999)]:
        body = payment(f"evt_{uuid.uuid4().hex}", tenant(), credits, amount_minor=amount)
        assert (await post_webhook(http, body, signature(body, int(time.time())))).status_code == 200

    report = (await http.get("/admin/v1/reconciliation", headers=ADMIN)).json()

    assert (report["payments"], report["credits_paid"], report["credits_granted"]) == (2, 350, 350)
    assert report["amount_minor_by_currency"] == {"usd": 2998} and report["problems"] == []


async def test_the_same_event_delivered_at_once_several_times_grants_once(shared_http, shared_settings):
    """Payment providers retry and may overlap deliveries; the event id decides."""
    buyer, event_id = tenant(), f"evt_{uuid.uuid4().hex}"
    body = payment(event_id, buyer, 90)

    responses = await asyncio.gather(*[post_webhook(shared_http, body, signature(body, int(time.time())))
                                       for _ in range(6)])

    assert [r.status_code for r in responses] == [200] * 6
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 5
    assert available(shared_settings, buyer) == 90
    assert len(await reconciliation_lines(shared_http, buyer)) == 1


@pytest.fixture
def unconfigured_settings(endpoints):
    return served_ledger_settings(endpoints, admin_token=None)


async def test_without_a_token_and_a_secret_the_admin_api_and_webhooks_are_off(unconfigured_settings):
    async with served_ledger(unconfigured_settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        body = payment(f"evt_{uuid.uuid4().hex}", tenant(), 10)
        webhook = await post_webhook(http, body, signature(body, int(time.time())))
        grant = await http.post("/admin/v1/grants", json={"tenant_id": tenant(), "credits": 5}, headers=ADMIN)

    assert_problem(webhook, 404, "webhooks-disabled")
    assert_problem(grant, 404, "admin-api-disabled")


@pytest.fixture
def admin_port_settings(endpoints):
    return webhook_ledger_settings(endpoints).model_copy(update={"admin_port": free_port()})


async def test_with_an_admin_port_the_admin_api_answers_there_only(admin_port_settings):
    settings = admin_port_settings
    buyer = tenant()
    async with served_ledger(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as public:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.admin_port}", timeout=10) as admin:
            refused = await public.post("/admin/v1/grants", json={"tenant_id": buyer, "credits": 5}, headers=ADMIN)
            granted = await admin_grant(admin, buyer, 7)
            body = payment(f"evt_{uuid.uuid4().hex}", buyer, 10)
            webhook = await post_webhook(public, body, signature(body, int(time.time())))

    assert_problem(refused, 404, "not-found")
    assert granted["available"] == 7
    assert webhook.status_code == 200, webhook.text
    assert available(settings, buyer) == 17


async def test_a_signed_payment_for_a_malformed_tenant_id_grants_nothing(shared_http, shared_settings):
    body = payment(f"evt_{uuid.uuid4().hex}", "Not A Tenant!", 50)

    response = await post_webhook(shared_http, body, signature(body, int(time.time())))

    assert "not a tenant id" in assert_problem(response, 400, "invalid-payload")["detail"]
    assert available(shared_settings, "Not A Tenant!") == 0


@pytest.mark.parametrize("name", ["admin_token", "payment_webhook_secret"])
def test_the_dev_admin_token_and_webhook_secret_are_refused_in_production(endpoints, name):
    with pytest.raises(ValueError, match=f"GENLINE_{name.upper()} is the development value"):
        endpoints.settings(LedgerSettings, environment="production", s3_secret_access_key="a-real-secret-of-length",
                           database_url="postgresql://genline:a-real-password-too@db/genline",
                           kafka_security_protocol="SASL_SSL", kafka_password="a-real-kafka-password",
                           **{name: DEV_LEDGER_SECRETS[name]})
    assert endpoints.settings(LedgerSettings, environment="development", **{name: DEV_LEDGER_SECRETS[name]})
