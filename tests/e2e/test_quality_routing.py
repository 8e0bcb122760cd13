"""Routing that reacts to quality, five services as processes: a cheap stub provider that
starts answering 200 with black images loses the template's traffic once the scorer has
rejected a few of them, ListProviders says why, and after it recovers a half-open probe
wins the traffic back.

This fleet has topics and schemas of its own and two providers: `stub`, a fal-style HTTP
stub the test steers, so cheap that even a poor pass-rate estimate keeps it first on cost
(only its quality breaker can move the traffic), and `solid`, a dearer local painter.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import yaml

from genline_stack.embedded import create_topics
from genline_stack.fleet import ServiceFleet
from services.common.contracts import all_topics
from services.router.grpc import pb, rpc
from tests.e2e.conftest import make_tenant
from tests.identity import channel_as
from tests.router.market import Behaviour
from tests.router.queue_apis import fal_app
from tests.router.stubs import STUB_SECRET, Stub, StubMarket, serve, stub_provider

WINDOW_VERDICTS = 4
# Long enough that a job through five loaded processes ends before the breaker half-opens.
COOLDOWN_S = 20
SIDE = 256


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    market = StubMarket(Behaviour(side=SIDE))
    with serve(fal_app(market)) as url:
        yield Stub("fal", url, market)


def registry(stub: Stub) -> dict:
    solid = {
        "adapter": "local", "models": [{"name": "stub-model", "version": "1"}],
        "capabilities": {"max_side": 2048, "max_images_per_request": 8},
        "price": {"per_image_micro_usd": 20_000}, "concurrency": 8,
        "timeouts": {"submit_s": 5, "overall_s": 30}, "latency": {"base_s": 0.05, "per_image_s": 0.02},
        "pass_rate_prior": {"mean": 0.95, "strength": 4}, "local": {"defect_rate": 0.0, "failure_rate": 0.0},
    }
    return {"providers": {"stub": stub_provider(stub, price=1_000, overall_s=10.0, prior=0.9), "solid": solid}}


@pytest.fixture(scope="module")
def fleet(endpoints, tmp_path_factory, stub) -> Iterator[ServiceFleet]:
    namespace = f"quality{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    directory = tmp_path_factory.mktemp("quality")
    providers = directory / "providers.yaml"
    providers.write_text(yaml.safe_dump(registry(stub)))
    fleet = ServiceFleet(endpoints=endpoints, log_dir=directory / "logs", namespace=namespace, extra_env={
        "GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "GENLINE_PROVIDERS_PATH": str(providers), "GENLINE_PROVIDER_SECRETS": f'{{"STUB_KEY": "{STUB_SECRET}"}}',
        "GENLINE_IMAGE_WIDTH": str(SIDE), "GENLINE_IMAGE_HEIGHT": str(SIDE),
        "GENLINE_QUALITY_WINDOW_VERDICTS": str(WINDOW_VERDICTS), "GENLINE_QUALITY_COOLDOWN_S": str(COOLDOWN_S),
    })
    try:
        fleet.start_all()
        yield fleet
    finally:
        fleet.stop_all()


def quality_of(fleet: ServiceFleet, template: str = "generic"):
    async def ask():
        async with channel_as(fleet.endpoints, "ingest", f"127.0.0.1:{fleet.router_grpc_port}", "router") as channel:
            return await rpc.RouterServiceStub(channel).ListProviders(pb.ListProvidersRequest())
    stub = next(p for p in asyncio.run(ask()).providers if p.name == "stub")
    return stub.quality[template] if template in stub.quality else None


def providers_of(job: dict) -> set[str]:
    return {score["provider"] for score in job["scores"]}


def test_black_images_move_the_traffic_and_a_probe_brings_it_back(endpoints, fleet, stub):
    tenant = make_tenant(endpoints, fleet, credits=1_000)

    def run_job() -> dict:
        job_id = tenant.submit(images=1, candidates=2, seed=int(time.time() * 1000) % 10_000)
        return tenant.wait_settled([job_id])[job_id]

    healthy = run_job()
    assert healthy["state"] == "succeeded" and providers_of(healthy) == {"stub"}

    stub.market.reset(Behaviour(side=SIDE, black=True))
    black_job = run_job()  # its rework rounds keep feeding the scorer's verdicts back
    black = [s for s in black_job["scores"] if s["provider"] == "stub"]
    assert black and all("blank" in s["failed"] for s in black)
    assert len(black) <= WINDOW_VERDICTS + 2  # the breaker opened after the fourth black candidate
    breaker = quality_of(fleet)
    assert breaker.state == "open"
    assert "passed scoring" in breaker.reason and "blank" in breaker.reason
    assert breaker.pass_rate == 0 and breaker.verdicts == WINDOW_VERDICTS
    # Whether the black job itself is rescued by "solid" depends on whether its verdicts open the
    # breaker before its rework budget runs out; the jobs after it must not see "stub" at all.
    assert black_job["state"] in ("succeeded", "failed")

    moved = run_job()
    assert providers_of(moved) == {"solid"}

    stub.market.reset(Behaviour(side=SIDE))
    deadline = time.monotonic() + 2 * COOLDOWN_S
    while quality_of(fleet).state == "open" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert quality_of(fleet).state == "half_open"
    probe = run_job()
    assert providers_of(probe) == {"stub"} and probe["state"] == "succeeded"
    assert quality_of(fleet).state == "closed"
    assert providers_of(run_job()) == {"stub"}
    tenant.http.close()
