"""Clip dimensions (pure, on the CPU scorer): a clip is measured on its frames. A steady
pan-and-zoom clip passes the motion profile; brightness pulsing between frames fails
flicker; one blurred frame fails frame_sharpness although the frames' mean sharpness
passes; a still is not a clip; tier-1 dimensions of a clip are its frames' mean."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageSequence

from services.common.quality.profiles import load_profile, profile_of_dimensions
from services.scorer.dimensions import Scoring
from services.scorer.dimensions.batch import is_clip
from services.scorer.dimensions.engine import Leg
from services.scorer.dimensions.tiers import TierWalk
from tests.scorer.conftest import png

CLIP_CHECKS = profile_of_dimensions(("sharpness", "exposure", "frames", "frame_sharpness", "flicker"))


def pan_and_zoom(pixels: np.ndarray, frames: int = 8, size: tuple[int, int] = (192, 192),
                 zoom: float = 1.3) -> list[Image.Image]:
    """A clip made from a still as the local animate stage makes one: the crop moves right
    and closes in, each frame resized to `size`."""
    height, width = pixels.shape[:2]
    still, clip = Image.fromarray(pixels), []
    for i in range(frames):
        t = i / (frames - 1)
        crop_width, crop_height = int(width / (1 + (zoom - 1) * t)), int(height / (1 + (zoom - 1) * t))
        left, top = int((width - crop_width) * t), (height - crop_height) // 2
        clip.append(still.crop((left, top, left + crop_width, top + crop_height)).resize(size, Image.Resampling.LANCZOS))
    return clip


def animated_webp(frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=80, loop=0, quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def frames(photos) -> list[Image.Image]:
    return pan_and_zoom(photos["astronaut"])


def test_a_steady_clip_passes_the_motion_profile(scorer, frames):
    [verdict] = scorer.score([animated_webp(frames)], Scoring(profile=load_profile("motion")))

    assert verdict.passed, {name: verdict.dimensions[name].reason for name in verdict.failed}
    assert verdict.dimensions["frames"].value == len(frames)
    assert verdict.dimensions["flicker"].value < verdict.dimensions["flicker"].threshold


def test_brightness_pulsing_between_frames_fails_flicker_only(scorer, frames):
    pulsing = [Image.fromarray(np.clip(np.asarray(f, float) * (1.1 if i % 2 else 0.9), 0, 255).astype(np.uint8))
               for i, f in enumerate(frames)]

    steady, flickering = scorer.score([animated_webp(frames), animated_webp(pulsing)], Scoring(profile=CLIP_CHECKS))

    assert steady.passed and flickering.failed == ("flicker",)
    assert flickering.dimensions["flicker"].value > 5 * steady.dimensions["flicker"].value
    assert "brightness jumps" in flickering.dimensions["flicker"].reason


def test_one_blurred_frame_fails_frame_sharpness_while_the_mean_sharpness_passes(scorer, frames):
    smeared = [f.filter(ImageFilter.GaussianBlur(3)) if i == 3 else f for i, f in enumerate(frames)]

    [verdict] = scorer.score([animated_webp(smeared)], Scoring(profile=CLIP_CHECKS))

    assert verdict.failed == ("frame_sharpness",)
    assert verdict.dimensions["sharpness"].passed


def test_a_clip_blurred_throughout_fails_both_sharpness_checks(scorer, frames):
    blurred = [f.filter(ImageFilter.GaussianBlur(4)) for f in frames]
    [verdict] = scorer.score([animated_webp(blurred)], Scoring(profile=CLIP_CHECKS))
    assert set(verdict.failed) == {"sharpness", "frame_sharpness"}


def test_a_still_is_not_a_clip(scorer, frames):
    [verdict] = scorer.score([png(frames[0])], Scoring(profile=CLIP_CHECKS))

    assert verdict.failed == ("frames",) and verdict.dimensions["frames"].value == 1
    assert verdict.dimensions["flicker"].value == 0


def test_tier_one_dimensions_of_a_clip_are_its_frames_mean(scorer, frames):
    clip = animated_webp(frames)
    with Image.open(io.BytesIO(clip)) as decoded:  # the frames exactly as the clip holds them
        stills = [png(frame.convert("RGB")) for frame in ImageSequence.Iterator(decoded)]
    checks = profile_of_dimensions(("sharpness", "exposure"))

    [of_clip], of_frames = scorer.score([clip], Scoring(profile=checks)), scorer.score(stills, Scoring(profile=checks))

    # Tolerances: float32 sums; and OpenCV's own grey decode of a PNG against BT.601 luma
    # from the clip's RGB frames, a level apart at most. The frames differ by far more.
    for name, tolerance in (("sharpness", 0.1), ("exposure", 0.0025)):
        values = [v.dimensions[name].value for v in of_frames]
        assert max(values) - min(values) > 3 * tolerance
        assert of_clip.dimensions[name].value == pytest.approx(sum(values) / len(values), abs=tolerance)


def test_batched_scoring_measures_clips_beside_stills_as_one_by_one_scoring_does(scorer, frames):
    """The path the scorer takes on a GPU (stills stacked by size, each clip alone), run here
    on the CPU: the same values as measuring image by image."""
    images = [png(frames[0]), animated_webp(frames), png(frames[1])]
    dimensions = [d.dimension for d in scorer._plan(CLIP_CHECKS, scorer_context(scorer)).values()]

    walk = TierWalk.measuring(dimensions)
    batched = [p.values for p, _ in scorer._walk_batched(images, Leg(walk=walk, context=scorer_context(scorer), color=False, steps=1))]
    one_by_one = [p.values for p, _ in scorer._walk_each(images, Leg(walk=walk, context=scorer_context(scorer), color=False, steps=1))]

    for measured_batched, measured_alone in zip(batched, one_by_one, strict=True):
        assert measured_batched == pytest.approx(measured_alone)
    assert [values["frames"] for values in batched] == [1, len(frames), 1]


def scorer_context(scorer):
    from services.scorer.dimensions.batch import ScoringContext

    return ScoringContext(device=scorer.device)


def test_only_an_animated_webp_is_a_clip(frames):
    still_webp = io.BytesIO()
    frames[0].save(still_webp, format="WEBP")
    assert is_clip(animated_webp(frames))
    assert not is_clip(still_webp.getvalue()) and not is_clip(png(frames[0])) and not is_clip(b"RIFF")
