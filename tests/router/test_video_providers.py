"""The fal and Replicate adapters running video models, against simulators of the providers'
published shapes (video_apis.py; the schemas in fixtures/video/, each with its source in
fixtures/README.md), faults included.

The providers' entries are the commented examples of services/router/providers.yaml itself,
pointed at the simulators: what the registry documents is what is tested. Each clip is one
remote job, fetched as soon as it is done, checked as a file (PyAV: a clip, of the size
asked, whose frames decode) and copied where a resumed call finds it; slow jobs are polled
over many rounds, polls answered 429 or 5xx are tried again, an output whose URL expired
is asked of the job again (or lost, billed), a job given up on is canceled, a router that
stops hands its jobs to the next, which resumes them; nothing is submitted twice.
"""

import asyncio
import copy
import io
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from services.common import video
from services.common.contracts import VideoSpec
from services.router.providers.base import GenerationRequest, ProviderContext, ProviderError
from services.router.providers.copies import BucketCopies, CopiedOutput
from services.router.providers.factory import build_provider
from services.router.providers.journal import MemoryJournal, RemoteJobKey
from services.router.providers.registry import ProviderConfig, parse_registry
from tests.polling import until
from tests.router.market import SECRET, Script
from tests.router.stubs import Provider

REGISTRY = Path(__file__).parents[2] / "services" / "router" / "providers.yaml"


def documented_entries() -> dict[str, dict]:
    """The hosted video examples providers.yaml carries, commented out, as entries."""
    text = REGISTRY.read_text()
    block = text[text.index("#  fal-kling-2-1-i2v:"):]
    return yaml.safe_load("\n".join(line[1:] if line.startswith("#") else line for line in block.splitlines()))


ENTRIES = documented_entries()
# entry → (what the clip is made from, the clip asked for)
CASES = {
    "fal-kling-2-1-i2v": ("image", VideoSpec(duration_s=5, aspect_ratio="16:9", resolution="720p")),
    "fal-hailuo-02": ("text", VideoSpec(duration_s=6, aspect_ratio="16:9", resolution="720p")),
    "fal-veo3-fast": ("text", VideoSpec(duration_s=4, aspect_ratio="9:16", resolution="720p")),
    "replicate-kling-2-1": ("image", VideoSpec(duration_s=5, aspect_ratio="16:9", resolution="720p")),
    "replicate-wan-2-2-i2v-fast": ("image", VideoSpec(duration_s=5, aspect_ratio="16:9", resolution="480p")),
}
# What each sends, by the model's published schema (the simulator refuses anything else).
SENT = {
    "fal-kling-2-1-i2v": {"duration": "5", "cfg_scale": 0.5},
    "fal-hailuo-02": {"duration": "6", "prompt_optimizer": True},
    "fal-veo3-fast": {"duration": "4s", "aspect_ratio": "9:16", "resolution": "720p", "generate_audio": False},
    "replicate-kling-2-1": {"duration": 5, "mode": "standard"},
    "replicate-wan-2-2-i2v-fast": {"num_frames": 81, "frames_per_second": 16, "resolution": "480p"},
}
FIRST_FRAME_FIELD = {"fal-kling-2-1-i2v": "image_url", "replicate-kling-2-1": "start_image",
                     "replicate-wan-2-2-i2v-fast": "image"}


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as shared:
        yield shared


class MemoryCopies:
    def __init__(self) -> None:
        self.copies: dict[RemoteJobKey, CopiedOutput] = {}

    async def put(self, key, output) -> None:
        self.copies[key] = output

    async def get(self, key):
        return self.copies.get(key)


def simulator_for(name: str, video_simulators) -> Provider:
    return video_simulators[ENTRIES[name]["adapter"]]


def adapter_for(name: str, simulator: Provider, client, journal=None, copies=None, overall_s: float = 10.0,
                handing_over: bool = False):
    entry = copy.deepcopy(ENTRIES[name]) | {
        "endpoint": simulator.url, "credentials": "STUB_KEY", "poll_interval_s": 0.02,
        "timeouts": {"submit_s": min(5.0, overall_s), "overall_s": overall_s, "poll_backoff_max_s": 0.1}}
    config = ProviderConfig.model_validate({"name": name, **entry})
    context = ProviderContext(client=client, journal=journal, copies=copies, handing_over=handing_over)
    return build_provider(config, secret=SECRET, context=context)


def still(width: int, height: int) -> bytes:
    from services.router.providers.local.clip_maker import ClipMaker, ClipShape

    frame = ClipMaker(ClipShape(width=width, height=height, duration_s=1, fps=24)).painted("a harbour at dawn", 3)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).resize((width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def clip_request(name: str, timeout_s: float = 10.0, job_id: str | None = None) -> GenerationRequest:
    source, spec = CASES[name]
    width, height = spec.size()
    pin = ENTRIES[name]["models"][0]
    return GenerationRequest(
        job_id=job_id or uuid.uuid4().hex, attempt=1, prompt="a lighthouse in a storm", seed=40, count=1,
        width=width, height=height, model=pin["name"], model_version=pin["version"], timeout_s=timeout_s,
        capability="generate" if source == "text" else "animate", video=spec,
        inputs={0: still(width, height)} if source == "image" else {},
        params={"negative_prompt": "blur"})


@pytest.mark.parametrize("name", list(CASES))
async def test_a_video_model_gets_its_published_input_and_its_clip_is_read_from_the_file(name, video_simulators,
                                                                                         client):
    simulator = simulator_for(name, video_simulators)
    simulator.market.reset()
    copies = MemoryCopies()
    request = clip_request(name)

    [clip] = await adapter_for(name, simulator, client, MemoryJournal(), copies).generate(request)

    [job] = simulator.market.submissions
    sent = {k: v for k, v in job.body.items() if not k.startswith("_")}
    assert sent.items() >= SENT[name].items()
    if name in FIRST_FRAME_FIELD:
        assert sent[FIRST_FRAME_FIELD[name]].startswith("data:image/png;base64,")
    info = video.probe(clip.data)
    assert clip.media_type == "video/mp4" and info.codec == "h264" and info.frames >= 2
    assert (info.width, info.height) == (job.width, job.height)
    # Copied as soon as it was fetched: a resumed call needs no URL that may have expired.
    [copied] = copies.copies.values()
    assert copied.images[0][0] == clip.data
    # Priced as the clip it is: the seconds asked of the model at the provider's list price.
    assert clip.cost_micro_usd > 0


async def test_a_slow_clip_is_polled_over_many_rounds_and_fetched_once(video_simulators, client):
    simulator = simulator_for("fal-kling-2-1-i2v", video_simulators)
    simulator.market.reset(Script(latency_s=1.0))
    [clip] = await adapter_for("fal-kling-2-1-i2v", simulator, client).generate(clip_request("fal-kling-2-1-i2v"))
    [job] = simulator.market.submissions
    assert job.polls >= 10 and simulator.market.downloads[(job.id, 0)] == 1
    assert video.probe(clip.data).frames >= 2


@pytest.mark.parametrize("name", ["fal-veo3-fast", "replicate-kling-2-1"])
async def test_429_and_5xx_while_polling_are_waited_out_not_resubmitted(name, video_simulators, client):
    simulator = simulator_for(name, video_simulators)
    simulator.market.reset(Script(latency_s=0.3, poll_statuses=[503, 429, 502, 500], retry_after_s=0.05))
    [clip] = await adapter_for(name, simulator, client).generate(clip_request(name))
    assert len(simulator.market.submissions) == 1
    assert simulator.market.refused[503] == simulator.market.refused[429] == 1
    assert video.looks_like_video(clip.data)


@pytest.mark.parametrize("name", ["fal-hailuo-02", "replicate-wan-2-2-i2v-fast"])
async def test_an_output_url_that_expired_is_asked_of_the_job_again(name, video_simulators, client):
    simulator = simulator_for(name, video_simulators)
    simulator.market.reset(Script(output="expire_once"))
    [clip] = await adapter_for(name, simulator, client).generate(clip_request(name))
    [job] = simulator.market.submissions
    assert simulator.market.downloads[(job.id, 0)] == 2 and video.probe(clip.data).frames >= 2


@pytest.mark.parametrize("name", ["fal-kling-2-1-i2v", "replicate-kling-2-1"])
async def test_an_output_gone_before_the_copy_loses_the_clip_billed_and_nothing_is_resubmitted(name,
                                                                                               video_simulators,
                                                                                               client):
    simulator = simulator_for(name, video_simulators)
    simulator.market.reset(Script(output="expire_always"))
    journal = MemoryJournal()
    with pytest.raises(ProviderError) as failed:
        await adapter_for(name, simulator, client, journal).generate(clip_request(name))
    assert failed.value.kind == "server_error" and "expired" in str(failed.value)
    # The clip was made: the provider bills it, so the attempt counts it as spent.
    config = ProviderConfig.model_validate({"name": name, **ENTRIES[name]})
    assert failed.value.billed_micro_usd == config.clip_price_micro_usd(CASES[name][1])
    assert len(simulator.market.submissions) == 1
    assert [job.state for job in journal.jobs.values()] == ["failed"]


@pytest.mark.parametrize("output", ["corrupt", "cut", "still", "wrong_size"])
async def test_a_file_that_is_not_the_clip_asked_is_the_providers_defect_and_billed_all_the_same(output,
                                                                                                 video_simulators,
                                                                                                 client):
    simulator = simulator_for("fal-veo3-fast", video_simulators)
    simulator.market.reset(Script(output=output))
    with pytest.raises(ProviderError) as failed:
        await adapter_for("fal-veo3-fast", simulator, client).generate(clip_request("fal-veo3-fast"))
    assert failed.value.kind == "bad_output" and failed.value.counts_against_health
    # The clip was made, and the provider bills what it made: the job's cost counts it.
    config = ProviderConfig.model_validate({"name": "fal-veo3-fast", **ENTRIES["fal-veo3-fast"]})
    assert failed.value.billed_micro_usd == config.clip_price_micro_usd(CASES["fal-veo3-fast"][1]) > 0
    assert len(simulator.market.submissions) == 1


@pytest.mark.parametrize("name", ["fal-kling-2-1-i2v", "replicate-wan-2-2-i2v-fast"])
async def test_a_clip_given_up_on_is_canceled_at_the_provider(name, video_simulators, client):
    simulator = simulator_for(name, video_simulators)
    simulator.market.reset(Script(hang=True))
    journal = MemoryJournal()
    provider = adapter_for(name, simulator, client, journal, overall_s=0.4)
    with pytest.raises(ProviderError, match="timeout"):
        await provider.generate(clip_request(name, timeout_s=0.4))
    [job] = simulator.market.submissions
    until(lambda: simulator.market.cancels == [job.id], 5.0, "the provider never saw the job canceled", pause_s=0.01)
    assert [j.state for j in journal.jobs.values()] == ["canceled"]


@pytest.mark.parametrize("name", ["fal-veo3-fast", "replicate-kling-2-1"])
async def test_a_restarted_router_resumes_the_remote_clip_and_never_pays_twice(name, video_simulators, client):
    simulator = simulator_for(name, video_simulators)
    simulator.market.reset(Script(latency_s=0.8))
    journal, copies, job_id = MemoryJournal(), MemoryCopies(), uuid.uuid4().hex
    request = clip_request(name, job_id=job_id)
    stopping = adapter_for(name, simulator, client, journal, copies, handing_over=True)
    call = asyncio.create_task(stopping.generate(request))
    while not journal.jobs:
        await asyncio.sleep(0.01)
    call.cancel()  # the router stops: the remote job is left running, written down
    with pytest.raises(asyncio.CancelledError):
        await call
    assert simulator.market.cancels == []

    [clip] = await adapter_for(name, simulator, client, journal, copies).generate(request)
    [job] = simulator.market.submissions
    assert video.probe(clip.data).frames >= 2 and job.polls >= 2
    # Asked again after it succeeded (a crash before the attempt was stored): the copy, not a new job.
    downloads = simulator.market.downloads[(job.id, 0)]
    [again] = await adapter_for(name, simulator, client, journal, copies).generate(request)
    assert again.data == clip.data and len(simulator.market.submissions) == 1
    assert simulator.market.downloads[(job.id, 0)] == downloads


async def test_a_fetched_clip_is_copied_to_the_internal_bucket(video_simulators, client, object_store):
    simulator = simulator_for("replicate-kling-2-1", video_simulators)
    simulator.market.reset()
    request = clip_request("replicate-kling-2-1")
    copies = BucketCopies(object_store)
    [clip] = await adapter_for("replicate-kling-2-1", simulator, client, MemoryJournal(), copies).generate(request)
    key = RemoteJobKey(job_id=request.job_id, attempt=1, capability="animate", provider="replicate-kling-2-1", start_index=0, count=1)
    copied = await copies.get(key)
    assert copied is not None and copied.images[0][0] == clip.data and copied.images[0][1] == "video/mp4"


def test_a_video_model_that_cannot_make_the_clip_is_refused_before_any_call(video_simulators):
    config = ProviderConfig.model_validate({"name": "veo", **ENTRIES["fal-veo3-fast"]})
    pin = config.models[0]
    assert config.can_make_clip(pin, VideoSpec(duration_s=6, aspect_ratio="9:16", resolution="1080p"), from_image=False)
    assert not config.can_make_clip(pin, VideoSpec(duration_s=9, resolution="720p"), from_image=False)  # at most 8 s
    assert not config.can_make_clip(pin, VideoSpec(duration_s=4, aspect_ratio="1:1"), from_image=False)
    assert not config.can_make_clip(pin, VideoSpec(duration_s=4), from_image=True)  # text-to-video only
    # A 3 s clip is asked, and paid, as the model's shortest: 4 s at 0.10 USD a second.
    assert config.clip_price_micro_usd(VideoSpec(duration_s=3)) == 400_000


def test_the_docs_show_the_video_models_the_registry_documents():
    example = REGISTRY.parents[2] / "docs" / "examples" / "providers" / "video.yaml"
    assert yaml.safe_load(example.read_text()) == ENTRIES
    assert "--8<-- \"examples/providers/video.yaml\"" in (REGISTRY.parents[2] / "docs" / "guides" /
                                                          "providers.md").read_text()


def test_the_registry_names_who_can_make_a_clip_and_why_the_others_cannot():
    registry = parse_registry({"providers": ENTRIES})
    text_only = {name for name, entry in ENTRIES.items() if entry["capabilities"]["video"] == ["text"]}

    makers, reasons = registry.clip_makers(VideoSpec(duration_s=6, aspect_ratio="9:16", resolution="720p"), False)

    assert "fal-veo3-fast" in makers and set(makers) <= text_only
    assert {reason.split(":")[0] for reason in reasons} | set(makers) == set(ENTRIES)
    assert all("no clips from a prompt" in reason for reason in reasons if reason.split(":")[0] not in text_only)
    none, why = registry.clip_makers(VideoSpec(duration_s=4, aspect_ratio="4:3"), False, model="veo3-fast")
    assert none == [] and why
