"""Video clips scored for real (on the CPU scorer): MP4s made here from photographs with
`video.encode`, each with one planted defect, are decoded with PyAV and judged by the
`video` profile against the job's video block (2 s, 1:1, 480p: 480x480 at 24 fps). Each
defect is caught with its reason; a clean pan over the astronaut passes; a clip that fails
its container check is never decoded."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from services.common import video
from services.common.contracts import VideoSpec
from services.common.quality.dimensions import DIMENSIONS
from services.common.quality.profiles import load_profile
from services.scorer.dimensions import Equipment, Scorer, Scoring
from services.scorer.dimensions import video as clip_reading
from services.scorer.dimensions.batch import ClipRequest, ScoringContext, VideoSampling
from services.scorer.dimensions.engine import Leg
from services.scorer.dimensions.video import ClipReading
from services.scorer.handlers import clip_request
from tests.router.video_apis import cut_between_frames
from tests.scorer.conftest import CPU, png
from tests.scorer.test_faces import grace_hopper

ASKED = VideoSpec(duration_s=2, aspect_ratio="1:1", resolution="480p", fps=24)
FPS = 24
SIDE = 480


def asked() -> ClipRequest:
    request = clip_request_of(ASKED)
    assert (request.width, request.height, request.duration_s, request.fps) == (480, 480, 2, 24)
    return request


def clip_request_of(spec: VideoSpec) -> ClipRequest:
    width, height = spec.size()
    return ClipRequest(duration_s=spec.duration_s, width=width, height=height, fps=spec.fps)


def drift(pixels: np.ndarray, frames: int, size: tuple[int, int] = (SIDE, SIDE), step: float = 2.0) -> list[np.ndarray]:
    """A camera drifting right over a photograph, `step` pixels a frame."""
    width, height = size
    still = Image.fromarray(pixels).resize((width + math.ceil(frames * step) + 8, height + 8), Image.Resampling.LANCZOS)
    return [np.asarray(still.crop((round(i * step), 4, round(i * step) + width, 4 + height))) for i in range(frames)]


def crossfade(first: list[np.ndarray], second: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """`first`, then `frames` frames blending into `second`, then `second`: no cut."""
    blend = [((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.uint8)
             for t, a, b in zip(np.linspace(0, 1, frames), first[-frames:], second[:frames], strict=True)]
    return first[:-frames] + blend + second[frames:]


def encode(frames: list[np.ndarray], fps: float = FPS, codec: str = "h264") -> bytes:
    return video.encode(frames, fps, codec=video.Codec(codec))


def slow_zoom(pixels: np.ndarray, frames: int, zoom: float = 1.2) -> list[np.ndarray]:
    """Closing in on the centre of a still, to `zoom` at the last frame, as an animate stage does."""
    still, side = Image.fromarray(pixels), min(pixels.shape[:2])
    crops = [side / (1 + (zoom - 1) * i / (frames - 1)) for i in range(frames)]
    return [np.asarray(still.crop(((pixels.shape[1] - c) / 2, (pixels.shape[0] - c) / 2, (pixels.shape[1] + c) / 2,
                                   (pixels.shape[0] + c) / 2)).resize((SIDE, SIDE), Image.Resampling.BICUBIC))
            for c in crops]


@pytest.fixture(scope="module")
def profile():
    return load_profile("video")


@pytest.fixture(scope="module")
def astronaut(photos) -> list[np.ndarray]:
    return drift(photos["astronaut"], 2 * FPS)


@pytest.fixture(scope="module")
def grace() -> list[np.ndarray]:
    portrait = np.asarray(Image.fromarray(grace_hopper()).resize((512, 600)))[40:552]
    return drift(portrait, 2 * FPS)


def scored(scorer, clip: bytes, profile, **inputs):
    [verdict] = scorer.score([clip], Scoring(profile=profile, requested_clip=asked(), tiered=True, **inputs))
    return verdict


def reasons(verdict) -> dict[str, str]:
    return {name: verdict.dimensions[name].reason for name in verdict.failed}


def test_the_job_asks_its_clip_through_its_video_block():
    from datetime import UTC, datetime
    from uuid import uuid4

    from services.common.contracts import JobSpec

    spec = JobSpec(job_id=uuid4(), tenant_id="t", template="text-to-video", prompt="a lighthouse", images=1,
                   candidates=2, seed=1, submitted_at=datetime.now(UTC), video=ASKED)
    assert clip_request(spec) == asked()
    assert clip_request(spec.model_copy(update={"video": None})) is None


def test_a_video_job_is_scored_by_the_video_profile_unless_it_names_its_own():
    from datetime import UTC, datetime
    from uuid import uuid4

    from services.common.contracts import JobSpec
    from services.scorer.handlers import profile_of

    spec = JobSpec(job_id=uuid4(), tenant_id="t", template="generic", prompt="a lighthouse", images=1, candidates=2,
                   seed=1, submitted_at=datetime.now(UTC), video=ASKED)
    assert profile_of(spec).name == "video"
    assert profile_of(spec.model_copy(update={"profile": "headshot"})).name == "headshot"
    assert profile_of(spec.model_copy(update={"video": None})).name == "generic"


def test_batched_scoring_reads_clips_as_one_by_one_scoring_does(scorer, profile, astronaut, photos):
    """The path a CUDA scorer takes (stills stacked, each clip alone), run here on the CPU."""
    images = [encode(astronaut), png(photos["coffee"]), encode(astronaut[:24])]
    walk = scorer.walk_of(Scoring(profile=profile, requested_clip=asked()))
    context = ScoringContext(device=CPU, requested_clip=asked())

    leg = Leg(walk=walk, context=context, color=True, steps=walk.ordered_from)
    batched = [p.values for p, _ in scorer._walk_batched(images, leg)]
    alone = [p.values for p, _ in scorer._walk_each(images, leg)]

    assert [sorted(values) for values in batched] == [sorted(values) for values in alone]
    for measured_batched, measured_alone in zip(batched, alone, strict=True):
        assert measured_batched == pytest.approx(measured_alone, nan_ok=True)
    assert "sharpness" in batched[0] and "sharpness" not in batched[2]  # the short clip stopped at its container


def test_a_clean_clip_passes_with_every_dimension_measured(scorer, profile, astronaut, photos):
    verdict = scored(scorer, encode(astronaut), profile, reference=png(photos["astronaut"]))

    assert verdict.passed, reasons(verdict)
    values = {name: result.value for name, result in verdict.dimensions.items()}
    assert values["container"] == 1 and values["duration"] == pytest.approx(1.0)
    assert values["frozen"] == 0 and values["black_frames"] == 0 and values["scene_cuts"] == 0
    assert values["movement"] > 0.05 and values["temporal_flicker"] < 0.005
    assert values["identity"] < 0.4 and values["face_consistency"] < 0.3
    assert "2.00 s of the 2 s asked" in verdict.dimensions["duration"].reason
    assert "one face in 8 of 8 sampled frames" in verdict.dimensions["face_consistency"].reason


@pytest.mark.parametrize("codec", ["vp9", "av1"])
def test_a_clean_clip_in_webm_or_av1_passes(scorer, profile, astronaut, codec):
    verdict = scored(scorer, encode(astronaut, codec=codec), profile)
    assert verdict.passed, reasons(verdict)
    assert f"{codec} in " in verdict.dimensions["container"].reason


def test_a_slow_zoom_over_a_painting_moves_and_is_not_frozen():
    """Ten seconds closing in 1.2 times on a LocalGenerator painting (smooth, so frames differ
    by a fraction of a luma level): well under the frozen bound, movement above its floor."""
    from services.router.providers.local.painter import CandidateRange, LocalGenerator

    [painted] = LocalGenerator(512, 512, defect_rate=0).paint(CandidateRange(prompt="a lighthouse at dusk", seed=3, count=1))
    pixels = np.asarray(Image.open(io.BytesIO(painted.png)).convert("RGB"))
    reading = ClipReading(0, encode(slow_zoom(pixels, 10 * FPS)), context=ScoringContext(device=CPU, requested_clip=asked()))

    assert reading.value_of(DIMENSIONS["frozen"]) < 0.1
    assert 0.002 < reading.value_of(DIMENSIONS["movement"]) < 0.01


def test_a_frozen_clip_fails_frozen(scorer, profile, astronaut):
    frozen = astronaut[:20] + [astronaut[19]] * (len(astronaut) - 20)

    verdict = scored(scorer, encode(frozen), profile)

    assert verdict.failed == ("frozen",), reasons(verdict)
    assert verdict.dimensions["frozen"].value == pytest.approx(28 / 47)
    assert "near-identical" in verdict.dimensions["frozen"].reason
    assert "longest frozen run 1.17 s" in verdict.dimensions["frozen"].reason
    assert verdict.dimensions["sharpness"].reason == "sharpness unmeasured: rejected at the temporal check by frozen"


def test_a_clip_with_black_frames_fails_black_frames(scorer, profile, astronaut):
    black = [np.zeros_like(frame) if 20 <= i < 23 else frame for i, frame in enumerate(astronaut)]

    verdict = scored(scorer, encode(black), profile)

    assert "black_frames" in verdict.failed, reasons(verdict)
    assert verdict.dimensions["black_frames"].value == pytest.approx(3 / 48)
    assert "3 of 48 frames black" in verdict.dimensions["black_frames"].reason


def test_a_flickering_clip_fails_flicker_alone(scorer, profile, astronaut):
    pulsing = [np.clip(frame * (1.1 if i % 2 else 0.9), 0, 255).astype(np.uint8) for i, frame in enumerate(astronaut)]

    steady, flickering = scored(scorer, encode(astronaut), profile), scored(scorer, encode(pulsing), profile)

    assert flickering.failed == ("temporal_flicker",), reasons(flickering)
    assert flickering.dimensions["temporal_flicker"].value > 20 * steady.dimensions["temporal_flicker"].value
    assert "brightness flickers" in flickering.dimensions["temporal_flicker"].reason


@pytest.mark.parametrize("noise", [0, 3], ids=["exact", "grain"])
def test_a_still_disguised_as_a_clip_fails_movement(scorer, profile, astronaut, noise):
    rng = np.random.default_rng(7)
    still = [np.clip(astronaut[0] + rng.normal(0, noise, astronaut[0].shape), 0, 255).astype(np.uint8)
             for _ in astronaut]

    verdict = scored(scorer, encode(still), profile)

    assert "movement" in verdict.failed, reasons(verdict)
    assert verdict.dimensions["movement"].value < 0.005
    assert "a still passed off as a clip" in verdict.dimensions["movement"].reason


def test_a_clip_whose_face_changes_halfway_fails_face_consistency(scorer, profile, astronaut, grace, photos):
    """The astronaut turns into Grace Hopper over 12 frames (no cut): the face drifts past
    dlib's 0.6 from the clip's first face, and from the reference photo's."""
    morphing = encode(crossfade(astronaut[:30], grace[:30], 12))

    alone = scored(scorer, morphing, profile)
    against_reference = scored(scorer, morphing, profile, reference=png(photos["astronaut"]))

    assert alone.failed == ("face_consistency",), reasons(alone)
    assert alone.dimensions["face_consistency"].value > 0.6
    assert "changes into another person" in alone.dimensions["face_consistency"].reason
    worst_at = float(alone.dimensions["face_consistency"].reason.split("worst of 8 sampled frames at ")[1][:4])
    assert 1.0 <= worst_at <= 2.0, "the farthest face is after the change"
    assert set(against_reference.failed) == {"identity", "face_consistency"}
    assert "not the reference photo's person" in against_reference.dimensions["identity"].reason


def test_a_clip_from_a_still_without_a_face_is_not_held_to_a_person(scorer, profile, photos):
    """Image-to-video from the coffee cup: the reference (its first frame) shows no face, so
    identity has no person to keep; it passes and says why, where a still would fail."""
    cup = drift(photos["coffee"], 2 * FPS)

    verdict = scored(scorer, encode(cup), profile, reference=png(photos["coffee"]))

    assert verdict.passed, reasons(verdict)
    # Not measured, and said so; never a pass on a value of 0 (nor counted against the clip).
    identity, consistency = verdict.dimensions["identity"], verdict.dimensions["face_consistency"]
    assert (identity.value, identity.passed, consistency.value, consistency.passed) == (None, False, None, False)
    assert "identity not measured" in identity.reason
    assert "the reference photo shows no single face" in identity.reason
    assert "face_consistency not measured" in consistency.reason
    assert "no single face in the sampled frames" in consistency.reason


def test_a_clip_that_cuts_to_another_person_says_both(scorer, profile, astronaut, grace):
    verdict = scored(scorer, encode(astronaut[:24] + grace[24:]), profile)
    assert verdict.failed == ("face_consistency",) or set(verdict.failed) == {"face_consistency", "scene_cuts"}
    assert verdict.dimensions["face_consistency"].value > 0.6


def test_a_clip_shorter_than_asked_fails_its_container_check_and_is_never_decoded(scorer, profile, astronaut,
                                                                                  monkeypatch):
    def no_decoding(data):
        raise AssertionError("a clip that failed its container check was decoded")

    monkeypatch.setattr(clip_reading, "_decoded", no_decoding)
    verdict = scored(scorer, encode(astronaut[:24]), profile)

    assert verdict.failed == ("duration",)
    assert verdict.dimensions["duration"].value == pytest.approx(0.5)
    assert "1.00 s of the 2 s asked" in verdict.dimensions["duration"].reason
    assert "shorter than asked" in verdict.dimensions["duration"].reason
    later = set(verdict.dimensions) - {"container", "duration", "frame_rate", "clip_aspect", "resolution"}
    assert set(verdict.not_measured) == later
    for name in later:
        assert verdict.dimensions[name].reason == f"{name} unmeasured: rejected at the container check by duration"


def test_a_clip_cut_halfway_is_damaged_not_short(scorer, profile, astronaut, monkeypatch):
    """Its index still declares every frame, fewer are in the file: the container check fails
    because the file does not decode as it declares, and its length is not judged."""
    def no_decoding(data):
        raise AssertionError("a clip that failed its container check was decoded")

    monkeypatch.setattr(clip_reading, "_decoded", no_decoding)
    verdict = scored(scorer, cut_between_frames(encode(astronaut)), profile)

    assert verdict.failed == ("container",), reasons(verdict)
    reason = verdict.dimensions["container"].reason
    assert "damaged" in reason and "declares 48 frames, 24 are in the file" in reason and "decode" in reason
    assert "MP4" in reason
    duration = verdict.dimensions["duration"]
    assert (duration.value, duration.passed) == (None, False) and "short" not in duration.reason


def test_a_clip_s_container_is_named_as_its_file_is_known(scorer, profile, astronaut):
    verdict = scored(scorer, encode(astronaut), profile)
    assert "h264 in MP4, 48 frames" in verdict.dimensions["container"].reason
    assert "mov" not in verdict.dimensions["container"].reason


def test_a_clip_of_another_shape_or_rate_fails_its_container_check(scorer, profile, photos):
    wide = encode(drift(photos["astronaut"], 2 * FPS, size=(640, 480)))
    slow = encode(drift(photos["astronaut"], 2 * 12)[: 2 * 12], fps=12)

    wrong_shape, wrong_rate = scored(scorer, wide, profile), scored(scorer, slow, profile)

    assert wrong_shape.failed == ("clip_aspect",), reasons(wrong_shape)
    assert "640x480 against 480x480 asked" in wrong_shape.dimensions["clip_aspect"].reason
    assert wrong_rate.failed == ("frame_rate",), reasons(wrong_rate)
    assert "12 fps against 24 asked" in wrong_rate.dimensions["frame_rate"].reason


def test_corrupt_files_fail_with_the_decoders_word(scorer, profile, astronaut, photos):
    clip = encode(astronaut)
    garbage = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40
    damaged = clip[:3000] + bytes(b ^ 0xFF for b in clip[3000:9000]) + clip[9000:]

    unreadable, undecodable, still = (scored(scorer, data, profile) for data in (garbage, damaged, png(photos["coffee"])))

    assert "container" in unreadable.failed and "not a readable clip" in unreadable.dimensions["container"].reason
    assert "frozen" in unreadable.not_measured
    assert "frozen" in undecodable.failed, reasons(undecodable)
    assert "does not decode" in undecodable.dimensions["frozen"].reason
    assert still.failed[0] == "container" and "png" in still.dimensions["container"].reason


def test_one_flagged_frame_flags_the_clip(profile, photos):
    """A deployment that moderates FACE_FEMALE (as tests/scorer/test_moderation.py does): the
    astronaut's face in a third of a clip of the coffee cup flags the clip; the cup alone not."""
    cup = drift(photos["coffee"], 2 * FPS, step=1.5)
    visited = crossfade(crossfade(cup[:16], drift(photos["astronaut"], 32), 6)[:32], cup[16:], 6)
    with Scorer(Equipment(device=CPU, moderated_classes=frozenset({"FACE_FEMALE"}), load_entry_points=False)) as strict:
        flagged, clean = (scored(strict, encode(frames), profile) for frames in (visited, cup))

    assert "nsfw" in flagged.failed and "FACE_FEMALE" in flagged.dimensions["nsfw"].reason
    assert "worst of 8 sampled frames at " in flagged.dimensions["nsfw"].reason
    assert clean.dimensions["nsfw"].passed


def test_sampled_frames_are_few_and_small_whatever_the_clip(photos):
    long_clip = encode(drift(photos["astronaut"], 6 * FPS, size=(1280, 720), step=1.0))
    reading = ClipReading(0, long_clip, context=ScoringContext(device=CPU, video_sampling=VideoSampling(frames=8, side=640)))

    sampled = reading.sampled()

    assert reading.info.frames == 6 * FPS and reading.sequence.frames == 6 * FPS
    assert sampled is not None and tuple(sampled.planes.shape) == (8, 360, 640, 4)


def test_tiers_and_sampling_give_the_verdicts_of_measuring_every_frame(scorer, profile, astronaut):
    every_frame = VideoSampling(frames=None, side=None)
    clips = [encode(astronaut), encode([np.clip(f * (1.1 if i % 2 else 0.9), 0, 255).astype(np.uint8)
                                        for i, f in enumerate(astronaut)]), encode(astronaut[:30])]
    with Scorer(Equipment(device=CPU, video_sampling=every_frame, load_entry_points=False)) as thorough:
        full = thorough.score(clips, Scoring(profile=profile, requested_clip=asked()))
    tiered = scorer.score(clips, Scoring(profile=profile, requested_clip=asked(), tiered=True))

    assert [v.passed for v in full] == [v.passed for v in tiered] == [True, False, False]
    assert [set(t.failed) <= set(f.failed) for t, f in zip(tiered, full, strict=True)] == [True] * 3
    assert full[0].dimensions["sharpness"].value != pytest.approx(tiered[0].dimensions["sharpness"].value, abs=1e-6)
