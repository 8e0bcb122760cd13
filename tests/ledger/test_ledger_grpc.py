"""The ledger's gRPC API on the running service: health checking, reflection, balances,
quotes against the price book, and the paged journal."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
import yaml
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.ingest.jobs.routes.templates import template_prices
from services.ingest.ledger_calls import LedgerClient
from services.ledger.grpc import pb, rpc
from tests.identity import channel_as
from tests.ledger.conftest import admin_grant, served_ledger, served_ledger_settings

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

PRICE_BOOK = yaml.safe_load((Path(__file__).parents[2] / "services/ledger/pricebook.yaml").read_text())
PRICES = PRICE_BOOK["versions"][-1]
LEDGER_SERVICE = "genline.ledger.v1.LedgerService"


@pytest.fixture(scope="module")
def settings(endpoints):
    return served_ledger_settings(endpoints)


@pytest.fixture(scope="module")
async def http(settings):
    async with served_ledger(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
async def channel(http, settings, endpoints):
    async with channel_as(endpoints, "ingest", f"127.0.0.1:{settings.grpc_port}", "ledger") as channel:
        yield channel


@pytest.fixture
def ledger(channel):
    return rpc.LedgerServiceStub(channel)


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_health_checking_says_serving_for_the_server_and_the_ledger(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", LEDGER_SERVICE):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await health.Check(health_pb2.HealthCheckRequest(service="genline.nothing.v1.Nothing"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_ledger_service_and_describes_its_methods(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=LEDGER_SERVICE)]

    listed, described = [r async for r in reflection.ServerReflectionInfo(iter(requests))]

    assert {s.name for s in listed.list_services_response.service} >= {
        LEDGER_SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in described.file_descriptor_response.file_descriptor_proto]
    services = {(f.package, s.name): [m.name for m in s.method] for f in files for s in f.service}
    assert services[("genline.ledger.v1", "LedgerService")] == ["GetBalance", "Quote", "ListEntries", "GetKeySpend",
                                                                   "GetAlerts", "SetAlertSettings"]


async def test_get_balance_shows_the_grants_earliest_expiring_first(http, ledger):
    owner, soon = tenant(), datetime.now(UTC) + timedelta(days=3)
    await admin_grant(http, owner, 100)
    await admin_grant(http, owner, 40, expires_at=soon.isoformat())

    balance = await ledger.GetBalance(pb.GetBalanceRequest(tenant_id=owner))

    assert (balance.tenant_id, balance.available, balance.posted, balance.pending) == (owner, 140, 140, 0)
    assert (balance.retry_tokens, balance.report_policy) == (0, "refund")
    assert [(g.amount, g.remaining, g.source) for g in balance.grants] == [(40, 40, "admin"), (100, 100, "admin")]
    assert datetime.fromisoformat(balance.grants[0].expires_at) == soon and balance.grants[1].expires_at == ""


async def test_an_unknown_tenant_is_not_found(ledger):
    stranger = tenant()
    for call in (ledger.GetBalance(pb.GetBalanceRequest(tenant_id=stranger)),
                 ledger.ListEntries(pb.ListEntriesRequest(tenant_id=stranger))):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND and stranger in refused.value.details()


@pytest.mark.parametrize("template, tier", [(t, tier) for t, tiers in PRICES["prices"].items() for tier in tiers])
async def test_a_quote_is_the_price_book_times_the_images(http, ledger, template, tier):
    buyer = tenant()
    await admin_grant(http, buyer, 50)
    unit = PRICES["prices"][template][tier]

    quote = await ledger.Quote(pb.QuoteRequest(tenant_id=buyer, template=template, tier=tier, images=3))

    assert (quote.unit_price, quote.credits, quote.pricebook_version) == (unit, 3 * unit, PRICES["version"])
    assert quote.max_provider_spend_micro_usd == 3 * PRICES["provider_spend_cap_per_image_micro_usd"][tier]
    assert (quote.available, quote.affordable) == (50, 3 * unit <= 50)


async def test_a_quote_for_no_tier_is_the_stable_price_and_holds_nothing(http, ledger):
    buyer = tenant()
    await admin_grant(http, buyer, 10)

    quote = await ledger.Quote(pb.QuoteRequest(tenant_id=buyer, template="headshot", images=1))

    assert (quote.credits, quote.affordable) == (PRICES["prices"]["headshot"]["stable"], False)
    assert (await ledger.GetBalance(pb.GetBalanceRequest(tenant_id=buyer))).available == 10


async def test_a_video_quote_is_priced_by_the_second_at_its_resolution(http, ledger):
    buyer = tenant()
    await admin_grant(http, buyer, 100)
    per_second = PRICES["video_second_prices"]["fast"]

    quote = await ledger.Quote(pb.QuoteRequest(tenant_id=buyer, template="text-to-video", tier="fast", images=2,
                                               video_duration_s=4.5, video_resolution="720p"))

    assert (quote.second_price, quote.clip_seconds) == (per_second["720p"], 5)  # 4.5 s is billed as 5
    assert (quote.unit_price, quote.credits) == (5 * per_second["720p"], 2 * 5 * per_second["720p"])
    assert dict(quote.second_prices) == per_second
    assert quote.max_provider_spend_micro_usd == 2 * 5 * PRICES["provider_spend_cap_per_video_second_micro_usd"]["fast"]
    assert quote.affordable == (quote.credits <= 100)


async def test_the_template_list_shows_a_video_templates_prices_per_second_from_the_ledger(ledger):
    client = LedgerClient(ledger, 5)
    clips = await template_prices(client, tenant(), name="text-to-video")
    assert (clips.per_image, clips.per_second, clips.version) == ({}, PRICES["video_second_prices"], PRICES["version"])
    motion = await template_prices(client, tenant(), name="motion")
    assert motion.per_image == PRICES["prices"]["motion"] and motion.per_second == PRICES["video_second_prices"]
    stills = await template_prices(client, tenant(), name="generic")
    assert stills.per_image == PRICES["prices"]["generic"] and stills.per_second == {}


@pytest.mark.parametrize("request_fields, says", [
    ({"template": "portrait", "tier": "stable", "images": 1}, "'portrait'"),
    ({"template": "generic", "tier": "premium", "images": 1}, "'premium'"),
    ({"template": "generic", "tier": "stable", "images": 0}, "images"),
    ({"template": "text-to-video", "tier": "stable", "images": 1, "video_resolution": "720p"}, "no such clip"),
    ({"template": "text-to-video", "tier": "stable", "images": 1, "video_duration_s": 2, "video_resolution": "4k"},
     "no such clip"),
])
async def test_a_quote_the_price_book_cannot_answer_is_invalid_argument(ledger, request_fields, says):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger.Quote(pb.QuoteRequest(tenant_id=tenant(), **request_fields))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in refused.value.details()


async def pages(ledger, tenant_id: str, size: int) -> list[list]:
    found, token = [], ""
    while True:
        page = await ledger.ListEntries(pb.ListEntriesRequest(tenant_id=tenant_id, page_size=size, page_token=token))
        found.append(list(page.entries))
        if not (token := page.next_page_token):
            return found


@pytest.mark.parametrize("size, shape", [(5, [5, 5, 2]), (4, [4, 4, 4]), (50, [12])])
async def test_list_entries_pages_through_every_entry_once_newest_first(http, ledger, settings, size, shape):
    owner = tenant()
    for credits in range(1, 13):
        await admin_grant(http, owner, credits)

    found = await pages(ledger, owner, size)

    assert [len(page) for page in found] == shape
    entries = [e for page in found for e in page]
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        journal = [r[0] for r in conn.execute(
            f'SELECT id FROM "{settings.schema_name}".entries WHERE tenant_id = %s ORDER BY id DESC', [owner])]
    assert [e.id for e in entries] == journal
    assert [e.amount for e in entries] == list(range(12, 0, -1))
    assert {(e.kind, e.credit_account) for e in entries} == {("grant", f"tenant:{owner}")}


@pytest.mark.parametrize("request_fields", [{"page_size": 501}, {"page_size": -1}, {"page_token": "not-a-token"}])
async def test_a_bad_page_request_is_invalid_argument(ledger, request_fields):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger.ListEntries(pb.ListEntriesRequest(tenant_id=tenant(), **request_fields))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page" in refused.value.details()
