"""The console with clips, in headless Chromium (as tests/e2e/test_console.py drives it):

* a clip job submitted from the New job form (its clip fields shown for a video template
  only) is quoted by the second and followed to its clip;
* a text-to-video job run through the five services shows each delivered clip in a <video>
  player (controls, inline, metadata preloaded, its poster), which reads the signed link under
  the console's Content-Security-Policy, and each candidate's clip in its card;
* a candidate's per-dimension verdicts are drawn over a timeline where its scores name frame
  times (samples, spans, instants), seek its player when clicked, and are left out where they
  do not. That page is fed a job view with such scores (the API's shape, answered in place of
  the API's), while its delivered clip and poster are real objects behind signed links.

Waits poll from here (`until`), not with a predicate run in the page: the console's
Content-Security-Policy has no 'unsafe-eval'."""

import asyncio
import io
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from services.common.storage import Blob, ObjectStore
from services.common.video import Sampling, frames, probe
from tests.clients.clip_server import real_clip
from tests.conftest import settings_for
from tests.e2e.test_console import (  # noqa: F401  (fixtures)
    JOB_TIMEOUT_MS,
    PHONE,
    assert_only_local_requests,
    browser,
    console,
    playwright_api,
    screenshot,
    tenants,
    text_of,
)
from tests.polling import until

VIDEO = {"duration_s": 2, "aspect_ratio": "16:9", "resolution": "480p", "fps": 12}


def settled_video_job(tenant_factory) -> tuple:
    """A tenant and its text-to-video job, final and settled (made on a thread of its own,
    beside Playwright's event loop). Four candidates an attempt: the shipped registry plants
    defects in clips (three in five at its budget provider), and a full run saw all of two
    candidates in each of three attempts fail."""
    def make():
        tenant = tenant_factory(100_000)
        job_id = tenant.submit(template="text-to-video", prompt="waves rolling onto a beach", images=1, candidates=4,
                               seed=31, video=VIDEO)
        return tenant, job_id, tenant.wait_settled([job_id])[job_id]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make).result()


def test_a_clip_jobs_page_plays_each_delivered_clip_with_its_poster(console, tenant_factory):  # noqa: F811
    tenant, job_id, job = settled_video_job(tenant_factory)
    assert job["state"] == "succeeded", job
    [output] = job["outputs"]
    page = console.page(tenant.api_key)
    page.goto(f"/console/jobs/{job_id}")

    player = page.get_by_test_id("clip-1")
    player.wait_for(timeout=JOB_TIMEOUT_MS)
    assert player.evaluate("v => v.tagName") == "VIDEO"
    assert player.evaluate("v => [v.controls, v.playsInline, v.preload]") == [True, True, "metadata"]
    assert path_of(player.get_attribute("poster")) == path_of(output["thumbnail_url"])
    assert path_of(player.get_attribute("src")) == path_of(output["url"])
    until(lambda: player.evaluate("v => v.readyState") >= 1, 30, "the delivered clip's header read")
    duration = player.evaluate("v => v.duration")
    assert abs(duration * 1000 - output["duration_ms"]) <= 1000 / output["fps"]
    assert text_of(page, "clip-facts-1").startswith(f"{output['duration_ms'] / 1000:.1f} s · h264")
    assert page.get_by_role("heading", name="Delivered clips").count() == 1
    assert page.get_by_role("link", name="Download clip 1").count() == 1
    assert text_of(page, "total-images") == "1" and "2.0 s · 16:9 · 480p · 12 fps" in text_of(page, "clip-asked")
    cards = page.locator("li.candidate")
    assert cards.count() == len(job["scores"])
    clip_cards = [s["index"] for s in job["scores"] if s["media_type"].startswith("video/")]
    assert page.locator("li.candidate video").count() == len(clip_cards) > 0
    until(lambda: page.locator("li.candidate video").evaluate_all("vs => vs.every(v => v.readyState >= 1)"), 30,
          "every candidate's clip read")
    chosen = page.locator('li.candidate[data-verdict="selected"]')
    playwright_api.expect(chosen.locator(".filmstrip canvas")).to_have_count(8)  # its frames, over its timeline
    assert chosen.locator(".timeline-row[data-dimension]").count() == 0  # nothing failed it, nothing names a time
    page.get_by_test_id("receipt-verdict").wait_for()
    assert text_of(page, "receipt-clips") == (f"#1: {output['duration_ms'] / 1000:.1f} s, h264, {output['fps']:g} fps,"
                                              f" {output['frames']} frames")
    screenshot(page, "clip-job-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "clip-job-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert_only_local_requests(console)


def test_a_clip_job_submitted_from_the_form_is_quoted_by_the_second_and_played(console, tenants):  # noqa: F811
    tenant = tenants(100_000)
    page = console.page(tenant.api_key)
    page.goto("/console/new")
    clip_fields = page.locator("#clip-fields")
    playwright_api.expect(page.get_by_label("Template").locator("option[value=text-to-video]")).to_have_count(1)
    playwright_api.expect(clip_fields).to_be_hidden()  # generic: images
    page.get_by_label("Template").select_option("text-to-video")
    playwright_api.expect(clip_fields).to_be_visible()
    page.get_by_label("Prompt").fill("waves rolling onto a beach")
    page.get_by_label("Candidates (N)").fill("2")
    page.get_by_label("Seconds per clip").fill("2")
    page.get_by_label("Aspect ratio").select_option("1:1")
    page.get_by_label("Resolution").select_option("480p")
    page.get_by_label("Frames per second").fill("12")
    video = {"duration_s": 2, "aspect_ratio": "1:1", "resolution": "480p", "fps": 12}
    quoted = tenant.http.post("/v1/quotes", json={"template": "text-to-video", "tier": "stable", "images": 1,
                                                 "video": video}).json()
    page.locator("#quote").filter(has_text=f"{quoted['credits']} credits ({quoted['second_price']} per delivered"
                                           " second)").wait_for()
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/console/jobs/*")
    page.locator('#job-state[data-state="succeeded"]').wait_for(timeout=JOB_TIMEOUT_MS)

    job = tenant.job(page.url.rsplit("/", 1)[1])
    assert job["template"] == "text-to-video" and job["video"] == video
    assert text_of(page, "clip-asked") == "2.0 s · 1:1 · 480p · 12 fps"
    page.get_by_test_id("clip-1").wait_for()
    assert_only_local_requests(console)


def path_of(url: str) -> str:
    """A signed link without its signature: links are signed again on every read."""
    return url.split("?", 1)[0]


@pytest.fixture
def real_links(endpoints):
    """A real MP4 and its poster in the public bucket, and their signed links (stored from a
    thread of its own: asyncio.run cannot run beside Playwright's loop)."""
    clip = real_clip()
    poster = io.BytesIO()
    Image.fromarray(next(frames(clip, Sampling(limit=1))).rgb).save(poster, format="WEBP")
    folder = f"t-console/{datetime.now(UTC):%Y/%m}/{uuid.uuid4()}"
    store = ObjectStore(settings_for(endpoints))

    def put_both() -> None:
        asyncio.run(store.ensure_buckets())
        asyncio.run(store.put(store.public_bucket, f"{folder}/1.mp4", content=Blob(clip, "video/mp4")))
        asyncio.run(store.put(store.public_bucket, f"{folder}/1.thumb.webp", content=Blob(poster.getvalue(), "image/webp")))

    with ThreadPoolExecutor(1) as pool:
        pool.submit(put_both).result()
    return clip, folder, {"url": store.presign_get(store.public_bucket, f"{folder}/1.mp4", ttl_s=3600),
                          "thumbnail_url": store.presign_get(store.public_bucket, f"{folder}/1.thumb.webp", ttl_s=3600)}


def dimension(value, threshold, passed, **times) -> dict:
    return {"value": value, "threshold": threshold, "passed": passed, "reason": "", **times}


def clip_job_view(job_id: str, clip: bytes, folder: str, links: dict) -> dict:
    """A final video job as GET /v1/jobs/{id} shows it, three candidates scored: one whose
    dimensions list frame samples (objects, and [t_ms, value] pairs), one rejected for a span
    of frozen frames, a motion defect at an instant and blockiness over the whole clip (its
    score names no time), one whose scores name no time and pass."""
    now, info = datetime.now(UTC), probe(clip)
    score = {"attempt": 1, "provider": "local-video", "key": f"{folder}/candidates.bin", "sha256": "0" * 64,
             "size_bytes": len(clip), "media_type": "video/mp4", "not_measured": [], "judged": True}
    sampled = [{"t_ms": t, "value": 80.0 + t / 100, "passed": True} for t in (0, 500, 1000, 1500)]
    return {
        "id": job_id, "tenant_id": "t-console", "state": "succeeded", "template": "text-to-video", "prompt": "waves",
        "images": 1, "candidates": 3, "seed": 1, "created_at": now.isoformat(), "updated_at": now.isoformat(),
        "timestamps": {"submitted": now.isoformat(), "succeeded": now.isoformat()}, "reasons": {},
        "attempts": 1, "video": VIDEO, "selected": [0], "reports": [], "stages": [],
        "scores": [
            score | {"index": 0, "passed": True, "score": 0.91, "failed": [], "dimensions": {
                "sharpness": dimension(95.0, 40, True, frames=sampled),
                "black_frames": dimension(0.0, 0.05, True),
                "flicker": dimension(0.02, 0.1, True, samples=[[0, 0.01], [1000, 0.03]])}},
            score | {"index": 1, "passed": False, "score": 0.2, "failed": ["frozen_frames", "motion", "blockiness"],
                     "dimensions": {
                "sharpness": dimension(90.0, 40, True),
                "frozen_frames": dimension(0.65, 0.2, False, spans=[{"start_ms": 700, "end_ms": 2000}]),
                "motion": dimension(0.01, 0.3, False, t_ms=1200),
                "blockiness": dimension(2.5, 1.7, False)}},
            score | {"index": 2, "passed": True, "score": 0.5, "failed": [], "dimensions": {
                "sharpness": dimension(85.0, 40, True), "container": dimension(1.0, 1, True),
                # Unavailable (no model here): not a verdict against the clip, so not on its timeline.
                "prompt_alignment": dimension(None, 0.2, False)}}],
        "outputs": [{"n": 1, "key": f"{folder}/1.mp4", "expires_at": (now + timedelta(hours=1)).isoformat(),
                     "sha256": "0" * 64, "size_bytes": len(clip), "media_type": "video/mp4", "width": info.width,
                     "height": info.height, "frames": info.frames, "duration_ms": info.duration_ms, "fps": info.fps,
                     "codec": info.codec, "thumbnail_key": f"{folder}/1.thumb.webp", "thumbnail_media_type": "image/webp",
                     **links}],
        "billing": {"state": "settled", "reserved": 40, "charged": 20, "released": 20, "retry_tokens_used": 0},
        "provider_cost_micro_usd": 300_000}


def test_verdicts_are_drawn_over_the_frames_they_name_and_seek_the_clip(console, tenant_factory, real_links):  # noqa: F811
    clip, folder, links = real_links
    with ThreadPoolExecutor(1) as pool:  # tenants are made beside Playwright's loop
        tenant = pool.submit(tenant_factory, 0).result()
    job_id = str(uuid.uuid4())
    view = clip_job_view(job_id, clip, folder, links)
    page = console.page(tenant.api_key)

    def answer(route):
        path = route.request.url.split("?", 1)[0]
        if path.endswith(f"/v1/jobs/{job_id}"):
            route.fulfill(status=200, content_type="application/json", body=json.dumps(view))
        elif "/candidates/" in path:  # a clip, typed as the API types what is not an image
            route.fulfill(status=200, content_type="application/octet-stream", body=clip)
        else:  # the stream and the receipt of a job the platform does not have
            route.fulfill(status=404, content_type="application/problem+json",
                          body=json.dumps({"type": "/problems/not-found", "title": "Not found", "status": 404}))

    page.route(f"**/v1/jobs/{job_id}**", answer)
    page.goto(f"/console/jobs/{job_id}")

    selected = page.locator('li.candidate[data-index="0"]')
    selected.locator("figure.clip-timeline").wait_for()
    rows = selected.locator(".timeline-row[data-dimension]")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.dimension)") == ["sharpness", "flicker"]
    marks = selected.locator('.timeline-row[data-dimension="sharpness"] rect.mark')
    assert marks.evaluate_all("ms => ms.map(m => +m.dataset.tMs)") == [0, 500, 1000, 1500]
    assert marks.evaluate_all("ms => ms.map(m => m.classList.contains('pass'))") == [True] * 4
    assert selected.locator('.timeline-row[data-dimension="flicker"] rect.mark.neutral').count() == 2

    rejected = page.locator('li.candidate[data-index="1"]')
    assert rejected.get_attribute("data-verdict") == "rejected"
    frozen = rejected.locator('.timeline-row[data-dimension="frozen_frames"]')
    assert frozen.get_attribute("data-verdict") == "fail"
    span = frozen.locator("rect.mark.fail")
    assert span.get_attribute("data-t-ms") == "700" and float(span.get_attribute("width")) == pytest.approx(65)  # 0.7 s to the end, of 2 s
    assert rejected.locator('.timeline-row[data-dimension="motion"] rect.mark.fail').get_attribute("data-t-ms") == "1200"
    assert rejected.locator('.timeline-row[data-dimension="sharpness"]').count() == 0  # passed, names no time
    whole = rejected.locator('.timeline-row[data-dimension="blockiness"] rect.mark.fail.whole')  # failed, names none
    assert (whole.get_attribute("data-t-ms"), whole.get_attribute("width")) == ("0", "100")
    player = rejected.locator("video")
    until(lambda: player.evaluate("v => v.readyState") >= 1, 30, "the candidate's clip read from its blob")
    span.dispatch_event("click")
    until(lambda: abs(player.evaluate("v => v.currentTime") - 0.7) < 0.05, 10, "the clip sought to 0.7 s")
    assert player.evaluate("v => v.duration") == pytest.approx(2.0, abs=0.1)  # the blob plays, typed as video/mp4

    assert page.locator('li.candidate[data-index="2"] .timeline-row[data-dimension]').count() == 0

    # Each card's strip: 8 frames drawn from its clip, evenly over its 2 s; a click seeks there.
    strip = selected.locator(".filmstrip canvas")
    playwright_api.expect(strip).to_have_count(8)
    assert strip.evaluate_all("cs => cs.map(c => +c.dataset.tMs)") == [125, 375, 625, 875, 1125, 1375, 1625, 1875]
    strip.nth(6).dispatch_event("click")
    until(lambda: abs(selected.locator("video").evaluate("v => v.currentTime") - 1.625) < 0.05, 10,
          "the clip sought to the 7th frame")
    playwright_api.expect(page.locator('li.candidate[data-index="2"] .filmstrip canvas')).to_have_count(8)
    delivered = page.get_by_test_id("clip-1")
    assert delivered.get_attribute("poster") == links["thumbnail_url"]
    until(lambda: delivered.evaluate("v => v.readyState") >= 1, 30, "the delivered clip's header read")
    assert delivered.evaluate("v => v.duration") == pytest.approx(2.0, abs=0.1)  # read through the CSP
    poster_loaded = page.evaluate("""url => new Promise((resolve) => { const i = new Image();
        i.onload = () => resolve(i.naturalWidth); i.onerror = () => resolve(0); i.src = url; })""",
                                  links["thumbnail_url"])
    assert poster_loaded == 160
    screenshot(page, "clip-timeline-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "clip-timeline-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert_only_local_requests(console)
