"""Identity models against simulators of their published schemas (identity_apis.py): a trained
LoRA's copy in the internal bucket goes by a presigned link to fal's `loras`, Together's
`image_loras` and cog-flux's `lora_weights` (with `lora_scale`), each model fetching it as its
runner would, the trigger word first in the prompt; a cog-flux built before it kept a URL's
query string cannot read a presigned link, so such a model is declared to take the version a
Replicate training made, as cog-flux's loader reads a version; reference models get the subject's
photos as files uploaded once to fal's storage (PuLID one, Kontext a list), never inline, and
every output is checked as any image is."""

import base64

import httpx
import pytest

from services.common.storage import Blob
from services.router.providers.base import GenerationRequest, ProviderContext, ProviderError
from services.router.providers.factory import build_provider
from services.router.providers.identity_inputs import IdentityInput
from services.router.providers.registry import parse_registry
from tests.router.identity_apis import (
    SAFETENSORS,
    IdentityMarket,
    TrainingScript,
    fal_identity_app,
    replicate_identity_app,
    replicate_tar,
    together_identity_app,
)
from tests.router.market import SECRET
from tests.router.stubs import serve
from tests.router.subject_photos import astronaut_photos

LORA = {"field": "loras", "base": "flux-dev", "scale": 0.9}


@pytest.fixture(scope="module")
def simulated():
    market = IdentityMarket()
    with serve(fal_identity_app(market)) as fal, serve(replicate_identity_app(market)) as replicate, \
            serve(together_identity_app(market)) as together:
        yield market, {"fal": fal, "replicate": replicate, "openai-compatible": together}


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as shared:
        yield shared


@pytest.fixture
async def weights_link(object_store):
    """A LoRA's copy in the internal bucket and a presigned link to it, as a trained identity gives."""
    key = f"identities/t-models/subject/{base64.b32encode(b'identity').decode()}/weights.safetensors"
    await object_store.put(object_store.internal_bucket, key, content=Blob(SAFETENSORS, "application/octet-stream"))
    return object_store.presign_get(object_store.internal_bucket, key, ttl_s=600)


def provider(simulated, client, adapter: str, model: dict, identity: list[str]):
    market, urls = simulated
    entry = {"adapter": adapter, "endpoint": urls[adapter], "credentials": "STUB_KEY",
             **({"options": {"storage_url": urls[adapter]}} if adapter == "fal" else {}),
             "models": [{"name": "m", "version": "1", **model}],
             "capabilities": {"identity": identity, "max_images_per_request": 4, "max_megapixels": 1.2},
             "price": {"per_image_micro_usd": 30_000}, "concurrency": 2, "poll_interval_s": 0.01,
             "timeouts": {"submit_s": 5, "overall_s": 20}}
    config = parse_registry({"providers": {"p": entry}}).providers["p"]
    return build_provider(config, SECRET, context=ProviderContext(client=client))


def asked(identity: IdentityInput, **fields) -> GenerationRequest:
    return GenerationRequest(**({"job_id": "j-models", "attempt": 1, "prompt": "a headshot", "seed": 5, "count": 2,
                                 "width": 512, "height": 512, "model": "m", "model_version": "1",
                                 "identity": identity} | fields))


def lora(link: str, version: str | None = None) -> IdentityInput:
    return IdentityInput(mode="lora", subject_id="s", trigger_word="glxqzvyk", base="flux-dev", weights_url=link,
                         provider_version=version)


async def test_fal_flux_lora_fetches_the_presigned_weights_and_paints_with_them(simulated, client, weights_link):
    market, _ = simulated
    market.reset()
    fal = provider(simulated, client, "fal", {"remote_id": "fal-ai/flux-lora", "inputs": {
        "size": {"style": "image_size", "field": "image_size", "multiple_of": 8},
        "count": {"field": "num_images", "max": 4}, "seed": {"field": "seed"},
        "fixed": {"output_format": "png"}, "identity": {"lora": LORA}}}, ["lora"])
    images = await fal.generate(asked(lora(weights_link)))
    [made] = market.images
    assert made["body"]["loras"] == [{"path": weights_link, "scale": 0.9}]
    assert made["body"]["prompt"] == "glxqzvyk a headshot"
    assert market.fetched == [(weights_link, 200)] and len(images) == 2


async def test_together_takes_the_lora_in_image_loras(simulated, client, weights_link):
    market, _ = simulated
    market.reset()
    together = provider(simulated, client, "openai-compatible", {"remote_id": "black-forest-labs/FLUX.1-dev-lora",
                                                                 "inputs": {
        "size": {"multiple_of": 16}, "count": {"field": "n", "max": 4}, "seed": {"field": "seed"},
        "steps": {"field": "steps", "default": 28}, "fixed": {"response_format": "url"},
        "identity": {"lora": {"field": "image_loras", "base": "flux-dev"}}}}, ["lora"])
    images = await together.generate(asked(lora(weights_link)))
    [made] = market.images
    assert made["body"]["image_loras"] == [{"path": weights_link, "scale": 1.0}] and len(images) == 2
    assert market.fetched == [(weights_link, 200)]


COG_FLUX = {"remote_id": "black-forest-labs/flux-dev-lora", "inputs": {
    "size": {"style": "aspect_ratio", "field": "aspect_ratio", "ratios": ["1:1", "3:4", "4:3"],
             "megapixels_field": "megapixels", "megapixels": ["1", "0.25"], "multiple_of": 16},
    "count": {"field": "num_outputs", "max": 4}, "seed": {"field": "seed"}, "fixed": {"output_format": "png"},
    "identity": {"lora": {"field": "lora_weights", "style": "url", "scale_field": "lora_scale", "scale": 0.8,
                          "base": "flux-dev"}}}}


async def test_cog_flux_reads_a_presigned_link_only_from_the_commit_that_keeps_its_query(simulated, client,
                                                                                       weights_link):
    market, _ = simulated
    cog_flux = provider(simulated, client, "replicate", COG_FLUX, ["lora"])
    market.reset(TrainingScript(cog_flux="51e81e0"))
    images = await cog_flux.generate(asked(lora(weights_link)))
    [made] = market.images
    assert made["body"]["lora_weights"] == weights_link and made["body"]["lora_scale"] == 0.8
    assert market.fetched == [(weights_link, 200)] and len(images) == 2
    market.reset(TrainingScript(cog_flux="1d75bdd"))
    with pytest.raises(ProviderError, match="Weights not found"):
        await cog_flux.generate(asked(lora(weights_link)))
    assert market.fetched == [(weights_link.partition("?")[0], 403)]


async def test_an_older_cog_flux_is_given_the_version_a_replicate_training_made_as_its_loader_reads_one(
        simulated, client, weights_link):
    """A Replicate training names its version `owner/name:version`; cog-flux's weights loader
    takes a version as `owner/name/version` (`make_download_url`), and reads the other as a
    model named `name:version`, whose weights are not found."""
    market, _ = simulated
    market.reset(TrainingScript(cog_flux="1d75bdd"))
    version = "9f2c" * 16
    market.versions["genline/identities"] = {version: replicate_tar()}  # pushed by a training at Replicate
    model = {**COG_FLUX, "inputs": {**COG_FLUX["inputs"], "identity": {"lora": {
        **COG_FLUX["inputs"]["identity"]["lora"], "link": "replicate_version"}}}}
    old = provider(simulated, client, "replicate", model, ["lora"])
    assert not old.config.carries(old.config.models[0], lora(weights_link))
    trained_at_replicate = lora(weights_link, f"genline/identities:{version}")
    assert old.config.carries(old.config.models[0], trained_at_replicate)
    images = await old.generate(asked(trained_at_replicate))
    assert market.images[0]["body"]["lora_weights"] == f"genline/identities/{version}"
    assert market.fetched == [(f"genline/identities/{version}", 200)] and len(images) == 2


def hosted(market: IdentityMarket, url: str) -> bytes:
    """The bytes of a file uploaded to the simulated fal storage, by its URL."""
    return next(file.data for file_id, file in market.uploads().items() if f"/files/uploaded/{file_id}/" in url)


async def test_reference_models_get_the_subjects_photos_uploaded_once_to_fals_storage(simulated, client):
    market, _ = simulated
    market.reset()
    photos = astronaut_photos()[:3]
    reference = IdentityInput(mode="reference", subject_id="s", photos=photos, photo_set="p")
    pulid = provider(simulated, client, "fal", {"remote_id": "fal-ai/flux-pulid", "inputs": {
        "size": {"style": "image_size", "field": "image_size", "multiple_of": 8}, "seed": {"field": "seed"},
        "fixed": {"id_weight": 1.0}, "identity": {"reference": {"field": "reference_image_url"}}}}, ["reference"])
    images = [image for index in (0, 1, 2, 3) for image in await pulid.generate(asked(reference, count=1,
                                                                                       start_index=index))]
    sent = [made["body"]["reference_image_url"] for made in market.images]
    assert [hosted(market, url) for url in sent] == [*photos, photos[0]] and len(images) == 4
    # Each photo uploaded once, kept an hour, and no request carried one inline.
    assert len(market.uploads()) == 3 and market.inline() == []
    assert {file.headers["x-fal-object-lifecycle-preference"] for file in market.uploads().values()} == {
        '{"expiration_duration_seconds": 3600}'}
    market.reset()
    kontext = provider(simulated, client, "fal", {"remote_id": "fal-ai/flux-pro/kontext/multi", "inputs": {
        "size": {"style": "aspect_ratio", "field": "aspect_ratio", "ratios": ["1:1", "3:4", "4:3"]},
        "count": {"field": "num_images", "max": 4}, "seed": {"field": "seed"},
        "fixed": {"output_format": "png", "safety_tolerance": "2"},
        "identity": {"reference": {"field": "image_urls", "style": "list", "max": 2}}}}, ["reference"])
    images = await kontext.generate(asked(reference, width=1024, height=1024, count=1))
    [made] = market.images
    assert [hosted(market, url) for url in made["body"]["image_urls"]] == list(photos[:2])
    assert len(images) == 1 and market.inline() == []
