"""Hosted adapters run the stages their configuration declares: the candidate's image goes to
the stage's model as a data: URI in the configured field, with the configured parameters,
and the image that comes back is the stage's output. Against the fal and Replicate stubs."""

import base64
import io
import uuid

import pytest
from PIL import Image

from services.common.templates import Stage
from services.router.engine import RoutingEngine
from services.router.pipeline import run_pipeline
from services.router.providers.base import GenerationRequest, ProviderContext, ProviderError
from services.router.providers.factory import build_providers
from services.router.providers.registry import RegistryError, parse_registry
from services.router.routing_types import RouteRequest
from tests.router.market import Behaviour
from tests.router.stubs import STUB_SECRET, Stub, stub_provider

STAGE_MODEL = {"fal": "fal-ai/esrgan", "replicate": "v-esrgan"}
UPSCALE = {"image_field": "image_url", "params": {"scale": 2}, "param_fields": {"factor": "upscale_factor"}}


@pytest.fixture(params=["fal", "replicate"])
def hosted(request) -> Stub:
    return request.getfixturevalue(request.param)


def upscaler(stub: Stub, **stages) -> dict:
    """A registry entry for a hosted upscaler on `stub` (upscale and, if given, other stages)."""
    model = {"name": "esrgan", "version": "1", "remote_id": STAGE_MODEL[stub.adapter]}
    entry = stub_provider(stub, price=2_500)
    stages = {"upscale": UPSCALE | {"model": model}} | stages
    capabilities = entry["capabilities"] | {"stages": ["upscale", "remove_background"]}
    return entry | {"capabilities": capabilities, "stages": stages}


def provider_over(stub: Stub, client, entry: dict):
    registry = parse_registry({"providers": {"hosted": entry}})
    return build_providers(registry, {"STUB_KEY": STUB_SECRET}, context=ProviderContext(client=client))["hosted"]


def candidate_png(side: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def stage_call(capability: str = "upscale", indices: range = range(3, 4), **changes) -> GenerationRequest:
    fields = {"job_id": "job-1", "attempt": 1, "prompt": "a lighthouse", "seed": 100, "count": len(indices), "width": 32,
                  "height": 32, "model": "stub-model", "model_version": "1", "start_index": indices.start, "timeout_s": 2.0,
                  "capability": capability, "params": {"factor": 2, "unused": 1},
                  "inputs": {i: candidate_png() for i in indices}}
    return GenerationRequest(**(fields | changes))


def sent_image(body: dict) -> bytes:
    header, _, payload = body["image_url"].partition(",")
    assert header == "data:image/png;base64"
    return base64.b64decode(payload)


async def test_a_stage_sends_the_candidate_as_a_data_uri_and_returns_the_models_image(hosted, client):
    images = await provider_over(hosted, client, upscaler(hosted)).generate(stage_call())

    [remote] = hosted.market.requests.values()
    assert remote.model == STAGE_MODEL[hosted.adapter]
    assert sent_image(remote.body) == candidate_png()
    assert remote.body["scale"] == 2 and remote.body["upscale_factor"] == 2
    assert "unused" not in remote.body and "prompt" not in remote.body
    [image] = images
    assert image.index == 3 and image.media_type == "image/png" and image.cost_micro_usd == 2_500
    assert Image.open(io.BytesIO(image.data)).size == (64, 64)


async def test_the_prompt_goes_where_the_stage_puts_it(hosted, client):
    stylize = {"image_field": "image_url", "prompt_field": "prompt", "params": {"strength": 0.6}}
    entry = upscaler(hosted, remove_background=stylize)
    await provider_over(hosted, client, entry).generate(stage_call("remove_background"))
    [remote] = hosted.market.requests.values()
    assert remote.body["prompt"] == "a lighthouse" and remote.body["strength"] == 0.6
    assert remote.model == stub_provider(hosted, price=1)["models"][0]["remote_id"]  # the provider's own model


async def test_several_candidates_are_one_remote_request_each(hosted, client):
    images = await provider_over(hosted, client, upscaler(hosted)).generate(stage_call(indices=range(4, 6)))
    assert [i.index for i in images] == [4, 5]
    assert len(hosted.market.submissions) == 2


async def test_a_stage_without_configuration_is_refused_before_any_call(hosted, client):
    with pytest.raises(ProviderError) as refused:
        await provider_over(hosted, client, upscaler(hosted)).generate(stage_call("remove_background"))
    assert refused.value.kind == "bad_request" and "cannot run remove_background" in str(refused.value)
    assert hosted.market.requests == {}


async def test_a_video_result_fails_the_call(hosted, client):
    hosted.market.reset(Behaviour(video=True))
    with pytest.raises(ProviderError) as failed:
        await provider_over(hosted, client, upscaler(hosted)).generate(stage_call())
    assert failed.value.kind == "bad_output" and "video/mp4" in str(failed.value)


async def test_a_hosted_upscale_stage_is_the_pipelines_output_with_its_cost(fal, client):
    painter = {"adapter": "local", "models": [{"name": "stub-model", "version": "1"}],
               "capabilities": {"min_side": 16, "max_images_per_request": 4}, "price": {"per_image_micro_usd": 4000},
               "concurrency": 4, "latency": {"base_s": 0.01, "per_image_s": 0.0},
               "local": {"defect_rate": 0.0, "latency_s": 0.0}}
    registry = parse_registry({"providers": {"painter": painter, "fal-upscale": upscaler(fal)}})
    engine = RoutingEngine(registry, build_providers(registry, {"STUB_KEY": STUB_SECRET}, context=ProviderContext(client=client)))
    request = RouteRequest(job_id=uuid.uuid4().hex, tenant_id="t1", tier="stable", template="generic",
                           prompt="a red fox", seed=7, images_needed=1, candidates=2, width=32, height=32,
                           time_left_s=20.0)

    result = await run_pipeline(engine, request, stages=(Stage(capability="generate"), Stage(capability="upscale")))

    assert len(result.images) == 2 and len(fal.market.requests) == 2
    for routed in result.images:
        assert routed.provider == "fal-upscale"
        assert Image.open(io.BytesIO(routed.image.data)).size == (64, 64)
        assert [(s.stage, s.provider, s.cost_micro_usd) for s in routed.steps] == [
            ("generate", "painter", 4000), ("upscale", "fal-upscale", 2_500)]
    assert result.actual_cost_micro_usd == 2 * 4000 + 2 * 2_500


def test_stages_are_refused_for_comfyui_and_must_be_declared_in_capabilities(comfyui, fal):
    comfy = stub_provider(comfyui, price=1) | {"capabilities": {"stages": ["upscale"]}, "stages": {"upscale": {}}}
    with pytest.raises(RegistryError, match="'stages' do not apply to adapter 'comfyui'"):
        parse_registry({"providers": {"c": comfy}})
    undeclared = stub_provider(fal, price=1) | {"stages": {"upscale": {}}}
    with pytest.raises(RegistryError, match="not in capabilities.stages"):
        parse_registry({"providers": {"f": undeclared}})
