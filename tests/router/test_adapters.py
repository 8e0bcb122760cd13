"""HTTP adapters against stub servers that follow the fal, Replicate and ComfyUI contracts."""

import io

import pytest
from PIL import Image

from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.factory import build_provider
from services.router.providers.registry import ProviderConfig
from tests.router.stubs import STUB_SECRET, Behaviour, Stub, stub_provider

KINDS = ["fal", "replicate", "comfyui"]


@pytest.fixture(params=KINDS)
def stub(request) -> Stub:
    return request.getfixturevalue(request.param)


def adapter_for(stub: Stub, client, secret: str = STUB_SECRET, **entry):
    entry = stub_provider(stub, price=10_000, **entry)
    config = ProviderConfig.model_validate({"name": f"{stub.adapter}-stub", **entry})
    return build_provider(config, client, secret)


def generation(count: int = 3, start_index: int = 0, timeout_s: float = 2.0) -> GenerationRequest:
    return GenerationRequest(job_id="job-1", attempt=1, prompt="a lighthouse", seed=100, count=count, width=32,
                             height=32, model="stub-model", model_version="1", start_index=start_index,
                             timeout_s=timeout_s)


async def test_adapter_returns_real_pngs_for_the_requested_indices(stub, client):
    images = await adapter_for(stub, client).generate(generation(count=3, start_index=5))
    assert [i.index for i in images] == [5, 6, 7]
    assert [i.seed for i in images] == [105, 106, 107]
    for image in images:
        assert image.media_type == "image/png"
        assert Image.open(io.BytesIO(image.data)).size == (32, 32)
        assert image.cost_micro_usd == 10_000
    assert stub.market.generated_candidates() == {("job-1", 1, i): 1 for i in (5, 6, 7)}


async def test_images_differ_by_candidate(stub, client):
    images = await adapter_for(stub, client).generate(generation(count=3))
    assert len({i.data for i in images}) == 3


async def test_429_is_rate_limited_with_retry_after(stub, client):
    stub.market.reset(Behaviour(error_status=429, retry_after_s=7))
    with pytest.raises(ProviderError) as raised:
        await adapter_for(stub, client).generate(generation())
    assert raised.value.kind == "rate_limited"
    assert raised.value.retry_after_s == 7


async def test_5xx_is_server_error(stub, client):
    stub.market.reset(Behaviour(error_status=503))
    with pytest.raises(ProviderError) as raised:
        await adapter_for(stub, client).generate(generation())
    assert raised.value.kind == "server_error"
    assert raised.value.counts_against_health


async def test_4xx_is_bad_request(stub, client):
    stub.market.reset(Behaviour(error_status=422))
    with pytest.raises(ProviderError) as raised:
        await adapter_for(stub, client).generate(generation())
    assert raised.value.kind == "bad_request"
    assert not raised.value.counts_against_health


async def test_hanging_request_times_out_and_is_cancelled_remotely(stub, client):
    stub.market.reset(Behaviour(hang=True))
    with pytest.raises(ProviderError) as raised:
        await adapter_for(stub, client).generate(generation(timeout_s=0.5))
    assert raised.value.kind == "timeout"
    assert len(stub.market.cancelled()) == 1
    assert stub.market.generated_candidates() == {}


@pytest.mark.parametrize("kind", ["fal", "replicate"])
async def test_wrong_secret_makes_the_provider_unavailable(kind, request, client):
    stub = request.getfixturevalue(kind)
    with pytest.raises(ProviderError) as raised:
        await adapter_for(stub, client, secret="not-the-key").generate(generation())
    assert raised.value.kind == "unavailable"
    assert stub.market.requests == {}


async def test_replicate_short_prediction_completes_inside_prefer_wait(replicate, client):
    replicate.market.reset(Behaviour(latency_s=0.2))
    images = await adapter_for(replicate, client, overall_s=4.0).generate(generation(count=2, timeout_s=4.0))
    assert [i.index for i in images] == [0, 1]
    # Replicate bills predict_time (0.5 s per image in the stub), not our wall time.
    assert all(i.cost_micro_usd == 10_000 for i in images)


async def test_replicate_unknown_version_is_bad_request(replicate, client):
    config = stub_provider(replicate, price=10_000)
    config["models"][0]["remote_id"] = "v-gone"
    adapter = build_provider(ProviderConfig.model_validate({"name": "r", **config}), client, STUB_SECRET)
    with pytest.raises(ProviderError) as raised:
        await adapter.generate(generation())
    assert raised.value.kind == "bad_request"


async def test_unreachable_endpoint_is_unavailable(client):
    dead = Stub("fal", "http://127.0.0.1:9", None)
    with pytest.raises(ProviderError) as raised:
        await adapter_for(dead, client).generate(generation())
    assert raised.value.kind == "unavailable"


async def test_model_the_provider_lacks_is_refused_before_any_call(fal, client):
    request = GenerationRequest(job_id="j", attempt=1, prompt="p", seed=1, count=1, width=32, height=32,
                                model="stub-model", model_version="2")
    with pytest.raises(ProviderError) as raised:
        await adapter_for(fal, client).generate(request)
    assert raised.value.kind == "bad_request"
    assert fal.market.requests == {}
