"""The built-in local provider: deterministic, labelled-defective PNG paintings."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from services.router.providers.local.painter import CandidateRange, LocalGenerator, PaintedCandidate


def _open(candidate: PaintedCandidate) -> Image.Image:
    image = Image.open(io.BytesIO(candidate.png))
    image.load()
    return image


def test_same_arguments_paint_byte_identical_pngs():
    first = LocalGenerator().paint(CandidateRange(prompt="a lighthouse at dusk", seed=42, count=6))
    second = LocalGenerator().paint(CandidateRange(prompt="a lighthouse at dusk", seed=42, count=6))
    assert first == second


def test_candidate_is_the_same_whatever_batch_it_is_painted_in():
    generator = LocalGenerator(width=128, height=96, defect_rate=0)
    whole = generator.paint(CandidateRange(prompt="a lighthouse at dusk", seed=7, count=6))
    tail = generator.paint(CandidateRange(prompt="a lighthouse at dusk", seed=7, count=2, start_index=4))
    assert [c.index for c in tail] == [4, 5]
    assert [c.png for c in tail] == [c.png for c in whole[4:]]


def test_clean_candidate_is_the_same_in_batches_with_defects():
    generator = LocalGenerator(width=64, height=64, defect_rate=0.5)
    whole = generator.paint(CandidateRange(prompt="harbour", seed=3, count=8))
    singles = [generator.paint(CandidateRange(prompt="harbour", seed=3, count=1, start_index=i))[0] for i in range(8)]
    clean_in_both = [i for i in range(8) if whole[i].defect is None and singles[i].defect is None]
    assert clean_in_both
    for i in clean_in_both:
        assert whole[i].png == singles[i].png


def test_prompt_and_seed_change_the_painting():
    generator = LocalGenerator(width=64, height=64, defect_rate=0)
    base = generator.paint(CandidateRange(prompt="a red fox", seed=1, count=1))[0].png
    assert generator.paint(CandidateRange(prompt="a red fox.", seed=1, count=1))[0].png != base
    assert generator.paint(CandidateRange(prompt="a red fox", seed=2, count=1))[0].png != base


def test_candidates_of_one_batch_differ():
    candidates = LocalGenerator(width=64, height=64, defect_rate=0).paint(CandidateRange(prompt="x", seed=5, count=5))
    assert len({c.png for c in candidates}) == 5


@pytest.mark.parametrize(
    ("count", "defect_rate"), [(0, 0.25), (1, 0.5), (4, 0.25), (8, 0.25), (10, 0.3), (7, 0.99)]
)
def test_exactly_floor_of_count_times_rate_are_defective(count, defect_rate):
    generator = LocalGenerator(width=32, height=32, defect_rate=defect_rate)
    for seed in range(3):
        candidates = generator.paint(CandidateRange(prompt="defects", seed=seed, count=count, start_index=seed))
        defective = [c for c in candidates if c.defect is not None]
        assert len(candidates) == count
        assert len(defective) == math.floor(count * defect_rate)
        assert {c.defect for c in defective} <= {"blur", "blank"}


def test_defect_positions_depend_on_seed():
    generator = LocalGenerator(width=16, height=16, defect_rate=0.5)
    layouts = {
        tuple(c.defect for c in generator.paint(CandidateRange(prompt="layout", seed=seed, count=8)))
        for seed in range(6)
    }
    assert len(layouts) > 1


def test_both_defect_kinds_occur():
    generator = LocalGenerator(width=16, height=16, defect_rate=0.5)
    kinds = {c.defect for c in generator.paint(CandidateRange(prompt="kinds", seed=11, count=8))}
    assert kinds == {None, "blur", "blank"}


def test_pngs_open_at_the_requested_size():
    candidates = LocalGenerator(width=200, height=120).paint(CandidateRange(prompt="size", seed=9, count=4, start_index=3))
    assert [c.index for c in candidates] == [3, 4, 5, 6]
    for candidate in candidates:
        image = _open(candidate)
        assert image.format == "PNG"
        assert image.size == (200, 120)
        assert image.mode == "RGB"


def test_blank_defect_is_one_uniform_colour():
    candidates = LocalGenerator(width=48, height=48, defect_rate=0.5).paint(CandidateRange(prompt="b", seed=1, count=12))
    blanks = [c for c in candidates if c.defect == "blank"]
    assert blanks
    for blank in blanks:
        pixels = np.asarray(_open(blank)).reshape(-1, 3)
        assert (pixels == pixels[0]).all()


def test_clean_paintings_have_moderate_exposure():
    generator = LocalGenerator(width=128, height=128, defect_rate=0)
    for candidate in generator.paint(CandidateRange(prompt="exposure", seed=4, count=8)):
        luma = np.asarray(_open(candidate).convert("L")) / 255
        assert 0.3 <= luma.mean() <= 0.7
        assert (luma > 0.98).mean() < 0.05
        assert (luma < 0.02).mean() < 0.05


def test_negative_seed_is_accepted_and_deterministic():
    generator = LocalGenerator(width=32, height=32)
    assert generator.paint(CandidateRange(prompt="n", seed=-5, count=2)) == generator.paint(CandidateRange(prompt="n", seed=-5, count=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 15}, "width"),
        ({"width": 4097}, "width"),
        ({"height": 8}, "height"),
        ({"height": 512.0}, "height"),
        ({"defect_rate": 1.0}, "defect_rate"),
        ({"defect_rate": -0.1}, "defect_rate"),
        ({"defect_rate": float("nan")}, "defect_rate"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalGenerator(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count"),
        ({"count": 2.0}, "count"),
        ({"start_index": -1}, "start_index"),
        ({"seed": "1"}, "seed"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_a_batch_rejects_bad_arguments(kwargs, message):
    arguments = {"prompt": "p", "seed": 1, "count": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        LocalGenerator(width=16, height=16).paint(CandidateRange(**arguments))
