"""The local provider's clips: real MP4 files, at the size, length and rate asked, with real
motion, and each planted defect really in the file (measured here on the decoded frames,
with no knowledge of how it was planted beyond its name)."""

import io
import uuid

import numpy as np
import pytest
from PIL import Image

from services.common import video
from services.common.contracts import VideoSpec
from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.factory import build_provider
from services.router.providers.local.clip_maker import CLIP_DEFECTS, ClipMaker, ClipShape, ClipTake
from services.router.providers.registry import ProviderConfig, load_registry

SHAPE = ClipShape(width=854, height=480, duration_s=2, fps=24)


@pytest.fixture(scope="module")
def clips() -> dict[str | None, bytes]:
    maker = ClipMaker(SHAPE)
    return {defect: maker.from_text("a kite over a beach", ClipTake(11, defect)).data for defect in (None, *CLIP_DEFECTS)}


def decoded(data: bytes) -> np.ndarray:
    """Every frame's luma, small (frames × h × w), as floats."""
    return np.stack([frame.rgb.astype(np.float32).mean(axis=2) for frame in video.frames(data, video.Sampling(max_side=160))])


def steps(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change from each frame to the next."""
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))


def test_a_clean_clip_is_an_mp4_of_the_asked_shape_with_real_motion(clips):
    info = video.probe(clips[None])
    assert (info.codec, info.width, info.height, info.fps, info.frames) == ("h264", 854, 480, 24.0, 48)
    assert info.duration_ms == 2000 and info.index_first and info.media_type == "video/mp4"
    changes = steps(decoded(clips[None]))
    assert changes.min() > 0.5  # every frame moves
    assert np.abs(np.diff(changes)).max() < 6  # smoothly: no cut, no flicker


def test_a_frozen_clip_stops_moving(clips):
    changes = steps(decoded(clips["frozen"]))
    assert changes[:10].min() > 0.5 and changes[20:].max() < 0.5


def test_a_clip_with_black_frames_has_a_run_of_them(clips):
    luma = decoded(clips["black"]).mean(axis=(1, 2))
    black = np.flatnonzero(luma < 8)
    assert len(black) >= 3 and np.all(np.diff(black) == 1) and luma[0] > 40


def test_a_flickering_clip_jumps_in_brightness_every_frame(clips):
    luma = decoded(clips["flicker"]).mean(axis=(1, 2))
    assert np.abs(np.diff(luma)).min() > 15
    assert np.abs(np.diff(decoded(clips[None]).mean(axis=(1, 2)))).max() < 3


def test_a_still_disguised_as_a_clip_has_frames_but_no_motion(clips):
    info = video.probe(clips["still"])
    assert info.frames == 48
    assert steps(decoded(clips["still"])).max() < 1.0


def test_a_clip_whose_subject_changes_halfway_matches_the_clean_one_only_until_then(clips):
    clean, changed = decoded(clips[None]), decoded(clips["face_change"])
    height, width = clean.shape[1:]
    centre = (slice(height * 2 // 5, height * 3 // 5), slice(width * 2 // 5, width * 3 // 5))
    border = (slice(None), slice(0, width // 8))  # the left edge: beyond the subject, and the disc past it
    at_centre = np.abs(clean - changed)[(slice(None), *centre)].mean(axis=(1, 2))
    around = np.abs(clean - changed)[(slice(None), *border)].mean(axis=(1, 2))
    assert at_centre[:23].max() < 2 and at_centre[25:].min() > 8
    assert around.max() < 2  # the scene goes on: not a cut, the subject alone changes


def test_a_short_clip_plays_half_the_asked_length(clips):
    info = video.probe(clips["short"])
    assert info.duration_ms == 1000 and info.frames == 24


def test_a_corrupt_clip_reads_as_a_file_but_does_not_decode(clips):
    info = video.probe(clips["corrupt"])
    assert info.frames == 48
    with pytest.raises(video.ClipError):
        decoded(clips["corrupt"])


def test_image_to_video_starts_from_the_first_frame_at_the_asked_size():
    first = np.zeros((720, 720, 3), np.uint8)
    first[:, :, 0] = np.linspace(0, 255, 720, dtype=np.uint8)[None, :]  # a red ramp left to right
    first[200:520, 200:520, 2] = 255
    clip = ClipMaker(ClipShape(width=480, height=480, duration_s=1, fps=12)).from_still(first, ClipTake(3)).data
    info = video.probe(clip)
    assert (info.width, info.height, info.frames, info.fps) == (480, 480, 12, 12.0)
    opening = next(video.frames(clip)).rgb.astype(np.float32)
    expected = np.asarray(Image.fromarray(first).resize((552, 552)), np.float32)[:480, :480]
    mask = np.ones((480, 480), bool)
    mask[220:440, :] = False  # where the moving subject is drawn
    assert np.abs(opening - expected)[mask].mean() < 12


def local_video(defect_rate: float = 0.0, defects: list[str] | None = None) -> ProviderConfig:
    entry = load_registry().providers["local-video"].model_dump(mode="json")
    entry["local"] |= {"defect_rate": defect_rate, "options": {"defects": defects} if defects else {}}
    return ProviderConfig.model_validate(entry)


def request(spec: VideoSpec, capability: str = "generate", count: int = 2, **changes) -> GenerationRequest:
    width, height = spec.size()
    return GenerationRequest(**({"job_id": uuid.uuid4().hex, "attempt": 1, "prompt": "a fox in snow", "seed": 5,
                                 "count": count, "width": width, "height": height, "model": "local-clips",
                                 "model_version": "1", "capability": capability, "video": spec} | changes))


async def test_the_local_provider_makes_the_asked_clips_from_text_and_from_a_still():
    provider = build_provider(local_video())
    spec = VideoSpec(duration_s=2, aspect_ratio="9:16", resolution="480p", fps=12)
    made = await provider.generate(request(spec))
    buffer = io.BytesIO()
    Image.new("RGB", (480, 854), (30, 90, 160)).save(buffer, format="PNG")
    animated = await provider.generate(request(spec, "animate", count=1, input=buffer.getvalue()))
    for clip in made + animated:
        info = video.probe(clip.data)
        assert (info.width, info.height, info.fps, info.duration_ms) == (480, 854, 12.0, 2000)
        assert clip.media_type == "video/mp4"
        assert clip.cost_micro_usd == 2 * 20_000  # two seconds at 0.02 USD
    assert [clip.index for clip in made] == [0, 1] and made[0].data != made[1].data


async def test_the_local_provider_plants_the_defects_it_is_configured_with():
    provider = build_provider(local_video(defect_rate=0.99, defects=["short"]))
    spec = VideoSpec(duration_s=2, aspect_ratio="1:1", resolution="480p")
    # Each clip's draw depends on its job, seed and index: one job, so the test is the same every run.
    made = await provider.generate(request(spec, count=3, job_id="7" * 32))
    assert {video.probe(clip.data).duration_ms for clip in made} == {1000}


async def test_a_video_provider_makes_no_images_and_needs_a_first_frame_to_animate():
    provider = build_provider(local_video())
    spec = VideoSpec(duration_s=1, resolution="480p")
    with pytest.raises(ProviderError, match="first frame"):
        await provider.generate(request(spec, "animate", count=1))
    with pytest.raises(ProviderError, match="clips only"):
        await provider.generate(request(spec, video=None))
