"""Quality dimensions over real LocalGenerator paintings, on the CPU.

`score_images` scores the named dimensions with their default bounds; the batch and
registry tests exercise the Scorer's building blocks.
"""

import io

import pytest
import torch
from PIL import Image

from services.common.quality.profiles import profile_of_dimensions
from services.router.providers.local.painter import CandidateRange, LocalGenerator, PaintedCandidate
from services.scorer.dimensions import (
    DIMENSIONS,
    Bounds,
    Dimension,
    Equipment,
    ImageVerdict,
    Scorer,
    Scoring,
    ScoringContext,
    register_dimension,
    select_best,
)
from services.scorer.dimensions.batch import decode_planes, group_by_size, stack_batch
from services.scorer.dimensions.measures import measure_batch

CPU = torch.device("cpu")
SEEDS = range(5)


def score_images(images, dimension_names=("sharpness", "blank"), device=CPU) -> list[ImageVerdict]:
    with Scorer(Equipment(device=device, load_entry_points=False)) as scorer:
        return scorer.score(images, Scoring(profile=profile_of_dimensions(tuple(dimension_names))))


@pytest.fixture(scope="module")
def painted() -> list[PaintedCandidate]:
    generator = LocalGenerator(width=256, height=256, defect_rate=0.5)
    return [c for seed in SEEDS for c in generator.paint(CandidateRange(prompt=f"prompt {seed}", seed=seed, count=8))]


@pytest.fixture(scope="module")
def verdicts(painted) -> list[ImageVerdict]:
    return score_images([c.png for c in painted], device=CPU)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _verdicts_of(painted, verdicts, defect):
    return [v for c, v in zip(painted, verdicts) if c.defect == defect]


def test_every_clean_painting_passes_both_dimensions(painted, verdicts):
    clean = _verdicts_of(painted, verdicts, None)
    assert len(clean) == len(SEEDS) * 4
    for verdict in clean:
        assert verdict.passed, verdict.dimensions
        assert set(verdict.dimensions) == {"sharpness", "blank"}


def test_clean_paintings_pass_with_a_wide_margin(painted, verdicts):
    for verdict in _verdicts_of(painted, verdicts, None):
        sharpness = verdict.dimensions["sharpness"]
        assert sharpness.value >= 4 * sharpness.threshold
        assert verdict.dimensions["blank"].value >= 2 * verdict.dimensions["blank"].threshold


def test_every_blurred_painting_fails_sharpness(painted, verdicts):
    blurred = _verdicts_of(painted, verdicts, "blur")
    assert blurred
    for verdict in blurred:
        sharpness = verdict.dimensions["sharpness"]
        assert not sharpness.passed
        assert sharpness.value <= sharpness.threshold / 4
        assert "blurred" in sharpness.reason
        assert not verdict.passed


def test_every_blank_frame_fails_blank(painted, verdicts):
    blanks = _verdicts_of(painted, verdicts, "blank")
    assert blanks
    for verdict in blanks:
        assert not verdict.dimensions["blank"].passed
        assert not verdict.passed


def test_black_frame_fails_blank():
    black = _png(Image.new("RGB", (64, 48)))
    [verdict] = score_images([black], device=CPU)
    assert verdict.dimensions["blank"].value == 0
    assert not verdict.dimensions["blank"].passed
    assert not verdict.passed


def test_reasons_name_the_dimension_and_threshold(verdicts):
    for verdict in verdicts:
        for name, result in verdict.dimensions.items():
            assert name in result.reason
            assert format(result.threshold, "g") in result.reason
            assert ("meets the minimum" in result.reason) == result.passed


def test_failing_reason_carries_the_hint():
    [verdict] = score_images([_png(Image.new("RGB", (32, 32), (90, 90, 90)))], device=CPU)
    reason = verdict.dimensions["blank"].reason
    assert "below the minimum" in reason
    assert DIMENSIONS["blank"].failure_hint in reason


def test_verdict_passes_only_when_every_dimension_passes(verdicts):
    for verdict in verdicts:
        assert verdict.passed == all(r.passed for r in verdict.dimensions.values())


def test_select_best_returns_at_most_k_passing_indices_best_first(verdicts):
    best = select_best(verdicts, k=5)
    assert len(best) == 5
    assert all(verdicts[i].passed for i in best)
    scores = [verdicts[i].score for i in best]
    assert scores == sorted(scores, reverse=True)
    passing = [i for i, v in enumerate(verdicts) if v.passed]
    assert max(verdicts[i].score for i in passing) == scores[0]


def test_select_best_returns_fewer_when_fewer_pass(verdicts):
    passing = sum(v.passed for v in verdicts)
    assert sorted(select_best(verdicts, k=1000)) == [i for i, v in enumerate(verdicts) if v.passed]
    assert len(select_best(verdicts, k=1000)) == passing
    assert select_best(verdicts, k=0) == []


def test_select_best_breaks_ties_by_lower_index():
    tied = ImageVerdict(dimensions={}, passed=True, score=1.0)
    better = ImageVerdict(dimensions={}, passed=True, score=2.0)
    failed = ImageVerdict(dimensions={}, passed=False, score=9.0)
    assert select_best([tied, failed, tied, better, tied], k=3) == [3, 0, 2]


def test_select_best_rejects_negative_k():
    with pytest.raises(ValueError, match="k"):
        select_best([], k=-1)


def test_sharper_image_scores_higher():
    generator = LocalGenerator(width=128, height=128, defect_rate=0)
    clean = Image.open(io.BytesIO(generator.paint(CandidateRange(prompt="rank", seed=1, count=1))[0].png))
    softened = clean.resize((64, 64)).resize((128, 128), Image.Resampling.BILINEAR)
    sharp, soft = score_images([_png(clean), _png(softened)], device=CPU)
    assert sharp.score > soft.score


def test_undecodable_bytes_name_the_index(painted):
    images = [painted[0].png, painted[1].png, b"not an image at all"]
    with pytest.raises(ValueError, match="image 2"):
        score_images(images, device=CPU)


def test_truncated_png_names_the_index(painted):
    with pytest.raises(ValueError, match="image 0"):
        score_images([painted[0].png[:200]], device=CPU)


def test_mixed_sizes_come_back_in_input_order():
    wide = LocalGenerator(width=96, height=64, defect_rate=0).paint(CandidateRange(prompt="mix", seed=1, count=2))
    tall = LocalGenerator(width=64, height=96, defect_rate=0).paint(CandidateRange(prompt="mix", seed=1, count=2))
    black = _png(Image.new("RGB", (96, 64)))
    images = [wide[0].png, tall[0].png, black, tall[1].png, wide[1].png]
    mixed = score_images(images, device=CPU)
    one_by_one = [score_images([png], device=CPU)[0] for png in images]
    assert [v.passed for v in mixed] == [True, True, False, True, True]
    for together, alone in zip(mixed, one_by_one):
        for name, result in together.dimensions.items():
            assert result.value == pytest.approx(alone.dimensions[name].value, rel=1e-5)


def test_grouping_stacks_equal_sizes_and_keeps_indices():
    small, large = _png(Image.new("RGB", (20, 10), (10, 20, 30))), _png(Image.new("RGB", (30, 40)))
    decoded = [(i, decode_planes(i, data, color=True)) for i, data in enumerate([small, large, small, small])]
    groups = list(group_by_size(decoded, max_pixels=1 << 20, max_images=2))
    assert [[i for i, _ in group] for group in groups] == [[0, 2], [1], [3]]
    batch = stack_batch(groups[0], ScoringContext(device=CPU))
    assert batch.indices == (0, 2) and batch.planes.shape == (2, 10, 20, 4)
    assert batch.pixels.shape == (2, 3, 10, 20) and batch.pixels.dtype == torch.float32
    assert batch.pixels[0, :, 0, 0].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    assert batch.luma_u8[0, 0, 0] == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)


def test_a_batch_measures_like_its_images_one_by_one(painted):
    """The CUDA path's batches, run on the CPU, agree with the CPU path's single images."""
    dimensions = [DIMENSIONS[name] for name in ("sharpness", "noise", "blockiness", "exposure", "clipping", "blank")]
    images = [c.png for c in painted[:6]]
    decoded = [(i, decode_planes(i, data, color=False)) for i, data in enumerate(images)]
    context = ScoringContext(device=CPU)
    together = measure_batch(stack_batch(decoded, context), dimensions)
    for position, member in enumerate(decoded):
        alone = measure_batch(stack_batch([member], context), dimensions)
        for row, single in zip(together, alone):
            assert row[position] == pytest.approx(single[0], rel=1e-5, abs=1e-9)


def test_greyscale_and_alpha_images_decode_as_rgb():
    grey = _png(Image.new("L", (16, 16), 128))
    rgba = _png(Image.new("RGBA", (16, 16), (10, 20, 30, 0)))
    assert decode_planes(0, grey, color=True).shape == (16, 16, 4)
    assert decode_planes(1, rgba, color=True)[0, 0].tolist() == [10, 20, 30, 18]
    assert decode_planes(1, rgba, color=False).shape == (16, 16, 1)


def test_empty_input_gives_no_verdicts():
    assert score_images([], device=CPU) == []


def test_unknown_dimension_is_rejected():
    with pytest.raises(ValueError, match="unknown"):
        score_images([], dimension_names=["sharpness", "sparkle"], device=CPU)


def test_a_registered_dimension_is_scored():
    bright = Dimension(
        name="test-darkness",
        measure=lambda pixels: pixels.mean(dim=(1, 2, 3)),
        bounds=Bounds(maximum=0.5),
        failure_hint="image is too bright",
    )
    register_dimension(bright)
    try:
        register_dimension(bright)  # registering the same dimension again is harmless
        white = _png(Image.new("RGB", (8, 8), (255, 255, 255)))
        black = _png(Image.new("RGB", (8, 8)))
        too_bright, fine = score_images([white, black], ["test-darkness"], device=CPU)
    finally:
        DIMENSIONS.pop("test-darkness")
    assert not too_bright.passed
    reason = too_bright.dimensions["test-darkness"].reason
    assert "above the maximum 0.5 (image is too bright)" in reason
    assert fine.passed and "meets the maximum" in fine.dimensions["test-darkness"].reason


def test_a_different_dimension_under_a_taken_name_is_rejected():
    impostor = Dimension(name="blank", measure=DIMENSIONS["blank"].measure, bounds=Bounds(minimum=0.5), failure_hint="x", reads="luma")
    with pytest.raises(ValueError, match="already registered"):
        register_dimension(impostor)


@pytest.mark.parametrize(
    ("bounds", "reads", "weight"),
    [(Bounds(minimum=1.0), "everything", 1.0), (Bounds(minimum=1.0), "pixels", -1.0), ((0.0, 1.0), "pixels", 1.0)],
)
def test_invalid_dimension_is_rejected(bounds, reads, weight):
    with pytest.raises(ValueError):
        Dimension(name="bad", measure=DIMENSIONS["blank"].measure, bounds=bounds, failure_hint="hint", weight=weight, reads=reads)


@pytest.mark.parametrize(("minimum", "maximum"), [(None, None), (2.0, 1.0), (float("nan"), None), (None, float("inf"))])
def test_invalid_bounds_are_rejected(minimum, maximum):
    with pytest.raises(ValueError):
        Bounds(minimum, maximum)


def test_a_dimension_giving_the_wrong_number_of_values_is_reported():
    broken = Dimension(name="test-broken", measure=lambda pixels: torch.zeros(2), bounds=Bounds(minimum=0), failure_hint="hint")
    register_dimension(broken)
    try:
        with pytest.raises(ValueError, match="'test-broken' gave 2 values for a batch of 1"):
            score_images([_png(Image.new("RGB", (8, 8)))], ["test-broken"], device=CPU)
    finally:
        DIMENSIONS.pop("test-broken")
