"""A template's stages run through the engine: each stage on its own providers, cheapest
first, every call tagged with its stage, and the attempt's cost the sum of the stages'."""

import asyncio
import io
import uuid
from dataclasses import replace

import httpx
import numpy as np
import pytest
from PIL import Image

from services.common.templates import Stage
from services.router.clock import run_simulated
from services.router.engine import RoutingEngine
from services.router.pipeline import MissingInput, run_pipeline
from services.router.providers.base import GenerationRequest, ProviderContext, ProviderError
from services.router.providers.factory import build_providers
from services.router.providers.registry import RegistryError, parse_registry
from services.router.routing_types import AllProvidersFailed, RouteRequest


def provider(price: int, stage: str = "generate", operation: str | None = None, failure: float = 0.0,
             **options) -> dict:
    local = {"defect_rate": 0.0, "failure_rate": failure, "latency_s": 0.5}
    if operation:
        local |= {"operation": operation, "options": options}
    return {"adapter": "local", "models": [{"name": f"m-{price}", "version": "1"}],
            "capabilities": {"min_side": 16, "max_images_per_request": 4, "stages": [stage]},
            "price": {"per_image_micro_usd": price}, "concurrency": 4,
            "latency": {"base_s": 0.5, "per_image_s": 0.0}, "pass_rate_prior": {"mean": 0.9, "strength": 4},
            "local": local}


def engine_of(**providers) -> RoutingEngine:
    registry = parse_registry({"providers": providers})
    return RoutingEngine(registry, build_providers(registry))


def request(**overrides) -> RouteRequest:
    fields = {"job_id": uuid.uuid4().hex, "tenant_id": "t1", "tier": "stable", "template": "motion", "prompt": "a harbour",
                  "seed": 5, "images_needed": 1, "candidates": 2, "width": 64, "height": 64}
    return RouteRequest(**(fields | overrides))


def photo(side: int = 96) -> bytes:
    pixels = np.full((side, side, 3), 230, np.uint8)
    pixels[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = (200, 40, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_each_stage_runs_on_the_cheapest_provider_of_its_capability_and_costs_add_up():
    engine = engine_of(paint=provider(4000), upscale_dear=provider(2000, "upscale", "upscale"),
                       upscale_cheap=provider(500, "upscale", "upscale", method="nearest"),
                       animate=provider(3000, "animate", "animate"))
    stages = (Stage(capability="generate"), Stage(capability="upscale", params={"factor": 2}),
              Stage(capability="animate", params={"frames": 4, "width": 48, "height": 40}))
    result = run_simulated(run_pipeline(engine, request(), stages=stages))

    assert [[s.stage for s in i.steps] for i in result.images] == [["generate", "upscale", "animate"]] * 2
    assert {s.provider for i in result.images for s in i.steps} == {"paint", "upscale_cheap", "animate"}
    assert {(c.stage_index, c.stage) for c in result.calls} == {(0, "generate"), (1, "upscale"), (2, "animate")}
    assert result.actual_cost_micro_usd == sum(c.actual_cost_micro_usd for c in result.calls) == 2 * (4000 + 500 + 3000)
    clip = Image.open(io.BytesIO(result.images[0].image.data))
    assert (clip.format, clip.n_frames, clip.size) == ("WEBP", 4, (48, 40))


def test_a_pipeline_that_starts_from_the_photo_needs_one():
    engine = engine_of(cutout=provider(1500, "remove_background", "remove_background"))
    stages = (Stage(capability="remove_background"),)
    with pytest.raises(MissingInput):
        run_simulated(run_pipeline(engine, request(), stages=stages))
    result = run_simulated(run_pipeline(engine, replace(request(), input=photo()), stages=stages))
    cut = np.asarray(Image.open(io.BytesIO(result.images[0].image.data)))
    assert cut.shape[2] == 4 and cut[0, 0, 3] == 0 and cut[48, 48, 3] == 255


def test_a_failing_stage_provider_falls_back_to_another_of_the_stage():
    engine = engine_of(paint=provider(4000), broken=provider(100, "upscale", "upscale", failure=1.0),
                       steady=provider(900, "upscale", "upscale"))
    result = run_simulated(run_pipeline(engine, request(candidates=1),
                                        stages=(Stage(capability="generate"), Stage(capability="upscale"))))
    upscale_calls = [c for c in result.calls if c.stage == "upscale"]
    assert [c.provider for c in upscale_calls][-1] == "steady" and "broken" in {c.provider for c in upscale_calls}
    assert result.images[0].steps[-1].provider == "steady"


def test_a_stage_pinned_to_a_provider_runs_only_there():
    engine = engine_of(paint=provider(4000), cheap=provider(100, "upscale", "upscale"),
                       pinned=provider(900, "upscale", "upscale"))
    stages = (Stage(capability="generate"), Stage(capability="upscale", provider="pinned"))
    result = run_simulated(run_pipeline(engine, request(candidates=1), stages=stages))
    assert result.images[0].steps[-1].provider == "pinned"


def test_a_stage_no_provider_runs_fails_the_attempt_with_the_calls_made():
    engine = engine_of(paint=provider(4000))
    with pytest.raises(AllProvidersFailed) as failed:
        run_simulated(run_pipeline(engine, request(candidates=1),
                                   stages=(Stage(capability="generate"), Stage(capability="stylize"))))
    assert failed.value.spent_micro_usd == 4000 and [c.stage for c in failed.value.calls] == ["generate"]


def test_a_local_stage_provider_must_name_its_operation():
    with pytest.raises(RegistryError, match="local.operation"):
        parse_registry({"providers": {"x": provider(100, "upscale")}})


def test_a_hosted_adapter_refuses_a_stage_it_cannot_send_an_image_to():
    hosted = {"adapter": "fal", "endpoint": "https://queue.example", "credentials": "FAL_KEY",
              "models": [{"name": "m", "version": "1"}], "capabilities": {"stages": ["upscale"]},
              "price": {"per_image_micro_usd": 10}, "concurrency": 1}
    registry = parse_registry({"providers": {"hosted": hosted}})

    async def call():
        async with httpx.AsyncClient() as client:
            provider = build_providers(registry, {"FAL_KEY": "k"}, context=ProviderContext(client=client))["hosted"]
            await provider.generate(GenerationRequest(job_id="j", attempt=1, prompt="p", seed=1, count=1, width=64,
                                                      height=64, model="m", model_version="1", capability="upscale",
                                                      input=photo()))

    with pytest.raises(ProviderError) as refused:
        asyncio.run(call())
    assert refused.value.kind == "bad_request" and "cannot run upscale" in str(refused.value)
