"""How a model carries a subject and how a trainer is declared, as providers.yaml says, and what
a call sends: fal's `loras`, Together's `image_loras`, cog-flux's `lora_weights` with
`lora_scale`, the trigger word before the prompt, reference photos by the URLs the provider
keeps them at (one or a list), never inline; a model takes only weights of its own base, by the
link it reads. An order across
styles gives each candidate its style's words and parameters, and a hosted model one style
per call; a rework that names what each style misses asks for those only."""

import pytest

from services.common.contracts import StyleSpec
from services.router.providers.base import GenerationRequest
from services.router.providers.identity_inputs import IdentityInput
from services.router.providers.model_calls import model_input
from services.router.providers.registry import RegistryError, parse_registry
from services.router.styles import style_plan

PHOTO = b"\x89PNG\r\n\x1a\n" + b"0" * 16
LORA = IdentityInput(mode="lora", subject_id="s1", trigger_word="glxqzvyk", base="flux-dev",
                     weights_url="https://s3.example/identities/w.safetensors?X-Amz-Signature=abc",
                     provider_version="me/identities:0123")

FAL_LORA = {"identity": {"lora": {"field": "loras", "base": "flux-dev", "scale": 0.9}},
            "size": {"style": "image_size", "field": "image_size"}, "count": {"field": "num_images", "max": 4}}
TOGETHER = {"identity": {"lora": {"field": "image_loras", "base": "flux-dev"}}, "count": {"field": "n", "max": 4}}
COG_FLUX = {"identity": {"lora": {"field": "lora_weights", "style": "url", "scale_field": "lora_scale", "scale": 0.8,
                                  "base": "flux-dev"}}}
PULID = {"identity": {"reference": {"field": "reference_image_url"}}}
KONTEXT = {"identity": {"reference": {"field": "image_urls", "style": "list", "max": 2}}}


def provider(adapter: str, inputs: dict, **entry) -> dict:
    return {"adapter": adapter, "endpoint": "https://api.example", "credentials": "KEY",
            "models": [{"name": "m", "version": "1", "remote_id": "owner/m", "inputs": inputs}],
            "capabilities": {"identity": ["lora" if "lora" in inputs["identity"] else "reference"]},
            "price": {"per_image_micro_usd": 1000}, "concurrency": 2, **entry}


def config(adapter: str, inputs: dict, **entry):
    return parse_registry({"providers": {"p": provider(adapter, inputs, **entry)}}).providers["p"]


def request(identity: IdentityInput, **fields) -> GenerationRequest:
    return GenerationRequest(**({"job_id": "j", "attempt": 1, "prompt": "a headshot", "seed": 3, "count": 1,
                                 "width": 1024, "height": 1024, "model": "m", "model_version": "1",
                                 "identity": identity} | fields))


@pytest.mark.parametrize("adapter, inputs, field, sent", [
    ("fal", FAL_LORA, "loras", [{"path": LORA.weights_url, "scale": 0.9}]),
    ("openai-compatible", TOGETHER, "image_loras", [{"path": LORA.weights_url, "scale": 1.0}]),
    ("replicate", COG_FLUX, "lora_weights", LORA.weights_url),
])
def test_a_lora_goes_where_the_model_takes_it_with_the_trigger_word_first(adapter, inputs, field, sent):
    entry = config(adapter, inputs)
    payload = model_input(entry.inputs_for(entry.models[0]), request(LORA)).payload
    assert payload[field] == sent
    assert payload["prompt"] == "glxqzvyk a headshot"
    if adapter == "replicate":
        assert payload["lora_scale"] == 0.8


def test_reference_photos_go_by_the_urls_the_provider_keeps_them_at_one_per_candidate_or_a_list():
    photos = (PHOTO, PHOTO + b"1", PHOTO + b"2")
    urls = tuple(f"https://v3.fal.media/files/{n}.png" for n in range(3))
    reference = IdentityInput(mode="reference", subject_id="s1", photos=photos, photo_urls=urls)
    one = config("fal", PULID)
    second = model_input(one.inputs_for(one.models[0]), request(reference, start_index=1)).payload
    assert second["reference_image_url"] == urls[1] and second["prompt"] == "a headshot"
    listed = config("fal", KONTEXT)
    assert model_input(listed.inputs_for(listed.models[0]), request(reference)).payload["image_urls"] == list(urls[:2])
    with pytest.raises(ValueError, match="files the provider keeps"):  # never inline
        model_input(one.inputs_for(one.models[0]), request(IdentityInput(mode="reference", subject_id="s1", photos=photos)))


def test_a_provider_that_keeps_no_files_takes_no_reference_photos():
    with pytest.raises(RegistryError, match="keeps no files"):
        config("openai-compatible", PULID)


def test_a_model_carries_only_weights_of_its_base_by_a_link_it_reads():
    fal = config("fal", FAL_LORA)
    pin = fal.models[0]
    assert fal.carries(pin, LORA)
    assert not fal.carries(pin, IdentityInput(mode="lora", subject_id="s1", base="sdxl", weights_url="https://x/w.safetensors"))
    assert not fal.carries(pin, IdentityInput(mode="reference", subject_id="s1", photos=(PHOTO,)))
    old_cog = config("replicate", {"identity": {"lora": {**COG_FLUX["identity"]["lora"], "link": "replicate_version"}}})
    assert old_cog.carries(old_cog.models[0], LORA)
    assert not old_cog.carries(old_cog.models[0], IdentityInput(mode="lora", subject_id="s1", base="flux-dev", weights_url="https://x"))
    # A version as cog-flux's weights loader reads one (`owner/name/version`), not as Replicate names it.
    assert model_input(old_cog.inputs_for(old_cog.models[0]), request(LORA)).payload["lora_weights"] == \
        "me/identities/0123"


TRAINER = {"model": {"name": "t", "version": "1", "remote_id": "fal-ai/flux-lora-fast-training"}, "base": "flux-dev",
           "price": {"per_step_micro_usd": 2000}, "steps": {"default": 1000}}


@pytest.mark.parametrize("entry, fragment", [
    (provider("fal", FAL_LORA) | {"capabilities": {"identity": ["reference"]}}, "declare no inputs.identity.reference"),
    (provider("openai", FAL_LORA) | {"trainer": TRAINER}, "trains no identities"),
    (provider("replicate", COG_FLUX) | {"trainer": TRAINER}, "destination"),
    (provider("fal", FAL_LORA) | {"capabilities": {"stages": []}}, "declares a trainer"),
    (provider("fal", FAL_LORA) | {"trainer": {**TRAINER, "fixed": {"steps": 10}}}, "given twice"),
    (provider("fal", FAL_LORA) | {"trainer": {**TRAINER, "images": {"via": "presigned", "style": "list"}}}, "zip"),
    (provider("fal", FAL_LORA) | {"models": [{"name": "m", "version": "1", "inputs": {
        "prompt_field": "loras", "identity": {"lora": {"field": "loras", "base": "flux-dev"}}}}]}, "given by both"),
])
def test_a_wrong_identity_or_trainer_declaration_is_refused_naming_it(entry, fragment):
    with pytest.raises(RegistryError, match=fragment):
        parse_registry({"providers": {"p": entry}})


def test_a_trainers_price_is_per_run_and_per_step():
    entry = config("fal", FAL_LORA, capabilities={"stages": []},
                   trainer=TRAINER | {"price": {"per_run_micro_usd": 500_000, "per_step_micro_usd": 1500}})
    assert entry.trainer is not None and entry.trainer.price_micro_usd == 500_000 + 1500 * 1000


STYLES = [StyleSpec(name=name, prompt=f"{name} words", params={"backdrop": colour})
          for name, colour in (("studio", "white"), ("window", "gray"), ("park", "green"))]


def test_candidates_cycle_through_the_styles_and_a_rework_asks_only_what_each_misses():
    first = style_plan(STYLES)
    assert first is not None and [first.style_of(i).name for i in range(7)] == \
        ["studio", "window", "park", "studio", "window", "park", "studio"]
    rework = style_plan(STYLES, {"studio": 0, "window": 2, "park": 1}, start=40)
    assert rework is not None and [rework.style_of(i).name for i in range(40, 46)] == \
        ["window", "window", "park", "window", "window", "park"]
    assert style_plan(None) is None and style_plan(STYLES, {"gone": 3}) == first


def test_a_styled_batch_is_cut_into_one_call_per_style_with_its_words_and_params():
    plan = style_plan(STYLES, {"studio": 2, "window": 1}, start=0)
    assert plan is not None
    batch = GenerationRequest(job_id="j", attempt=1, prompt="a headshot", seed=3, count=5, width=512, height=512,
                              model="m", model_version="1", params={"steps": 4}, styles=plan.styles_for(range(5)))
    runs = batch.style_runs()
    assert [(run.start_index, run.count) for run in runs] == [(0, 2), (2, 1), (3, 2)]
    assert runs[1].prompt_for(2) == "a headshot, window words"
    assert runs[1].params_for(2) == {"steps": 4, "backdrop": "gray"}
    entry = config("fal", FAL_LORA | {"params": {"backdrop": "background"}})
    payload = model_input(entry.inputs_for(entry.models[0]), runs[1]).payload
    assert payload["prompt"] == "a headshot, window words" and payload["background"] == "gray"
