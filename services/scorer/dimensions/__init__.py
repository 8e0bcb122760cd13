"""Quality dimensions: batched measurements over image tensors, each with a pass threshold.

A `Dimension` maps a batch of RGB images, shaped (B, 3, H, W) with float32 values in
[0, 1], to one value per image, and says whether the value must stay at or above
("min") or at or below ("max") its threshold. `DIMENSIONS` is the registry;
`score_images` decodes each image once, groups equal sizes into one tensor per size,
measures every requested dimension on each group and returns one `ImageVerdict` per
image, in input order. `select_best` ranks the images that passed.

Ranking score, per image:

    score = Σ weight_d · log1p(ratio_d) / Σ weight_d
    ratio_d = value_d / threshold_d        for "min" dimensions
    ratio_d = threshold_d / value_d        for "max" dimensions (value floored near 0)

so every dimension scores 0 at the worst value, log(2) ≈ 0.69 exactly at its threshold,
and grows with quality; the logarithm keeps one very large margin from drowning the rest.
"""

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ITU-R BT.601 luma weights, the ones Pillow uses for its "L" mode.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Calibrated on LocalGenerator paintings (16×16 to 1024×768): clean ones measure about
# 200 to 30,000, their Gaussian-blurred defects at most about 1.2; a factor of ten or
# more either side.
SHARPNESS_THRESHOLD = 20.0
# Clean paintings spread at least about 0.075; blank and black frames measure 0.
BLANK_THRESHOLD = 0.02
DEFAULT_DIMENSIONS = ("sharpness", "blank")


@dataclass(frozen=True)
class DimensionResult:
    value: float
    threshold: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class ImageVerdict:
    dimensions: dict[str, DimensionResult]
    passed: bool
    score: float


@dataclass(frozen=True)
class Dimension:
    name: str
    measure: Callable[[torch.Tensor], torch.Tensor]
    threshold: float
    direction: Literal["min", "max"]
    failure_hint: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a dimension needs a non-empty name")
        if self.direction not in ("min", "max"):
            raise ValueError(f"dimension {self.name!r}: direction must be 'min' or 'max'")
        # The ranking score divides by the threshold, so it has to be positive.
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"dimension {self.name!r}: threshold must be a positive number")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"dimension {self.name!r}: weight must be a number of at least 0")

    def judge(self, value: float) -> DimensionResult:
        passed = value >= self.threshold if self.direction == "min" else value <= self.threshold
        return DimensionResult(value, self.threshold, passed, self._reason(value, passed))

    def _reason(self, value: float, passed: bool) -> str:
        bound = "minimum" if self.direction == "min" else "maximum"
        said = f"{self.name} {_readable(value)}"
        if passed:
            return f"{said} meets the {bound} {_readable(self.threshold)}"
        side = "below" if self.direction == "min" else "above"
        if math.isnan(value):
            side = "not comparable with"
        return f"{said} is {side} the {bound} {_readable(self.threshold)} ({self.failure_hint})"

    def quality_ratio(self, value: float) -> float:
        if self.direction == "min":
            return max(value, 0.0) / self.threshold
        return self.threshold / max(value, self.threshold * 1e-6)


@dataclass(frozen=True, eq=False)
class SizeGroup:
    """Images of one size: `pixels[j]` is the input image at position `indices[j]`."""

    indices: tuple[int, ...]
    pixels: torch.Tensor


def _readable(value: float) -> str:
    if not math.isfinite(value) or value == 0 or abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def luminance(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) luma in [0, 1]."""
    weights = pixels.new_tensor(LUMA_WEIGHTS)
    return torch.einsum("bchw,c->bhw", pixels, weights).unsqueeze(1)


def laplacian_variance(pixels: torch.Tensor) -> torch.Tensor:
    """Variance of the 4-neighbour Laplacian of luma on the 0..255 scale, per image."""
    batch = pixels.shape[0]
    luma = luminance(pixels) * 255
    # Replicate padding keeps borders from reading as edges and handles tiny images.
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    # Images as channels of one depthwise conv: several times faster on CPU than a
    # single-channel conv over the batch dimension, and still one conv per batch.
    kernel = pixels.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    kernels = kernel.expand(batch, 1, 3, 3).contiguous()
    laplacian = F.conv2d(padded.view(1, batch, *padded.shape[2:]), kernels, groups=batch)
    return laplacian.view(batch, -1).var(dim=1, correction=0)


def luminance_spread(pixels: torch.Tensor) -> torch.Tensor:
    """Standard deviation of luma on the 0..1 scale, per image."""
    return luminance(pixels).flatten(start_dim=1).std(dim=1, correction=0)


DIMENSIONS: dict[str, Dimension] = {}


def register_dimension(dimension: Dimension) -> None:
    """Add a dimension; registering an equal one again is a no-op, a different one an error."""
    known = DIMENSIONS.get(dimension.name)
    if known is not None and known != dimension:
        raise ValueError(f"a different dimension named {dimension.name!r} is already registered")
    DIMENSIONS[dimension.name] = dimension


register_dimension(
    Dimension(
        name="sharpness",
        measure=laplacian_variance,
        threshold=SHARPNESS_THRESHOLD,
        direction="min",
        failure_hint="image looks blurred",
    )
)
register_dimension(
    Dimension(
        name="blank",
        measure=luminance_spread,
        threshold=BLANK_THRESHOLD,
        direction="min",
        failure_hint="image is blank or a uniform frame",
    )
)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def decode_batch(images: Sequence[bytes], device: torch.device) -> list[SizeGroup]:
    """Decode every image once and stack equal sizes into (B, 3, H, W) float32 in [0, 1].

    Groups come in order of first appearance, indices ascending within each group.
    """
    by_size: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for index, data in enumerate(images):
        array = _decode_rgb(index, data)
        by_size.setdefault(array.shape[:2], []).append((index, array))
    return [_stack_group(members, device) for members in by_size.values()]


def _decode_rgb(index: int, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, TypeError, Image.DecompressionBombError) as error:
        raise ValueError(f"image {index} could not be decoded: {error}") from error


def _stack_group(members: list[tuple[int, np.ndarray]], device: torch.device) -> SizeGroup:
    indices = tuple(index for index, _ in members)
    stacked = np.stack([array for _, array in members])
    # Move bytes, not floats: uint8 is a quarter of the transfer to an accelerator.
    pixels = torch.from_numpy(stacked).to(device).permute(0, 3, 1, 2).float().div_(255)
    return SizeGroup(indices=indices, pixels=pixels)


def score_images(
    images: Sequence[bytes],
    dimension_names: Sequence[str] = DEFAULT_DIMENSIONS,
    device: torch.device | None = None,
) -> list[ImageVerdict]:
    """Judge every image on every named dimension; verdicts come back in input order."""
    dimensions = _lookup(dimension_names)
    groups = decode_batch(images, device or pick_device())
    by_index: dict[int, ImageVerdict] = {}
    for group in groups:
        values = _measure_group(dimensions, group.pixels)
        for position, index in enumerate(group.indices):
            by_index[index] = _verdict(dimensions, [row[position] for row in values])
    return [by_index[index] for index in range(len(images))]


def _lookup(dimension_names: Sequence[str]) -> list[Dimension]:
    if isinstance(dimension_names, str) or not dimension_names:
        raise ValueError("dimension_names must be a non-empty sequence of dimension names")
    unknown = [name for name in dimension_names if name not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimensions {unknown}; known: {sorted(DIMENSIONS)}")
    return [DIMENSIONS[name] for name in dict.fromkeys(dimension_names)]


def _measure_group(dimensions: list[Dimension], pixels: torch.Tensor) -> list[list[float]]:
    """One row per dimension, one value per image; a single copy back to the host."""
    with torch.inference_mode():
        rows = torch.stack([dimension.measure(pixels).float() for dimension in dimensions])
    return rows.cpu().tolist()


def _verdict(dimensions: list[Dimension], values: list[float]) -> ImageVerdict:
    results = {d.name: d.judge(value) for d, value in zip(dimensions, values)}
    passed = all(result.passed for result in results.values())
    return ImageVerdict(dimensions=results, passed=passed, score=_score(dimensions, values))


def _score(dimensions: list[Dimension], values: list[float]) -> float:
    total_weight = sum(d.weight for d in dimensions)
    if total_weight == 0:
        return 0.0
    weighted = sum(d.weight * math.log1p(d.quality_ratio(v)) for d, v in zip(dimensions, values))
    return weighted / total_weight


def select_best(verdicts: Sequence[ImageVerdict], k: int) -> list[int]:
    """Indices of at most `k` passing images, best score first, ties to the lower index."""
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    passing = [index for index, verdict in enumerate(verdicts) if verdict.passed]
    return sorted(passing, key=lambda index: (-verdicts[index].score, index))[:k]
