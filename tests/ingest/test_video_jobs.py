"""Video jobs through the ingest API on the real database, broker and S3 (and the scorer's
measurements API for a first frame's checks): a `video` object makes `JobSpec.video`; what no
template or plan allows is refused at once as a problem (RFC 9457) naming the limit; a first
frame is an image the tenant was delivered, checked like an input photo and copied inside."""

import asyncio
import io
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime

import grpc
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image
from starlette.applications import Starlette

from genline_stack.embedded import create_topics
from genline_stack.ports import free_port
from services.common.bus.envelope import envelop
from services.common.contracts import DeliveredImage, JobDelivered, all_topics
from services.common.internal_calls import guard, verifier_of
from services.common.storage import Blob
from services.ingest.accounts.tenants import Tenant, create_tenant
from services.ingest.app import build
from services.ingest.jobs.clip_makers import pb, rpc
from services.ingest.settings import IngestSettings
from services.scorer.handlers import new_scorer
from services.scorer.routes import measurements
from services.scorer.settings import ScorerSettings
from tests.ingest.test_submission import assert_problem, submitted_jobs

CLIP = {"duration_s": 4, "aspect_ratio": "9:16", "resolution": "480p", "fps": 24}


class OneClipMaker(rpc.RouterServiceServicer):
    """A router whose one provider of clips, `fal-kling`, makes 5 or 10 s clips at 480p or
    720p from a still, and 5 s ones from a prompt: it answers FindClipMakers as the proto says,
    and keeps what it was asked."""

    def __init__(self) -> None:
        self.asked: list = []

    def FindClipMakers(self, request, context):
        self.asked.append(request)
        lengths = (5, 10) if request.from_image else (5,)
        if request.resolution == "1080p":
            return pb.FindClipMakersResponse(reasons=["fal-kling: no 1080p clips"])
        if not any(request.duration_s <= seconds for seconds in lengths):
            return pb.FindClipMakersResponse(reasons=[f"fal-kling: no {request.duration_s:g} s clips"])
        return pb.FindClipMakersResponse(providers=["fal-kling"])


@pytest.fixture(scope="module")
def clip_router() -> Iterator[tuple[str, OneClipMaker]]:
    server, maker = grpc.server(futures.ThreadPoolExecutor(max_workers=2)), OneClipMaker()
    rpc.add_RouterServiceServicer_to_server(maker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", maker
    server.stop(None)


@pytest.fixture(scope="module")
def scorer_url(endpoints) -> Iterator[str]:
    """The scorer's measurements API alone, as ingest calls it for an input photo's checks."""
    settings = endpoints.settings(ScorerSettings, environment="test")
    app = Starlette(routes=[guard(measurements.route(new_scorer(settings)), verifier_of(settings), capability="measurements")])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def tenant_client(endpoints, plan: str, **overrides) -> Iterator[TestClient]:
    suffix = uuid.uuid4().hex[:8]
    settings = endpoints.settings(IngestSettings, environment="test", topic_namespace=f"v{suffix}",
                                  schema_name=f"ingest_{suffix}", **overrides)
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(settings.topic_namespace)))
    api_key = asyncio.run(create_tenant(settings, Tenant(f"v-{suffix}", plan=plan)))
    _, app = build(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as client:
        client.app_settings, client.tenant_id = settings, f"v-{suffix}"
        yield client


@pytest.fixture(scope="module")
def free(endpoints) -> Iterator[TestClient]:
    yield from tenant_client(endpoints, "free")


@pytest.fixture(scope="module")
def enterprise(endpoints, scorer_url, clip_router) -> Iterator[TestClient]:
    yield from tenant_client(endpoints, "enterprise", scorer_url=scorer_url, router_grpc_target=clip_router[0])


def test_a_video_template_without_video_is_refused(free):
    problem = assert_problem(free.post("/v1/jobs", json={"prompt": "waves", "template": "text-to-video"}), 422,
                             "video-required", "text-to-video", "video")
    assert problem["template"] == "text-to-video"


def test_an_image_template_with_video_is_refused(free):
    problem = assert_problem(free.post("/v1/jobs", json={"prompt": "waves", "video": CLIP}), 422,
                             "video-not-allowed", "'generic' makes images")
    assert problem["field"] == "video"


@pytest.mark.parametrize(("clip", "field", "limit", "said"), [
    ({"duration_s": 12}, "video.duration_s", 10, "at most 10 seconds; this job asks for 12"),
    ({"duration_s": 4, "resolution": "1080p"}, "video.resolution", "720p", "up to 720p; this job asks for 1080p"),
])
def test_a_clip_past_the_plan_is_refused_naming_the_limit(free, clip, field, limit, said):
    response = free.post("/v1/jobs", json={"prompt": "waves", "template": "motion", "video": clip})
    problem = assert_problem(response, 422, "video-not-allowed", "plan 'free'", said)
    assert (problem["field"], problem["limit"], problem["plan"]) == (field, limit, "free")


def test_a_clip_past_the_platform_is_refused_whatever_the_plan(enterprise):
    response = enterprise.post("/v1/jobs", json={"prompt": "waves", "template": "motion", "video": {"duration_s": 61}})
    problem = assert_problem(response, 422, "video-not-allowed", "at most 60 seconds")
    assert problem["limit"] == 60


@pytest.mark.parametrize(("clip", "field"), [
    ({"duration_s": 0}, "video.duration_s"),
    ({"duration_s": 4, "aspect_ratio": "2:1"}, "video.aspect_ratio"),
    ({"duration_s": 4, "resolution": "4k"}, "video.resolution"),
    ({"duration_s": 4, "fps": 120}, "video.fps"),
    ({"duration_s": 4, "first_frame": {"job_id": "not-a-job", "n": 1}}, "video.first_frame.job_id"),
])
def test_a_clip_no_model_could_make_is_a_validation_error_naming_the_field(free, clip, field):
    response = free.post("/v1/jobs", json={"prompt": "waves", "template": "motion", "video": clip})
    problem = assert_problem(response, 422, "validation-error")
    assert field in [error["field"] for error in problem["errors"]], problem


def test_a_motion_job_with_video_asks_for_clips_from_its_own_still(enterprise, clip_router):
    response = enterprise.post("/v1/jobs", json={"prompt": "waves at dusk", "template": "motion", "images": 2,
                                                 "candidates": 3, "video": CLIP})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    video = submitted_jobs(enterprise, 1)[job_id].job.video
    assert video is not None and (video.duration_s, video.aspect_ratio, video.resolution, video.fps) == (4, "9:16",
                                                                                                           "480p", 24)
    assert video.first_frame_key is None and video.size() == (480, 854) and video.billed_seconds() == 4
    shown = enterprise.get(f"/v1/jobs/{job_id}").json()
    assert shown["video"] == {"duration_s": 4.0, "aspect_ratio": "9:16", "resolution": "480p", "fps": 24}
    asked = clip_router[1].asked[-1]  # the router was asked for the clip as the template makes it
    assert (asked.duration_s, asked.aspect_ratio, asked.resolution, asked.fps, asked.from_image, asked.model) == (
        4, "9:16", "480p", 24, True, "")


@pytest.mark.parametrize(("template", "clip", "said", "reason"), [
    ("motion", CLIP | {"resolution": "1080p"}, "4 s 1080p 9:16 clips from a still", "fal-kling: no 1080p clips"),
    ("text-to-video", CLIP | {"duration_s": 8}, "8 s 480p 9:16 clips from a prompt", "fal-kling: no 8 s clips"),
])
def test_a_clip_no_model_makes_is_refused_with_the_routers_reasons(enterprise, template, clip, said, reason):
    response = enterprise.post("/v1/jobs", json={"prompt": "waves", "template": template, "profile": "generic",
                                                 "video": clip})
    problem = assert_problem(response, 422, "no-video-model", f"no video model on this platform makes {said}", reason)
    assert problem["reasons"] == [reason]


def test_a_router_that_cannot_answer_lets_the_job_through(free):
    # No router listens where this ingest looks for one: the job goes ahead, and a clip nobody
    # makes would fail at generation, at no cost.
    response = free.post("/v1/jobs", json={"prompt": "waves", "template": "motion", "video": CLIP})
    assert response.status_code == 202, response.text


def test_a_first_frame_on_a_template_that_makes_its_own_still_is_refused(enterprise):
    clip = CLIP | {"first_frame": {"job_id": str(uuid.uuid4()), "n": 1}}
    response = enterprise.post("/v1/jobs", json={"prompt": "waves", "template": "motion", "video": clip})
    problem = assert_problem(response, 422, "video-not-allowed", "does not start from a still")
    assert problem["field"] == "video.first_frame"


def image_to_video(first_frame: dict) -> dict:
    # The job names a profile the scorer has, so the request is judged on its first frame alone.
    return {"prompt": "she turns and smiles", "template": "image-to-video", "profile": "generic",
            "video": CLIP | {"first_frame": first_frame}}


def delivered_to(client: TestClient, object_store, image: Image.Image | None, media_type: str = "image/png") -> dict:
    """A finished job of the client's tenant that delivered one output (`image`, stored in the
    public bucket; None: a clip): the first_frame that names it."""
    job_id = client.post("/v1/jobs", json={"prompt": "a portrait"}).json()["id"]
    key = f"{client.tenant_id}/2026/11/{job_id}/1.png"
    if image is not None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        asyncio.run(object_store.put(object_store.public_bucket, key, content=Blob(buffer.getvalue(), media_type)))
    output = DeliveredImage(n=1, key=key, url="u", expires_at=datetime.now(UTC), sha256="s", size_bytes=1,
                            media_type=media_type, frames=1 if image is not None else 96,
                            duration_ms=0 if image is not None else 4000)
    runtime = client.app.state.runtime
    delivered = JobDelivered(job_id=uuid.UUID(job_id), tenant_id=client.tenant_id, requested=1, images=[output])
    assert client.portal.call(runtime.consumer.apply, envelop(delivered, "/test"))
    return {"job_id": job_id, "n": 1}


def textured_photo() -> Image.Image:
    """A sharp, evenly lit still: a checkerboard of mid greys."""
    image = Image.new("RGB", (256, 192), (110, 110, 110))
    for x in range(0, 256, 16):
        for y in range((x // 16) % 2 * 16, 192, 32):
            image.paste((170, 160, 150), (x, y, x + 16, y + 16))
    return image


def test_a_first_frame_the_tenant_was_delivered_becomes_the_clips_first_frame(enterprise, object_store):
    first_frame = delivered_to(enterprise, object_store, textured_photo())
    response = enterprise.post("/v1/jobs", json=image_to_video(first_frame))
    assert response.status_code == 202, response.text
    spec = submitted_jobs(enterprise, 3)[response.json()["id"]].job
    assert spec.video is not None and spec.video.first_frame_key == spec.reference_key
    assert spec.reference_key.startswith(f"{enterprise.tenant_id}/references/")  # copied inside, screened
    stored = asyncio.run(object_store.get(object_store.internal_bucket, spec.reference_key))
    assert Image.open(io.BytesIO(stored)).size == (256, 192)


def test_a_first_frame_that_fails_the_templates_checks_is_refused_with_guidance(enterprise, object_store):
    first_frame = delivered_to(enterprise, object_store, Image.new("RGB", (256, 192), (4, 4, 4)))
    problem = assert_problem(enterprise.post("/v1/jobs", json=image_to_video(first_frame)), 422, "input-guidance",
                             "too dark")
    assert {check["dimension"] for check in problem["checks"]} >= {"exposure"}


def test_a_first_frame_the_tenant_was_not_delivered_is_refused(enterprise, free, object_store):
    others = delivered_to(free, object_store, textured_photo())
    for first_frame in (others, {"job_id": str(uuid.uuid4()), "n": 1}):
        problem = assert_problem(enterprise.post("/v1/jobs", json=image_to_video(first_frame)), 422,
                                 "unknown-first-frame", "you were delivered no image 1")
        assert problem["field"] == "video.first_frame"
    clip = delivered_to(enterprise, object_store, None, "video/mp4")
    assert_problem(enterprise.post("/v1/jobs", json=image_to_video(clip)), 422, "unknown-first-frame",
                   "is a clip (video/mp4)")


def test_an_image_to_video_job_needs_its_still(enterprise):
    body = {"prompt": "p", "template": "image-to-video", "profile": "generic", "video": CLIP}
    assert_problem(enterprise.post("/v1/jobs", json=body), 422, "input-required", "video.first_frame")


def test_the_input_photo_is_given_once(enterprise):
    body = image_to_video({"job_id": str(uuid.uuid4()), "n": 1}) | {"input_upload": str(uuid.uuid4())}
    problem = assert_problem(enterprise.post("/v1/jobs", json=body), 422, "validation-error")
    assert "give the input photo once" in problem["detail"]
