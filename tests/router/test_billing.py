"""Costs recorded as each provider bills them: for a job on each simulator, the cost the
adapter records equals what the provider's published pricing bills for it (sources in
tests/router/fixtures/README.md, "Billing").

    replicate          predict_time × the model's price per second
    fal                per megapixel, each image rounded up to whole 1024×1024 megapixels;
                       images the safety checker drops are billed too
    comfyui            the execution time the history reports × the GPU's price per second
    openai             the answer's token usage × the model's token prices
    openai-compatible  Together: per megapixel of the exact area
    bfl                the task's `cost` in credits (USD 0.01 each)
    stability          the model's credits per image (core: 3, USD 0.03)
    runware            each image's `cost` (USD)
"""

from dataclasses import replace

import pytest

from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.factory import build_provider
from services.router.providers.registry import ProviderConfig
from tests.router.image_apis import OUTPUT_TOKENS
from tests.router.market import SECRET, Script
from tests.router.stubs import entry
from tests.router.test_conformance import request_for

# Generous timeouts: these tests are about money, not speed.
SLACK = {"timeouts": {"submit_s": 10, "overall_s": 30, "poll_backoff_max_s": 0.2}}

PRICES = {
    "replicate": {"per_second_micro_usd": 1_400},
    "fal": {"per_megapixel_micro_usd": 25_000},
    "comfyui": {"per_second_micro_usd": 600},
    "openai": {"per_image_by_size": {"1024x1024": 11_000}, "per_text_input_token_micro_usd": 5,
               "per_image_input_token_micro_usd": 10, "per_output_token_micro_usd": 40},
    "openai-compatible": {"per_megapixel_micro_usd": 2_700},
    "bfl": {"per_image_micro_usd": 40_000},
    "stability": {"per_image_micro_usd": 30_000},
    "runware": {"per_step_micro_usd": 300},
}


def priced(simulator, client, price: dict):
    """The adapter over `simulator`, its entry priced as the provider publishes."""
    config = ProviderConfig.model_validate({"name": f"sim-{simulator.adapter}",
                                            **entry(simulator) | {"price": price} | SLACK})
    return build_provider(config, secret=SECRET, context=ProviderContext(client=client))


def billed(adapter: str, request, market) -> int:
    """What the provider's published pricing bills for the job the simulator ran."""
    job = market.submissions[0]
    count = request.count
    if adapter == "replicate":
        return round(1_400 * 0.5 * count)  # the simulator reports predict_time 0.5 s an image
    if adapter == "fal":
        return 25_000 * 2 * count  # 1088×1024 is 1.06 megapixels of 1024×1024: billed as two
    if adapter == "comfyui":
        return round(600 * 2.0)  # the history's execution_start → execution_success: 2.0 s
    if adapter == "openai":
        text = max(1, len(request.prompt) // 4)
        return 5 * text + 40 * OUTPUT_TOKENS[("low", "1024x1024")] * count
    if adapter == "openai-compatible":
        return round(2_700 * job.width * job.height / 1e6) * count
    if adapter == "bfl":
        return 4 * 10_000  # the fixture's `cost`: 4 credits
    if adapter == "stability":
        return 30_000
    return 1_300 * count  # Runware's `cost` of each image: USD 0.0013


@pytest.mark.parametrize("adapter", list(PRICES))
async def test_the_cost_recorded_is_what_the_provider_bills(adapter, simulators, client):
    simulator = simulators[adapter]
    simulator.market.reset()
    request = request_for(adapter, timeout_s=30.0)
    if adapter == "fal":
        request = replace(request, width=1088, height=1024, count=1)
    images = await priced(simulator, client, PRICES[adapter]).generate(request)
    assert sum(image.cost_micro_usd for image in images) == billed(adapter, request, simulator.market)


async def test_images_fal_drops_are_billed_on_the_ones_kept(fal, client):
    fal.market.reset(Script(flagged=1))
    images = await priced(fal, client, PRICES["fal"]).generate(request_for("fal", 30.0))
    assert len(images) == 1 and images[0].cost_micro_usd == 2 * 25_000  # two 512² images, one megapixel each


async def test_a_batch_fal_drops_whole_is_refused_with_its_bill(fal, client):
    fal.market.reset(Script(terminal="moderated"))
    with pytest.raises(ProviderError) as refused:
        await priced(fal, client, PRICES["fal"]).generate(request_for("fal", 30.0))
    assert refused.value.kind == "bad_request" and refused.value.billed_micro_usd == 2 * 25_000


def test_fal_prices_count_whole_megapixels_unless_the_entry_says(fal):
    plain = ProviderConfig.model_validate({"name": "f", **entry(fal) | {"price": {"per_megapixel_micro_usd": 25_000}}})
    assert plain.price.megapixels == "whole"
    assert plain.list_price_micro_usd(1536, 1024) == 50_000 and plain.list_price_micro_usd(1024, 1024) == 25_000
    exact = ProviderConfig.model_validate({"name": "f", **entry(fal) | {"price": {"per_megapixel_micro_usd": 25_000,
                                                                                  "megapixels": "exact"}}})
    assert exact.list_price_micro_usd(1536, 1024) == round(25_000 * 1536 * 1024 / 1e6)
