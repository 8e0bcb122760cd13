"""Video jobs through the router service, on the real broker, PostgreSQL and S3, with the
local video providers of the shipped registry: the job's clips are generated, stored in the
internal bucket through the same chunks as images, and announced with what the files say of
themselves (frames, length, rate, codec, size), each clip's cost recorded per provider.

* text-to-video: a generate-only pipeline with `JobSpec.video` makes N clips from the prompt;
* image-to-video after a still: `motion`'s generate paints stills at the clip's size, its
  animate stage (the last) makes a clip from each;
* image-to-video from the job's first frame (`video.first_frame_key`): a pipeline that starts
  with animate (the `image-to-video` template) animates that still;
* a canceled video job's clip is canceled at the hosted provider (fal's queue, Veo 3 Fast).
"""

import asyncio
import copy
import io
import time
from datetime import UTC, datetime

import pytest
from PIL import Image

from services.common import video
from services.common.contracts import CandidatesGenerated, JobCancelRequested, VideoSpec
from services.common.storage import Blob
from services.common.templates import Stage, Template, TemplateInput, load_catalogue
from services.router import generation
from services.router.providers.registry import load_registry
from tests.router.market import Script
from tests.router.service import (
    RouterTopic,
    credits_reserved,
    find_clip_makers,
    job_spec,
    publish,
    router_settings,
    running_router,
)
from tests.router.test_router_cancel import in_flight
from tests.router.test_video_providers import ENTRIES

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

CLIP = VideoSpec(duration_s=2, aspect_ratio="16:9", resolution="480p", fps=12)


def shipped(*names: str, **local_changes) -> dict:
    """Entries of the shipped registry, their local options changed (no defects, by default)."""
    providers = load_registry().providers
    entries = {}
    for name in names:
        entry = providers[name].model_dump(mode="json", exclude_defaults=False)
        entry.pop("name")
        entry["local"] = entry["local"] | {"defect_rate": 0.0} | local_changes
        entries[name] = entry
    return entries


async def clip_at(object_store, candidate) -> bytes:
    stored = await object_store.get(object_store.internal_bucket, candidate.key)
    return stored[candidate.offset or 0:(candidate.offset or 0) + candidate.size_bytes]


async def generated(settings, spec) -> CandidatesGenerated:
    async with running_router(settings), RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(spec))
        event = await topic.wait_for(spec.job_id, 1, timeout_s=120)
    assert isinstance(event, CandidatesGenerated), event
    return event


async def assert_clips_in_the_bucket(event: CandidatesGenerated, object_store, count: int, provider: str) -> None:
    assert sorted(c.index for c in event.candidates) == list(range(count))
    for candidate in event.candidates:
        data = await clip_at(object_store, candidate)
        info = video.probe(data)
        assert candidate.media_type == "video/mp4" and candidate.provider == provider
        assert (candidate.width, candidate.height) == (info.width, info.height) == CLIP.size()
        assert (candidate.frames, candidate.duration_ms, candidate.fps, candidate.codec) == \
            (info.frames, info.duration_ms, info.fps, info.codec) == (24, 2000, 12.0, "h264")


async def test_a_text_to_video_job_gets_n_mp4_clips_in_the_bucket(endpoints, object_store, tmp_path):
    settings = router_settings(endpoints, tmp_path, shipped("local-video", "local-video-budget", "local-standard"))
    spec = job_spec(images=1, candidates=3, video=CLIP)
    event = await generated(settings, spec)
    await assert_clips_in_the_bucket(event, object_store, 3, "local-video")
    # Each clip's cost is its provider's price for its seconds; the cheaper per passing clip won.
    assert {c.cost_micro_usd for c in event.candidates} == {2 * 20_000}
    assert event.cost_micro_usd == sum(call.cost_micro_usd for call in event.calls) == 3 * 40_000
    assert {call.provider for call in event.calls} == {"local-video"}


async def test_motion_with_a_video_block_animates_its_generated_stills_into_clips(endpoints, object_store, tmp_path):
    settings = router_settings(endpoints, tmp_path, shipped("local-video", "local-premium"))
    spec = job_spec(images=1, candidates=2, template="motion", video=CLIP)
    event = await generated(settings, spec)
    await assert_clips_in_the_bucket(event, object_store, 2, "local-video")
    for candidate in event.candidates:
        assert [(s.stage, s.provider) for s in candidate.steps] == [("generate", "local-premium"),
                                                                   ("animate", "local-video")]
        assert candidate.cost_micro_usd == sum(s.cost_micro_usd for s in candidate.steps)


async def test_an_image_to_video_job_animates_its_first_frame(endpoints, object_store, tmp_path, monkeypatch):
    catalogue = load_catalogue()
    with_i2v = catalogue.model_copy(update={"templates": catalogue.templates | {"image-to-video": Template(
        input=TemplateInput(description="the still to animate"), stages=(Stage(capability="animate"),),
        profile="motion")}})
    monkeypatch.setattr(generation, "load_catalogue", lambda: with_i2v)
    first = io.BytesIO()
    Image.new("RGB", CLIP.size(), (200, 40, 40)).save(first, format="PNG")
    key = "uploads/t-router/first-frame.png"
    await object_store.put(object_store.internal_bucket, key, content=Blob(first.getvalue(), "image/png"))
    settings = router_settings(endpoints, tmp_path, shipped("local-video"))
    spec = job_spec(images=1, candidates=2, template="image-to-video",
                    video=CLIP.model_copy(update={"first_frame_key": key}))
    event = await generated(settings, spec)
    await assert_clips_in_the_bucket(event, object_store, 2, "local-video")
    opening = next(video.frames(await clip_at(object_store, event.candidates[0]))).rgb
    assert abs(int(opening[5:40, 5:40, 0].mean()) - 200) < 20  # the first frame's red, where no subject is


async def test_a_canceled_video_job_cancels_its_clip_at_the_provider(endpoints, object_store, tmp_path,
                                                                     video_simulators):
    fal = video_simulators["fal"]
    fal.market.reset(Script(latency_s=120))
    entry = copy.deepcopy(ENTRIES["fal-veo3-fast"]) | {
        "endpoint": fal.url, "credentials": "STUB_KEY", "poll_interval_s": 0.05,
        "timeouts": {"submit_s": 5, "overall_s": 30, "poll_backoff_max_s": 0.2}}
    settings = router_settings(endpoints, tmp_path, {"fal-veo3-fast": entry})
    spec = job_spec(images=1, candidates=1, video=VideoSpec(duration_s=4, aspect_ratio="9:16", resolution="720p"))
    async with running_router(settings), RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(spec))
        job = await in_flight(fal.market, settle_s=0.5)
        await publish(settings, JobCancelRequested(job_id=spec.job_id, tenant_id=spec.tenant_id, reason="client",
                                                   requested_at=datetime.now(UTC)))
        deadline = time.monotonic() + 20
        while not fal.market.cancelled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [j.id for j in fal.market.cancelled()] == [job.id]
        assert job.body["duration"] == "4s" and job.body["aspect_ratio"] == "9:16"
        for _ in range(4):
            await topic.read_some()
    assert topic.of(spec.job_id) == [], "the router published for a canceled job"
    assert len(fal.market.submissions) == 1


async def test_ingest_asks_the_router_who_can_make_a_clip_over_grpc(endpoints, object_store, tmp_path):
    settings = router_settings(endpoints, tmp_path, shipped("local-video", "local-standard"))
    async with running_router(settings):
        makers, reasons = await find_clip_makers(endpoints, settings, duration_s=4, aspect_ratio="16:9",
                                                 resolution="480p", from_image=True)
        assert makers == ["local-video"] and reasons == []
        makers, reasons = await find_clip_makers(endpoints, settings, duration_s=4, aspect_ratio="16:9",
                                                 resolution="480p", model="no-such-model")
        assert makers == [] and reasons == []
