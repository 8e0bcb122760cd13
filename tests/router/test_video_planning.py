"""Planning a video job's clips, without I/O: which providers can make the clip (from text on
`generate`, from a still on `animate`; the length, tier and aspect ratio each model takes),
what one clip costs there (per second, per clip, per tier × length), and the ranking by
expected cost per passing clip, as for images."""

import pytest

from services.common.contracts import VideoSpec
from services.router.planning import Planner, ProviderSnapshot, capable_providers, incapable_reason
from services.router.providers.registry import RegistryError, parse_registry
from services.router.routing_types import NoCapableProvider, RouteRequest, RoutingPolicy
from tests.router.test_video_providers import ENTRIES

CLIP = VideoSpec(duration_s=5, aspect_ratio="16:9", resolution="720p")


def registry(**extra):
    local = {"adapter": "local", "models": [{"name": "local-clips", "version": "1"}],
             "capabilities": {"video": ["text", "image"], "max_images_per_request": 2},
             "price": {"per_clip_second_micro_usd": 20_000}, "concurrency": 2,
             "pass_rate_prior": {"mean": 0.5, "strength": 4}}
    image = {"adapter": "local", "models": [{"name": "local-painter", "version": "1"}],
             "price": {"per_image_micro_usd": 1000}, "concurrency": 2}
    return parse_registry({"providers": {"local-video": local, "local-standard": image,
                                         **{name: ENTRIES[name] for name in ENTRIES}, **extra}})


def request(capability: str = "generate", video: VideoSpec | None = CLIP, **changes) -> RouteRequest:
    width, height = (video or CLIP).size()
    return RouteRequest(**({"job_id": "j", "tenant_id": "t", "tier": "low-cost", "template": "text-to-video",
                            "prompt": "p", "seed": 1, "images_needed": 1, "width": width, "height": height,
                            "capability": capability, "video": video} | changes))


def names(req: RouteRequest, reg=None) -> set[str]:
    return {c.name for c in capable_providers((reg or registry()).providers.values(), RoutingPolicy(), request=req)}


def test_generate_makes_clips_from_text_and_animate_from_a_still():
    # Hailuo-02 makes 6 or 10 s, Veo 3 Fast 4, 6 or 8 s: a 5 s clip is asked of them as 6 s.
    assert names(request("generate")) == {"local-video", "fal-hailuo-02", "fal-veo3-fast"}
    assert names(request("animate")) == {"local-video", "fal-kling-2-1-i2v", "replicate-kling-2-1",
                                         "replicate-wan-2-2-i2v-fast"}
    # 7 s: Kling's next length (10 s) is far longer than asked; Wan makes up to 7.5 s; not at 1080p.
    assert names(request("animate", VideoSpec(duration_s=7, resolution="720p"))) == {
        "local-video", "replicate-wan-2-2-i2v-fast"}
    assert names(request("animate", VideoSpec(duration_s=5, resolution="1080p"))) == {"local-video",
                                                                                    "replicate-kling-2-1"}


def test_image_jobs_never_go_to_a_video_provider_nor_clips_to_an_image_one():
    assert names(request(video=None, width=1024, height=1024)) == {"local-standard"}
    assert "local-standard" not in names(request("generate"))


def test_a_clip_no_model_can_make_is_refused_with_its_shape():
    with pytest.raises(NoCapableProvider, match="no video provider makes a 30 s 1080p 9:16 clip from image"):
        Planner(registry(), RoutingPolicy()).plan_attempt(
            request("animate", VideoSpec(duration_s=30, aspect_ratio="9:16", resolution="1080p")), [], snapshot={})
    assert "from text" in incapable_reason(request())


def test_clip_prices_per_second_per_clip_and_per_tier_and_length():
    reg = registry()
    five = VideoSpec(duration_s=5, resolution="720p")
    assert reg.providers["fal-kling-2-1-i2v"].clip_price_micro_usd(five) == 280_000  # 0.056 USD × 5 s
    assert reg.providers["replicate-kling-2-1"].clip_price_micro_usd(five) == 250_000  # the 720p/5 s entry
    # 8 s is asked of Kling as 10 s, and priced as that.
    assert reg.providers["replicate-kling-2-1"].clip_price_micro_usd(VideoSpec(duration_s=8)) == 500_000
    assert reg.providers["local-video"].clip_price_micro_usd(VideoSpec(duration_s=2.5, resolution="480p")) == 50_000


def snapshot(reg, req, pass_rates: dict[str, float]) -> dict[str, ProviderSnapshot]:
    return {c.name: ProviderSnapshot(breaker_available=True, quality_available=True, price_ratio=1.0, latency_ratio=1.0, pass_rate=pass_rates.get(c.name, 0.5))
            for c in capable_providers(reg.providers.values(), RoutingPolicy(), request=req)}


def test_the_cheapest_clip_per_passing_clip_leads_not_the_cheapest_clip():
    reg, req = registry(), request("animate")
    capable = capable_providers(reg.providers.values(), RoutingPolicy(), request=req)
    # A clip and its pass rate, per passing clip: local 100,000 at 0.2 (500,000), Wan 110,000 at 0.3
    # (366,667), Kling on fal 280,000 at 0.9 (311,111), on Replicate 250,000 at 0.9 (277,778).
    rates = {"local-video": 0.2, "replicate-wan-2-2-i2v-fast": 0.3, "replicate-kling-2-1": 0.9,
             "fal-kling-2-1-i2v": 0.9}
    plan = Planner(reg, RoutingPolicy()).plan_attempt(req, capable, snapshot=snapshot(reg, req, rates))
    assert [q.provider for q in plan.chain] == ["replicate-kling-2-1", "fal-kling-2-1-i2v",
                                                "replicate-wan-2-2-i2v-fast", "local-video"]
    assert plan.primary.price_micro_usd == 250_000
    cheap = Planner(reg, RoutingPolicy()).plan_attempt(req, capable, snapshot=snapshot(reg, req, {"local-video": 0.8}))
    assert cheap.primary.provider == "local-video"


@pytest.mark.parametrize("change, message", [
    ({"models": [{"name": "m", "version": "1", "remote_id": "fal-ai/veo3/fast"}]},
     "declares how it takes a clip's shape"),
    ({"capabilities": {"video": ["image"]}}, "takes no first frame"),
    ({"adapter": "openai"}, "makes no clips"),
])
def test_a_video_provider_says_how_its_models_take_a_clip(change, message):
    entry = {**ENTRIES["fal-veo3-fast"], **change}
    with pytest.raises(RegistryError, match=message):
        parse_registry({"providers": {"veo": entry}})


def test_a_local_video_provider_plants_only_defects_it_knows():
    entry = {"adapter": "local", "models": [{"name": "clips", "version": "1"}],
             "capabilities": {"video": ["text"]}, "price": {"per_clip_micro_usd": 1}, "concurrency": 1,
             "local": {"defect_rate": 0.5, "options": {"defects": ["frozen", "jitter"]}}}
    with pytest.raises(RegistryError, match="unknown clip defect 'jitter'"):
        parse_registry({"providers": {"clips": entry}})


@pytest.mark.parametrize("rate, clips", [(0.9, 1), (0.72, 1), (0.5, 2), (0.3, 3)])
def test_a_clips_rework_asks_the_missing_clips_at_the_clips_expected_pass_rate(rate, clips):
    """After a rejected clip, the retake asks what the clip's pass rate says brings the one
    missing (1 ÷ rate, rounded), not enough to succeed in one round at the tier's 95 %; an
    image job's rework at the same rate still aims for the target."""
    reg = registry()
    rework = request("animate", attempt=2)
    capable = capable_providers(reg.providers.values(), RoutingPolicy(), request=rework)
    rates = {c.name: rate for c in capable}
    plan = Planner(reg, RoutingPolicy()).plan_attempt(rework, capable, snapshot=snapshot(reg, rework, rates))
    assert plan.candidates == clips

    stills = request("generate", video=None, template="generic", attempt=2, width=1024, height=1024)
    painters = capable_providers(reg.providers.values(), RoutingPolicy(), request=stills)
    images = Planner(reg, RoutingPolicy()).plan_attempt(stills, painters, snapshot=snapshot(reg, stills, {
        c.name: rate for c in painters}))
    assert images.candidates > clips


@pytest.mark.parametrize("last", [{"attempt": 2, "time_left_s": 10.0},  # no time for another round after it
                                  {"attempt": 3}])  # the last of the rounds planning counts on (max_rounds)
def test_a_clips_last_rework_still_aims_for_the_target(last):
    reg = registry()
    rework = request("animate", **last)
    capable = capable_providers(reg.providers.values(), RoutingPolicy(), request=rework)
    plan = Planner(reg, RoutingPolicy()).plan_attempt(rework, capable, snapshot=snapshot(reg, rework, {
        c.name: 0.72 for c in capable}))
    assert plan.candidates == 3  # 1 − 0.28³ ≥ 0.95
