"""banding: a posterised sky fails, the smooth one it came from and real photos pass."""

import numpy as np
import pytest

from services.scorer.profiles import profile_of_dimensions
from tests.scorer.conftest import PHOTO_NAMES, png, rgb_photo

BANDING = profile_of_dimensions(("banding",))


def sky(levels: int | None = None) -> np.ndarray:
    """A vertical gradient of 160 luma levels with faint grain; posterised to `levels`."""
    ramp = np.tile(np.linspace(40, 200, 512)[:, None], (1, 512))
    grainy = ramp + np.random.default_rng(0).normal(0, 0.8, ramp.shape)
    if levels is not None:
        step = 160 / levels
        grainy = np.round(ramp / step) * step
    grey = np.clip(grainy, 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)


def test_posterised_gradient_fails_and_the_smooth_one_passes(scorer):
    smooth, posterised = scorer.score([png(sky()), png(sky(levels=12))], BANDING)
    assert smooth.passed and smooth.dimensions["banding"].value < 0.05
    assert posterised.failed == ("banding",)
    assert posterised.dimensions["banding"].value > 0.9
    assert "posterised" in posterised.dimensions["banding"].reason


@pytest.mark.parametrize("name", [*PHOTO_NAMES, "moon"])
def test_photographs_pass(scorer, name):
    """The moon is a nearest-neighbour upscale: its doubled pixels are not plateaus."""
    [verdict] = scorer.score([png(rgb_photo(name))], BANDING)
    assert verdict.dimensions["banding"].value < 0.05
