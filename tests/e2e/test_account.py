"""`POST /v1/quotes` and `GET /v1/account` through ingest answer with the ledger's own
numbers, which ingest fetches over gRPC."""

import functools
from types import SimpleNamespace

import grpc
import httpx
import pytest

from services.ledger.grpc import pb, rpc
from tests.e2e.test_bad_input import assert_problem
from tests.identity import metadata_as


@pytest.fixture(scope="module")
def ledger(platform):
    """The fleet's ledger over gRPC, called as ingest calls it, to compare ingest's answers with."""
    metadata = metadata_as(platform.endpoints, "ingest", "ledger")
    with grpc.insecure_channel(f"127.0.0.1:{platform.ledger_grpc_port}") as channel:
        stub = rpc.LedgerServiceStub(channel)
        yield SimpleNamespace(Quote=functools.partial(stub.Quote, metadata=metadata),
                              GetBalance=functools.partial(stub.GetBalance, metadata=metadata))


@pytest.mark.parametrize("body", [
    {},
    {"template": "headshot", "tier": "fast", "images": 4},
    {"template": "product", "tier": "low-cost", "images": 16},
])
def test_a_quote_through_ingest_is_the_ledgers_quote(tenant_factory, ledger, body):
    tenant = tenant_factory(credits=100)

    response = tenant.http.post("/v1/quotes", json=body)

    assert response.status_code == 200, response.text
    fields = {"template": "generic", "tier": "stable", "images": 1} | body
    quote = ledger.Quote(pb.QuoteRequest(tenant_id=tenant.id, **fields))
    assert response.json() == fields | {
        "credits": quote.credits, "unit_price": quote.unit_price, "second_price": None, "clip_seconds": None,
        "price_book_version": quote.pricebook_version, "available": 100, "affordable": quote.credits <= 100,
        "retry_tokens_applied": 0, "training_credits": 0}
    assert quote.credits == quote.unit_price * fields["images"] > 0
    assert tenant.balance()["available"] == 100  # a quote holds nothing


def test_a_video_quote_through_ingest_is_priced_by_the_second(tenant_factory, ledger):
    tenant = tenant_factory(credits=100)
    clip = {"duration_s": 4.5, "aspect_ratio": "16:9", "resolution": "720p"}

    response = tenant.http.post("/v1/quotes", json={"template": "text-to-video", "images": 2, "video": clip})

    assert response.status_code == 200, response.text
    quote = ledger.Quote(pb.QuoteRequest(tenant_id=tenant.id, template="text-to-video", tier="stable", images=2,
                                         video_duration_s=4.5, video_resolution="720p"))
    answer = response.json()
    assert (answer["second_price"], answer["clip_seconds"]) == (quote.second_price, 5) and quote.second_price > 0
    assert (answer["unit_price"], answer["credits"]) == (5 * quote.second_price, 2 * 5 * quote.second_price)
    assert answer["affordable"] == (answer["credits"] <= 100)


def test_the_account_through_ingest_is_the_ledgers_balance(tenant_factory, ledger):
    tenant = tenant_factory(credits=250)

    account = tenant.http.get("/v1/account")

    assert account.status_code == 200, account.text
    balance = ledger.GetBalance(pb.GetBalanceRequest(tenant_id=tenant.id))
    assert account.json() == {
        "tenant_id": tenant.id, "available": 250, "posted": 250, "pending": 0, "retry_tokens": 0,
        "report_policy": "refund",
        "grants": [{"id": g.id, "source": g.source, "amount": g.amount, "remaining": g.remaining, "expires_at": None}
                   for g in balance.grants]}
    assert [g.amount for g in balance.grants] == [250]


def test_a_tenant_without_credits_has_an_empty_account_and_unaffordable_quotes(tenant_factory):
    tenant = tenant_factory(credits=0)

    account = tenant.http.get("/v1/account").json()
    quote = tenant.http.post("/v1/quotes", json={"images": 2}).json()

    assert (account["available"], account["grants"]) == (0, [])
    assert (quote["credits"], quote["available"], quote["affordable"]) == (20, 0, False)


@pytest.mark.parametrize("body, field", [
    ({"images": 0}, "images"),
    ({"images": 101}, "images"),  # the largest order the platform takes is 100 images
    ({"tier": "premium"}, "tier"),
    ({"colour": "blue"}, "colour"),
    ({"template": "x" * 65}, "template"),
])
def test_a_malformed_quote_is_422_naming_the_field(tenant_factory, body, field):
    tenant = tenant_factory(credits=0)
    problem = assert_problem(tenant.http.post("/v1/quotes", json=body), 422)
    assert any(field in e["field"] for e in problem["errors"])


def test_a_quote_for_a_template_without_a_price_is_422_from_the_ledger(tenant_factory):
    tenant = tenant_factory(credits=0)
    problem = assert_problem(tenant.http.post("/v1/quotes", json={"template": "portrait"}), 422)
    assert problem["type"] == "/problems/invalid-quote" and "'portrait'" in problem["detail"]


def test_quotes_and_the_account_need_an_api_key(platform):
    for response in (httpx.post(f"{platform.ingest_url}/v1/quotes", json={}),
                     httpx.get(f"{platform.ingest_url}/v1/account", headers={"Authorization": "Bearer nope"})):
        assert_problem(response, 401)
