"""Submitting jobs with a scoring profile, quality rules and a reference photo, through the
ingest API on the real database, broker and S3: what the scorer could not honour is
refused at once as a problem (RFC 9457); what it can is carried in the JobSubmitted."""

import asyncio
import base64
import io
import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genline_stack.embedded import create_topics
from services.common.bus.envelope import from_kafka
from services.common.contracts import JobSubmitted, all_topics, topic_of
from services.ingest.accounts.tenants import Tenant, create_tenant
from services.ingest.app import build
from services.ingest.settings import IngestSettings
from tests.kafka import read_topic
from tests.scorer.conftest import save_tiny_clip

NEEDS_CLIP = {"prompt": "a red bicycle", "quality": {"require": ["prompt_alignment"]}}


def ingest_client(endpoints, **overrides) -> Iterator[TestClient]:
    suffix = uuid.uuid4().hex[:8]
    settings = endpoints.settings(IngestSettings, environment="test", topic_namespace=f"i{suffix}",
                                  schema_name=f"ingest_{suffix}", **overrides)
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(settings.topic_namespace)))
    api_key = asyncio.run(create_tenant(settings, Tenant(f"t-{suffix}", plan="enterprise")))
    _, app = build(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as client:
        client.app_settings = settings
        yield client


@pytest.fixture(scope="module")
def without_clip(endpoints) -> Iterator[TestClient]:
    yield from ingest_client(endpoints)


@pytest.fixture(scope="module")
def with_clip(endpoints, tmp_path_factory) -> Iterator[TestClient]:
    folder = save_tiny_clip(tmp_path_factory.mktemp("clip"), tmp_path_factory.mktemp("clip-tokenizer"))
    yield from ingest_client(endpoints, clip_model_dir=str(folder))


def submitted_jobs(client: TestClient, want: int) -> dict[str, JobSubmitted]:
    settings = client.app_settings
    records = asyncio.run(read_topic(settings.kafka_bootstrap, topic_of("ingest", settings.topic_namespace), want))
    events = [from_kafka(r).event for r in records]
    return {str(e.job_id): e for e in events}


def assert_problem(response, status: int, slug: str, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"/problems/{slug}" and problem["status"] == status
    for word in words:
        assert word in problem["detail"], problem["detail"]
    return problem


def png_base64(size=(64, 48)) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    Image.new("RGB", size, (180, 140, 120)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode(), buffer.getvalue()


def test_rules_requiring_prompt_alignment_without_a_clip_model_are_refused(without_clip):
    problem = assert_problem(without_clip.post("/v1/jobs", json=NEEDS_CLIP), 422, "dimension-unavailable",
                             "prompt_alignment", "no CLIP model")
    assert problem["unavailable"] == ["prompt_alignment"]


def test_an_unknown_profile_is_refused(without_clip):
    response = without_clip.post("/v1/jobs", json={"prompt": "p", "profile": "passport"})
    assert_problem(response, 422, "unknown-profile", "'passport'", "generic")


# The rules are typed in the API: what breaks their shape is a validation error naming the
# field; what contradicts a profile is known only once the profile is loaded.
@pytest.mark.parametrize(("quality", "slug", "named"), [
    ({"thresholds": {"sparkle": {"min": 1}}}, "validation-error", "sparkle"),
    ({"thresholds": {"sharpness": {"min": 50, "max": 10}}}, "validation-error", "min 50.0 is above max 10.0"),
    ({"forbid": [{"dimension": "faces"}]}, "validation-error", "needs a min, a max or both"),
    ({"sharpness": 20}, "validation-error", "quality.sharpness: Extra inputs are not permitted"),
    ({"thresholds": {"sharpness": {"min": "80"}}}, "validation-error", "quality.thresholds.sharpness.min"),
    ({"profile": "passport"}, "invalid-quality-rules", "unknown profile 'passport'"),
])
def test_invalid_quality_rules_are_refused_naming_the_problem(without_clip, quality, slug, named):
    response = without_clip.post("/v1/jobs", json={"prompt": "p", "quality": quality})
    assert_problem(response, 422, slug, named)


def test_with_a_clip_model_the_same_rules_are_accepted_and_carried_to_the_scorer(with_clip):
    body = NEEDS_CLIP | {"profile": "product", "quality": {"require": ["prompt_alignment"],
                                                         "thresholds": {"sharpness": {"min": 80}}}}
    response = with_clip.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    spec = submitted_jobs(with_clip, 1)[job_id].job
    assert spec.profile == "product" and spec.quality_rules == body["quality"] and spec.reference_key is None
    view = with_clip.get(f"/v1/jobs/{job_id}").json()
    assert view["profile"] == "product" and view["quality"] == body["quality"]


def test_a_reference_photo_is_screened_stored_and_named_in_the_job(with_clip, object_store):
    encoded, photo = png_base64()
    # The generic template asks nothing of its input, so no scorer is needed to check it.
    response = with_clip.post("/v1/jobs", json={"prompt": "a portrait", "profile": "headshot",
                                                "reference_image": encoded})
    assert response.status_code == 202, response.text
    spec = submitted_jobs(with_clip, 2)[response.json()["id"]].job
    assert spec.reference_key and spec.reference_key.endswith(".png")
    stored = asyncio.run(object_store.get(object_store.internal_bucket, spec.reference_key))
    assert Image.open(io.BytesIO(stored)).tobytes() == Image.open(io.BytesIO(photo)).tobytes()


@pytest.mark.parametrize(("reference", "status", "slug"), [
    ("not base64!", 422, "invalid-reference-image"),
    (base64.b64encode(b"GIF89a" + bytes(64)).decode(), 415, "unsupported-image-type"),
    (png_base64()[0][:80], 422, "truncated-image"),
])
def test_a_reference_that_is_not_a_photo_is_refused(without_clip, reference, status, slug):
    response = without_clip.post("/v1/jobs", json={"prompt": "p", "reference_image": reference})
    assert_problem(response, status, slug, "reference_image")


@pytest.mark.parametrize(("body", "named"), [
    ({"width": 320}, "width and height go together"),
    ({"height": 240}, "width and height go together"),
    ({"width": 32, "height": 240}, "width"),
    ({"model_version": "1"}, "model_version needs model"),
])
def test_a_half_given_size_or_pin_is_refused(without_clip, body, named):
    response = without_clip.post("/v1/jobs", json={"prompt": "p"} | body)
    problem = assert_problem(response, 422, "validation-error")
    assert named in json.dumps(problem)


def test_size_and_model_pin_are_carried_to_the_router(without_clip):
    body = {"prompt": "p", "width": 320, "height": 240, "model": "local-painter", "model_version": "1"}
    response = without_clip.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    spec = submitted_jobs(without_clip, 1)[job_id].job
    assert (spec.width, spec.height, spec.model, spec.model_version) == (320, 240, "local-painter", "1")
    view = without_clip.get(f"/v1/jobs/{job_id}").json()
    assert (view["width"], view["height"], view["model"], view["model_version"]) == (320, 240, "local-painter", "1")
