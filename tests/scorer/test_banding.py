"""banding: a posterised sky fails, the smooth one it came from and real photos pass."""

import numpy as np
import pytest
import torch

from services.common.quality.profiles import profile_of_dimensions
from services.scorer.dimensions import Scoring
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
    smooth, posterised = scorer.score([png(sky()), png(sky(levels=12))], Scoring(profile=BANDING))
    assert smooth.passed and smooth.dimensions["banding"].value < 0.05
    assert posterised.failed == ("banding",)
    assert posterised.dimensions["banding"].value > 0.9
    assert "posterised" in posterised.dimensions["banding"].reason


@pytest.mark.parametrize("name", [*PHOTO_NAMES, "moon"])
def test_photographs_pass(scorer, name):
    """The moon is a nearest-neighbour upscale: its doubled pixels are not plateaus."""
    [verdict] = scorer.score([png(rgb_photo(name))], Scoring(profile=BANDING))
    assert verdict.dimensions["banding"].value < 0.05


def banding_as_written(luma: np.ndarray) -> float:
    """The docstring's banding in floats, one image: contours over gentle steps."""
    contours = gentle = 0
    for axis in (0, 1):
        if luma.shape[axis] < 6:
            continue
        steps = np.abs(np.diff(luma.astype(np.float64), axis=axis))
        window = [np.take(steps, range(start, steps.shape[axis] - 4 + start), axis=axis) for start in range(5)]
        step, flat = window[2], [w == 0 for w in window]
        contours += int(((step >= 2) & (step <= 24) & flat[0] & flat[1] & flat[3] & flat[4]).sum())
        gentle += int(((step >= 1) & (step <= 24)).sum())
    return contours / max(gentle, 1)


@pytest.mark.parametrize("name", [*PHOTO_NAMES, "moon", "text", "page"])
def test_banding_is_measured_as_written(scorer, name):
    """The 8-bit masks count exactly what the float formula counts, here on photographs, a
    posterised sky and a few edge cases (flat, tiny, narrower than the window)."""
    from services.scorer.dimensions.batch import decode_planes

    skies = [sky(), sky(levels=12), np.zeros((7, 40, 3), np.uint8), np.full((40, 5, 3), 9, np.uint8)]
    for image in [rgb_photo(name), *skies]:
        encoded = png(image)
        [verdict] = scorer.score([encoded], Scoring(profile=BANDING))
        luma = decode_planes(0, encoded, color=False)[..., 0]
        assert verdict.dimensions["banding"].value == pytest.approx(banding_as_written(luma), rel=1e-6)


@pytest.mark.parametrize("name", [*PHOTO_NAMES, "moon", "text", "page"])
def test_the_cpu_and_the_device_count_the_same_steps(name):
    """On a CPU banding is counted with OpenCV; on a device with tensor operations. Both
    count exactly the same contours and gentle steps, batched or not."""
    from services.scorer.dimensions.batch import decode_planes
    from services.scorer.dimensions.tier1 import banding_counts, banding_counts_cpu

    planes = [decode_planes(0, png(image), color=False)[..., 0] for image in
              [rgb_photo(name), sky(), sky(levels=12), np.zeros((7, 40, 3), np.uint8), np.full((40, 5, 3), 9, np.uint8)]]
    for luma in planes:
        contours, gentle = banding_counts(torch.from_numpy(np.ascontiguousarray(luma))[None])
        assert banding_counts_cpu(luma) == (int(contours[0]), int(gentle[0]))
    same = [luma for luma in planes if luma.shape == planes[0].shape]
    contours, gentle = banding_counts(torch.from_numpy(np.stack(same)))
    assert [banding_counts_cpu(luma) for luma in same] == list(zip(contours.tolist(), gentle.tolist()))
