"""Each model's inputs, declared in providers.yaml: a request's size, count, seed, negative
prompt and steps mapped onto the model's own fields, checked when the file loads; where the
API key may go; and the price shapes (by size, per step)."""

import copy

import pytest

from services.router.providers.base import GenerationRequest
from services.router.providers.entry_parts import PriceModel
from services.router.providers.inputs import ModelInputs
from services.router.providers.model_calls import model_input
from services.router.providers.registry import RegistryError, parse_registry

FLUX_ON_REPLICATE = {"size": {"style": "aspect_ratio", "field": "aspect_ratio", "ratios": ["1:1", "16:9", "9:16"],
                              "megapixels_field": "megapixels", "megapixels": ["1", "0.25"], "multiple_of": 16},
                     "count": {"field": "num_outputs", "max": 4}, "seed": {"field": "seed"},
                     "fixed": {"output_format": "png"}}
ENTRY = {"adapter": "replicate", "credentials": "REPLICATE_API_TOKEN", "price": {"per_image_micro_usd": 3000},
         "concurrency": 4, "models": [{"name": "flux-schnell", "version": "1",
                                       "remote_id": "black-forest-labs/flux-schnell", "inputs": FLUX_ON_REPLICATE}]}


def request(width: int = 512, height: int = 512, count: int = 2, **params) -> GenerationRequest:
    return GenerationRequest(job_id="j", attempt=1, prompt="a fox", seed=7, count=count, width=width, height=height,
                             model="flux-schnell", model_version="1", start_index=3, params=params)


def test_flux_on_replicate_is_asked_by_aspect_ratio_and_megapixels():
    inputs = ModelInputs.model_validate(FLUX_ON_REPLICATE)
    square = model_input(inputs, request(512, 512))
    assert square.payload == {"prompt": "a fox", "aspect_ratio": "1:1", "megapixels": "0.25", "num_outputs": 2,
                              "seed": 10, "output_format": "png"}
    assert square.size == (512, 512)
    assert model_input(inputs, request(1344, 768)).payload["aspect_ratio"] == "16:9"
    assert inputs.can_make(1344, 768) and inputs.can_make(1024, 1024)
    assert not inputs.can_make(320, 240), "no ratio or area of FLUX on Replicate is within 10 % of 320×240"


@pytest.mark.parametrize("size, asked, sent, made", [
    ({"style": "size", "field": "size", "sizes": ["1024x1024", "1536x1024", "1024x1536"]}, (1500, 1000),
     {"size": "1536x1024"}, (1536, 1024)),
    ({"style": "width_height", "multiple_of": 32}, (500, 380), {"width": 512, "height": 384}, (512, 384)),
    ({"style": "image_size", "field": "image_size", "multiple_of": 8}, (300, 200),
     {"image_size": {"width": 304, "height": 200}}, (304, 200)),
    ({"style": "image_size", "field": "image_size", "presets": {"square_hd": "1024x1024", "landscape_4_3": "1024x768"}},
     (1000, 760), {"image_size": "landscape_4_3"}, (1024, 768)),
    ({"style": "fixed", "sizes": ["1024x1024"]}, (1024, 1024), {}, (1024, 1024)),
])
def test_each_size_style_sends_the_size_the_model_will_make(size, asked, sent, made):
    call = model_input(ModelInputs.model_validate({"size": size}), request(*asked))
    assert {k: v for k, v in call.payload.items() if k != "prompt"} == sent
    assert call.size == made


def test_negative_prompt_steps_parameters_and_fixed_inputs_go_where_declared():
    inputs = ModelInputs.model_validate({
        "prompt_field": "positivePrompt", "seed": {"field": "seed", "max": 5},
        "negative_prompt": {"field": "negativePrompt"}, "steps": {"field": "steps", "default": 4, "max": 8},
        "params": {"guidance": "CFGScale"}, "fixed": {"outputType": "URL"}})
    payload = model_input(inputs, request(count=1, negative_prompt="blur", steps=30, guidance=3.5, unused=1)).payload
    assert payload == {"positivePrompt": "a fox", "width": 512, "height": 512, "seed": 10 % 6,
                       "negativePrompt": "blur", "steps": 8, "CFGScale": 3.5, "outputType": "URL"}
    assert model_input(inputs, request()).payload["steps"] == 4


@pytest.mark.parametrize("inputs, where, message", [
    ({"size": {"style": "aspect_ratio", "field": "aspect_ratio"}}, "inputs.size", "needs `ratios`"),
    ({"size": {"style": "aspect_ratio", "field": "ar", "ratios": ["16/9"]}}, "inputs.size.ratios", "aspect ratio"),
    ({"size": {"style": "size"}}, "inputs.size", "needs `field`"),
    ({"size": {"style": "size", "field": "size", "sizes": ["1024*1024"]}}, "inputs.size.sizes", "1024x768"),
    ({"seed": {"field": "prompt"}}, "inputs", "given by both prompt_field and seed"),
    ({"count": {"field": "n", "max": 0}}, "inputs.count.max", "greater than or equal to 1"),
    ({"steps": {"field": "steps"}}, "inputs.steps.default", "Field required"),
])
def test_a_wrong_model_input_is_refused_naming_its_field(inputs, where, message):
    entry = copy.deepcopy(ENTRY)
    entry["models"][0]["inputs"] = inputs
    with pytest.raises(RegistryError) as raised:
        parse_registry({"providers": {"flux": entry}}, "providers.yaml")
    assert f"providers.flux.models.0.{where}" in str(raised.value) and message in str(raised.value)


def test_a_model_that_takes_no_count_makes_one_image_a_call():
    entry = copy.deepcopy(ENTRY)
    entry["models"][0]["inputs"] = {"seed": {"field": "seed"}}
    assert parse_registry({"providers": {"flux": entry}}).provider("flux").max_batch == 1
    assert parse_registry({"providers": {"flux": ENTRY}}).provider("flux").max_batch == 4


@pytest.mark.parametrize("url, allowed", [
    ("https://api.replicate.com/v1/predictions/p1", True),
    ("https://replicate.delivery/xezq/out-0.png", True),
    ("https://pbxt.replicate.delivery/out-0.png", True),
    ("http://pbxt.replicate.delivery/out-0.png", False),
    ("https://replicate.delivery.example.com/out-0.png", False),
    ("https://images.example.com/out-0.png", False),
    ("https://api.replicate.com:8443/v1/predictions/p1", False),
])
def test_the_key_goes_only_to_the_providers_own_hosts(url, allowed):
    config = parse_registry({"providers": {"flux": ENTRY}}).provider("flux")
    assert config.may_receive_credentials(url) is allowed


def test_an_entry_can_add_hosts_for_its_key_and_a_local_endpoint_keeps_its_port():
    local = ENTRY | {"endpoint": "http://127.0.0.1:9000", "credential_hosts": ["cdn.example.com"]}
    config = parse_registry({"providers": {"flux": local}}).provider("flux")
    assert config.may_receive_credentials("http://127.0.0.1:9000/v1/predictions")
    assert not config.may_receive_credentials("http://127.0.0.1:9001/files/1.png")
    assert config.may_receive_credentials("https://cdn.example.com/1.png")


def test_prices_by_size_and_per_step():
    openai = PriceModel(per_image_by_size={"1024x1024": 42_000, "1536x1024": 63_000, "1024x1536": 63_000})
    assert openai.price_micro_usd((1024, 1024), seconds=9) == 42_000
    assert openai.price_micro_usd((1536, 1024), seconds=0) == 63_000
    assert openai.price_micro_usd((1000, 1500), seconds=0) == 63_000  # the nearest listed size
    runware = PriceModel(per_step_micro_usd=150)
    assert runware.price_micro_usd((1024, 1024), seconds=0, steps=4) == 600
    assert runware.price_micro_usd((1024, 1024), seconds=0) == 0
