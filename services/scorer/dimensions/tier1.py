"""Tier 1: measurements every image gets, all from one luminance tensor.

Luma is on the 0..255 scale. Two shared computations feed six dimensions, each done once
per batch: a 256-bin histogram (exposure, blank, clipping: exact moments in float64) and
the horizontal and vertical second differences (sharpness and noise share them). Noise
and blockiness are calibrated on images of 256 pixels a side or more; on thumbnails a few
edges weigh enough to read as noise or blocks.

* sharpness — variance of the 4-neighbour Laplacian (interior pixels).
* noise — Immerkær's estimate of the standard deviation of Gaussian noise, in luma
  levels: sqrt(π/2) / (6 (W−2)(H−2)) · Σ |I ∗ N|, N = [1 −2 1; −2 4 −2; 1 −2 1]
  (J. Immerkær, "Fast noise variance estimation", CVIU 64(2), 1996). Dense fine texture
  (grass, gravel) reads as noise too.
* blockiness — JPEG-like 8×8 blocks: mean absolute step across block boundaries (between
  pixel 8k−1 and 8k, both axes) over the mean step in the middle of blocks (between 8k+3
  and 8k+4), each plus one level so flat images read 1. Comparing with the block middle,
  a whole-period phase of the grid, keeps 2- and 4-pixel patterns from reading as blocks;
  steps are capped at 16 levels, since a larger step is a content edge, not a block seam,
  and a few edges that happen to lie on seams would otherwise decide small images.
* exposure — mean luma in [0, 1].
* clipping — share of pixels with luma at most 5 (crushed) or at least 250 (blown).
* blank — standard deviation of luma in [0, 1]: 0 for uniform and black frames.
* banding — posterised gradients in smooth regions: of the gentle steps between
  neighbours (1 to 24 luma levels, along either axis), the share that are steps of 2 or
  more with no change for two pixels on either side: false contours between flat
  plateaus (two, so that a nearest-neighbour upscale's doubled pixels are not plateaus). A smooth
  8-bit gradient changes by single levels and grain keeps its neighbours moving; a
  posterised one only jumps between plateaus. Flat images read 0.
* size, aspect — how far the image is from the requested size: the larger relative error
  of width and height, and |ln(actual aspect / requested aspect)|; waived when no size is
  requested.
"""

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch

from services.scorer.dimensions.batch import ImageBatch

LEVELS = 256
CRUSHED_LEVEL = 5
BLOWN_LEVEL = 250
BLOCK = 8
# The block step ratio adds one luma level top and bottom so flat regions read as 1.
BLOCK_STEP_FLOOR = 1.0
BLOCK_STEP_CAP = 16.0
IMMERKAER_FACTOR = math.sqrt(math.pi / 2) / 6


def luma_histogram(batch: ImageBatch) -> torch.Tensor:
    """(B, 256) float64 counts of each luma level."""
    levels = batch.luma_u8.reshape(batch.size, -1)
    if batch.size == 1:
        return torch.bincount(levels[0], minlength=LEVELS)[None].double()
    # One count over the whole batch: each image's levels shifted into its own 256 bins.
    offsets = torch.arange(batch.size, device=levels.device, dtype=torch.int32)[:, None] * LEVELS
    counts = torch.bincount((levels.int() + offsets).reshape(-1), minlength=batch.size * LEVELS)
    return counts.view(batch.size, LEVELS).double()


def histogram_moments(batch: ImageBatch) -> dict[str, torch.Tensor]:
    histogram = batch.memo("luma_histogram", luma_histogram)
    levels = torch.arange(LEVELS, device=histogram.device, dtype=torch.float64)
    count = histogram.sum(dim=1)
    mean = (histogram @ levels) / count
    variance = ((histogram @ levels.square()) / count - mean.square()).clamp_(min=0)
    clipped = histogram[:, : CRUSHED_LEVEL + 1].sum(dim=1) + histogram[:, BLOWN_LEVEL:].sum(dim=1)
    return {"mean": mean, "std": variance.sqrt(), "clipped": clipped / count}


def second_differences(batch: ImageBatch) -> dict[str, torch.Tensor]:
    """Laplacian variance and Immerkær noise sigma, sharing the horizontal differences."""
    luma = batch.luma
    if batch.height < 3 or batch.width < 3:
        zeros = luma.new_zeros(batch.size)
        return {"laplacian_variance": zeros, "noise_sigma": zeros}
    across = torch.add(luma[:, :, 2:], luma[:, :, :-2]).sub_(luma[:, :, 1:-1], alpha=2)
    noise = torch.add(across[:, 2:], across[:, :-2]).sub_(across[:, 1:-1], alpha=2)
    laplacian = torch.add(luma[:, 2:, 1:-1], luma[:, :-2, 1:-1]).sub_(luma[:, 1:-1, 1:-1], alpha=2)
    laplacian = laplacian.add_(across[:, 1:-1]).view(batch.size, -1)
    count = laplacian.shape[1]
    mean = laplacian.sum(dim=1) / count
    mean_square = torch.linalg.vector_norm(laplacian, dim=1).square() / count
    sigma = noise.abs_().view(batch.size, -1).sum(dim=1) * (IMMERKAER_FACTOR / count)
    return {"laplacian_variance": (mean_square - mean.square()).clamp_(min=0), "noise_sigma": sigma}


def _step_sums(luma: torch.Tensor, axis: int, *, before: int) -> tuple[torch.Tensor, int]:
    """Sum of |luma[k] − luma[k−1]| over k ≡ before+1 (mod 8) along `axis`, and its count."""
    length = luma.shape[axis]
    after = luma.narrow(axis, before + 1, length - before - 1)[_every_eighth(axis)]
    first = luma.narrow(axis, before, length - before - 1)[_every_eighth(axis)]
    steps = after.sub(first).abs_().clamp_(max=BLOCK_STEP_CAP)
    return steps.sum(dim=(1, 2)), steps[0].numel()


def _every_eighth(axis: int) -> tuple[slice, ...]:
    return (slice(None),) * axis + (slice(None, None, BLOCK),)


def block_step_ratio(batch: ImageBatch) -> torch.Tensor:
    luma = batch.luma
    boundary = middle = luma.new_zeros(batch.size)
    boundary_count = middle_count = 0
    for axis in (1, 2):
        if luma.shape[axis] < 2 * BLOCK:
            continue
        boundary_sum, count = _step_sums(luma, axis, before=BLOCK - 1)
        boundary, boundary_count = boundary + boundary_sum, boundary_count + count
        middle_sum, count = _step_sums(luma, axis, before=BLOCK // 2 - 1)
        middle, middle_count = middle + middle_sum, middle_count + count
    if boundary_count == 0:
        return luma.new_ones(batch.size)
    return (boundary / boundary_count + BLOCK_STEP_FLOOR) / (middle / middle_count + BLOCK_STEP_FLOOR)


def _moment(name: str, scale: float = 1.0) -> Callable[[ImageBatch], torch.Tensor]:
    def measure(batch: ImageBatch) -> torch.Tensor:
        moments: dict[str, torch.Tensor] = batch.memo("histogram_moments", histogram_moments)
        return moments[name] / scale

    return measure


def _second_difference(name: str) -> Callable[[ImageBatch], torch.Tensor]:
    def measure(batch: ImageBatch) -> torch.Tensor:
        differences: dict[str, torch.Tensor] = batch.memo("second_differences", second_differences)
        return differences[name]

    return measure


BANDING_STEP = (2, 24)


def banding_share(batch: ImageBatch) -> torch.Tensor:
    luma = batch.luma_u8
    if luma.device.type == "cpu":
        counts = torch.tensor([banding_counts_cpu(image.numpy()) for image in luma], dtype=torch.int64)
        contours, gentle = counts.view(-1, 2).unbind(1)
    else:
        contours, gentle = banding_counts(luma)
    return contours.double() / gentle.clamp(min=1).double()


def banding_counts(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) false contours and (B,) gentle steps of (B, H, W) uint8 luma, with tensor
    operations (on any device). In 8 bits throughout: a step between neighbours is the
    larger level minus the smaller, exact, and each mask is a byte a pixel."""
    contours = gentle = luma.new_zeros(luma.shape[0], dtype=torch.int64)
    for axis in (1, 2):
        length = luma.shape[axis]
        if length < 6:
            continue
        after, before = luma.narrow(axis, 1, length - 1), luma.narrow(axis, 0, length - 1)
        steps = torch.maximum(after, before).sub_(torch.minimum(after, before))
        flat, inner = steps == 0, length - 5
        step = steps.narrow(axis, 2, inner)
        flat_around = flat.narrow(axis, 0, inner) & flat.narrow(axis, 1, inner)
        flat_around &= flat.narrow(axis, 3, inner)
        flat_around &= flat.narrow(axis, 4, inner)
        gentle_step = (step != 0) & (step <= BANDING_STEP[1])
        contour = flat_around & gentle_step & (step >= BANDING_STEP[0])
        contours = contours + contour.sum(dim=(1, 2))
        gentle = gentle + gentle_step.sum(dim=(1, 2))
    return contours, gentle


def banding_counts_cpu(luma: np.ndarray) -> tuple[int, int]:
    """`banding_counts` of one (H, W) uint8 luma plane with OpenCV's vectorised byte
    operations: the same counts, about eight times faster than tensor operations on a CPU
    (11 ms against 1.4 ms a megapixel), which made banding half of Tier 1's cost."""
    contours = gentle = 0
    for axis in (0, 1):
        length = luma.shape[axis]
        if length < 6:
            continue
        steps = cv2.absdiff(_shifted(luma, axis, span=slice(1, length)), _shifted(luma, axis, span=slice(0, length - 1)))
        # OpenCV compares with a scalar; its stubs want an array there.
        flat, inner = cv2.compare(steps, 0, cv2.CMP_EQ), length - 5  # type: ignore[call-overload]
        step = _shifted(steps, axis, span=slice(2, 2 + inner))
        flat_around = cv2.bitwise_and(
            cv2.bitwise_and(_shifted(flat, axis, span=slice(0, inner)), _shifted(flat, axis, span=slice(1, 1 + inner))),
            cv2.bitwise_and(_shifted(flat, axis, span=slice(3, 3 + inner)), _shifted(flat, axis, span=slice(4, 4 + inner))))
        contour = cv2.bitwise_and(flat_around, cv2.inRange(step, BANDING_STEP[0], BANDING_STEP[1]))
        contours += cv2.countNonZero(contour)
        gentle += cv2.countNonZero(cv2.inRange(step, 1, BANDING_STEP[1]))
    return contours, gentle


def _shifted(plane: np.ndarray, axis: int, *, span: slice) -> np.ndarray:
    """The rows (axis 0) or the columns (axis 1) of `span`, a view."""
    return plane[span] if axis == 0 else plane[:, span]


def size_error(batch: ImageBatch) -> torch.Tensor:
    assert batch.context.requested_size is not None, "size is waived without a requested size"
    width, height = batch.context.requested_size
    error = max(abs(batch.width - width) / width, abs(batch.height - height) / height)
    return torch.full((batch.size,), error, dtype=torch.float64)


def aspect_error(batch: ImageBatch) -> torch.Tensor:
    assert batch.context.requested_size is not None, "aspect is waived without a requested size"
    width, height = batch.context.requested_size
    error = abs(math.log((batch.width / batch.height) / (width / height)))
    return torch.full((batch.size,), error, dtype=torch.float64)


# Sharpness and noise share one pass over the second differences, exposure, clipping and
# blank one histogram.
laplacian_variance = _second_difference("laplacian_variance")
noise_sigma = _second_difference("noise_sigma")
mean_luma = _moment("mean", 255.0)
clipped_share = _moment("clipped")
luma_std = _moment("std", 255.0)

# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {
    "sharpness": laplacian_variance,
    "frame_sharpness": laplacian_variance,
    "noise": noise_sigma,
    "blockiness": block_step_ratio,
    "exposure": mean_luma,
    "clipping": clipped_share,
    "blank": luma_std,
    "banding": banding_share,
    "size": size_error,
    "aspect": aspect_error,
}
