"""The OpenAI-compatible images API called by the clients people already use, against the five
services as processes: the official `openai` package (sync and async) and LiteLLM's
image_generation, changing nothing but the base URL and the key. Each error is read by the
`openai` package as its own exception, and a call that timed out finds its job."""

import asyncio
import base64
import io
import os
import time
import uuid

import httpx
import openai
import pytest
from PIL import Image

# LiteLLM fetches its model price list from the internet at import unless told to use its own copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PROMPT = "a red bicycle against a brick wall"


def client_of(platform, api_key: str, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.ingest_url}/v1", api_key=api_key, **options)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_openai_package_generates_images_and_is_charged_like_any_job(tenant_factory, platform):
    tenant = tenant_factory(credits=1_000)
    client = client_of(platform, tenant.api_key)

    raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt=PROMPT, n=2, size="256x256",
                                                   quality="high", user="customer-42")
    result = raw.parse()

    assert len(result.data) == 2 and result.size == "256x256" and result.quality == "high"
    for image in result.data:
        assert decoded(base64.b64decode(image.b64_json)).size == (256, 256)
    job_id = raw.headers["genline-job-id"]
    assert result.job_id == job_id and result.usage.images == 2 and result.usage.candidates >= 2
    job = tenant.job(job_id)
    assert job["state"] == "succeeded" and job["end_user"] == "customer-42" and job["receipt"] is not None
    assert result.cost["credits_charged"] == job["billing"]["charged"] == 2 * 10


def test_the_async_client_gets_links_and_an_edit(tenant_factory, platform):
    tenant = tenant_factory(credits=1_000)

    async def calls():
        async with openai.AsyncOpenAI(base_url=f"{platform.ingest_url}/v1", api_key=tenant.api_key) as client:
            made = await client.images.generate(model="dall-e-3", prompt=PROMPT, size="256x256")
            photo = httpx.get(made.data[0].url, timeout=10).content
            edited = await client.images.edit(model="gpt-image-1", image=("photo.png", photo, "image/png"),
                                              prompt="the same bicycle, in blue", response_format="url")
            return made, photo, edited

    made, photo, edited = asyncio.run(calls())

    assert decoded(photo).size == (256, 256) and made.output_format == "png"
    assert decoded(httpx.get(edited.data[0].url, timeout=10).content).size[0] > 0
    assert tenant.job(edited.job_id)["template"] == "image-edit"


@pytest.mark.parametrize(("asked", "encoded"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_the_output_format_asked_is_the_format_delivered_with_its_provenance(tenant_factory, platform, asked,
                                                                            encoded):
    """OpenAI's GPT image models encode png, jpeg and webp as asked; so does Genline, its marks and
    Content Credentials kept, whatever format the template delivers by itself (generic: the provider's)."""
    tenant = tenant_factory(credits=1_000)
    made = client_of(platform, tenant.api_key).images.generate(model="gpt-image-1", prompt=PROMPT, size="256x256",
                                                               response_format="b64_json", output_format=asked)
    data = base64.b64decode(made.data[0].b64_json)
    assert (decoded(data).format, made.output_format) == (encoded, asked)
    verified = httpx.post(f"{platform.ingest_url}/v1/verify", content=data, timeout=60,
                          headers={"Authorization": f"Bearer {tenant.api_key}"}).json()
    assert verified["intact"] and verified["content_credentials"]["state"] == "Trusted", verified
    assert verified["job"]["id"] == made.job_id
    copy = io.BytesIO()
    decoded(data).convert("RGB").save(copy, format="PNG")  # its metadata gone: the watermark still says whose
    stripped = httpx.post(f"{platform.ingest_url}/v1/verify", content=copy.getvalue(), timeout=60).json()
    assert stripped["attributed_by"] == "watermark" and stripped["generated_here"], stripped


def test_litellm_routes_image_generation_to_genline(tenant_factory, platform):
    import litellm

    tenant = tenant_factory(credits=1_000)

    response = litellm.image_generation(model="openai/dall-e-2", prompt=PROMPT, api_base=f"{platform.ingest_url}/v1",
                                        api_key=tenant.api_key, size="256x256", n=1)

    assert decoded(httpx.get(response.data[0].url, timeout=10).content).size == (256, 256)


def test_each_error_is_its_own_exception(tenant_factory, platform):
    tenant = tenant_factory(credits=1_000)
    client = client_of(platform, tenant.api_key, max_retries=0)

    with pytest.raises(openai.AuthenticationError) as refused:
        client_of(platform, "gl_not-a-key", max_retries=0).images.generate(prompt=PROMPT)
    assert refused.value.code == "invalid_api_key" and refused.value.type == "invalid_request_error"
    reader = tenant.http.post("/v1/api-keys", json={"name": "reader", "scopes": ["jobs:read"]}).json()["secret"]
    with pytest.raises(openai.PermissionDeniedError):
        client_of(platform, reader, max_retries=0).images.generate(prompt=PROMPT)
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(prompt=PROMPT, n=0)
    assert bad.value.param == "n"
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(prompt=PROMPT, size="9x9")
    assert bad.value.param == "size"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.images.generate(prompt=PROMPT, model="no-such-model")
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"
    with pytest.raises(openai.UnprocessableEntityError) as no_subject:  # the extension field reaches the job's checks
        client.images.generate(prompt=PROMPT, model="subject-headshots", extra_body={"subject": str(uuid.uuid4())})
    assert no_subject.value.param == "subject"
    key = {"Idempotency-Key": f"reused-{uuid.uuid4()}"}
    client.images.generate(prompt=PROMPT, size="128x128", extra_headers=key)
    with pytest.raises(openai.UnprocessableEntityError):
        client.images.generate(prompt="another prompt", size="128x128", extra_headers=key)


def test_out_of_credits_and_over_the_rate_are_rate_limit_errors(tenant_factory, platform):
    broke = client_of(platform, tenant_factory(credits=0).api_key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as quota:
        broke.images.generate(prompt=PROMPT, size="128x128")
    assert quota.value.code == "insufficient_quota" and quota.value.response.headers["x-should-retry"] == "false"
    assert quota.value.response.headers["genline-job-id"]

    free = client_of(platform, tenant_factory(credits=100, plan="free").api_key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited:
        for _ in range(30):  # the free plan's burst is 10 requests; refused ones count too
            with pytest.raises(openai.BadRequestError):
                free.images.generate(prompt=PROMPT, n=0)
    assert limited.value.code == "rate_limit_exceeded" and int(limited.value.response.headers["retry-after"]) >= 1


def test_a_call_that_timed_out_finds_its_job_by_its_idempotency_key(tenant_factory, platform):
    tenant = tenant_factory(credits=1_000)
    key = f"order-{uuid.uuid4()}"
    client = client_of(platform, tenant.api_key, max_retries=0, timeout=0.3)

    with pytest.raises(openai.APITimeoutError):
        client.images.generate(prompt=PROMPT, n=3, size="256x256", extra_headers={"Idempotency-Key": key})

    bound = None
    for _ in range(50):
        found = tenant.http.get(f"/v1/idempotency-keys/{key}")
        if found.status_code == 200:
            bound = found.json()
            break
        time.sleep(0.1)
    assert bound is not None and bound["url"] == f"/v1/jobs/{bound['job_id']}"
    # The same call again waits on the same job: one job, charged once.
    again = client_of(platform, tenant.api_key).images.generate(prompt=PROMPT, n=3, size="256x256",
                                                               extra_headers={"Idempotency-Key": key})
    assert again.job_id == bound["job_id"] and len(again.data) == 3
    assert tenant.job(bound["job_id"])["billing"]["charged"] == 3 * 10
