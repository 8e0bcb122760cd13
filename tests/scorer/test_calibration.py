"""The generic profile on scikit-image's photographs and on copies degraded one way each.

The photographs pass; each degradation fails the dimension made to catch it, and the
others it does not touch keep passing, so a failure is explained by the right reason.
"""

import numpy as np
import pytest

from services.common.quality.profiles import load_profile
from services.router.providers.local.painter import CandidateRange, LocalGenerator
from services.scorer.dimensions import Scoring
from tests.scorer.conftest import PHOTO_NAMES, blown_out, blurred, jpeg, noisy, png

DEGRADATIONS = {
    "blurred": lambda rgb: png(blurred(rgb, radius=5)),
    "jpeg quality 2": lambda rgb: jpeg(rgb, quality=2),
    "gaussian noise": lambda rgb: png(noisy(rgb, sigma=0.1)),
    "black": lambda rgb: png(np.zeros_like(rgb)),
    "blown out": lambda rgb: png(blown_out(rgb)),
}


@pytest.fixture(scope="module")
def generic():
    return load_profile("generic")


@pytest.fixture(scope="module")
def verdicts(scorer, photos, generic):
    """(photo, variant) -> verdict, all scored in one call."""
    keys, images = [], []
    for name, rgb in photos.items():
        for variant, make in {"original": png, "jpeg quality 75": lambda p: jpeg(p, 75), **DEGRADATIONS}.items():
            keys.append((name, variant))
            images.append(make(rgb))
    return dict(zip(keys, scorer.score(images, Scoring(profile=generic))))


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_photographs_pass_generic(verdicts, name):
    verdict = verdicts[(name, "original")]
    assert verdict.passed, verdict.failed
    assert verdict.failed == ()


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_ordinary_jpeg_passes_generic(verdicts, name):
    assert verdicts[(name, "jpeg quality 75")].passed


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_heavy_blur_fails_sharpness_only(verdicts, name):
    verdict = verdicts[(name, "blurred")]
    assert verdict.failed == ("sharpness",)
    sharpness = verdict.dimensions["sharpness"]
    assert sharpness.value < sharpness.threshold / 4
    assert "blurred" in sharpness.reason


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_jpeg_at_quality_2_fails_blockiness(verdicts, name):
    verdict = verdicts[(name, "jpeg quality 2")]
    assert "blockiness" in verdict.failed
    assert verdict.dimensions["blockiness"].value > 2.0
    assert verdicts[(name, "jpeg quality 75")].dimensions["blockiness"].value < 1.3


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_strong_gaussian_noise_fails_noise(verdicts, name):
    verdict = verdicts[(name, "gaussian noise")]
    assert verdict.failed == ("noise",)
    assert verdict.dimensions["noise"].value > 14
    assert verdicts[(name, "original")].dimensions["noise"].value < 6


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_black_frame_fails_blank(verdicts, name):
    verdict = verdicts[(name, "black")]
    assert verdict.dimensions["blank"].value == 0
    assert {"blank", "exposure", "sharpness"} <= set(verdict.failed)


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_blown_out_copy_fails_exposure_or_clipping(verdicts, name):
    verdict = verdicts[(name, "blown out")]
    assert {"exposure", "clipping"} & set(verdict.failed)
    assert verdict.dimensions["clipping"].value > 0.5


def test_degraded_copies_rank_below_their_originals(verdicts):
    for name in PHOTO_NAMES:
        original = verdicts[(name, "original")].score
        assert verdicts[(name, "blurred")].score < original
        assert verdicts[(name, "black")].score < original


def test_local_paintings_pass_generic_and_their_defects_fail(scorer, generic):
    painted = LocalGenerator(512, 512, defect_rate=0.5).paint(CandidateRange(prompt="calibration", seed=3, count=12))
    verdicts = scorer.score([c.png for c in painted], Scoring(profile=generic))
    for candidate, verdict in zip(painted, verdicts):
        if candidate.defect is None:
            assert verdict.passed, verdict.failed
        elif candidate.defect == "blur":
            assert "sharpness" in verdict.failed
        else:
            assert "blank" in verdict.failed
    assert {c.defect for c in painted} == {None, "blur", "blank"}
