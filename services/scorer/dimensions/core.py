"""What a dimension is, what judging one yields, and the registry that names them.

A `Dimension` measures one value per image over a batch and carries default `Bounds`
(a minimum, a maximum, or both: a range). Profiles and rules may replace the bounds;
`judge` turns a measured value and the bounds in force into a `DimensionResult` with a
reason a person can read. A dimension that cannot be computed — no CLIP model, no
prompt — is judged `unavailable`: its value is None and it never counts as passed.

Ranking score of an image (`ranking_score`):

    score = Σ weight_d · log1p(headroom_d) / Σ weight_d      over measured dimensions
    headroom_d = distance from the value to the nearest bound, inside the bounds, / scale_d

with scale_d the dimension's `scale` (by default the size of its bound, or the half-width
of a range). Every dimension scores 0 at or beyond its bound and grows with quality; the
logarithm keeps one very large margin (a very sharp image) from drowning the rest.

Each dimension declares its `tier`, by what it costs (`tiers` measures them in that order):
1 for the batched checks on luma and colour, 2 for face, person and moderation checks, 3
for anything expensive (a plugin's tier unless it says otherwise). `lowest` and `highest`
are the least and most its measure can give; they bound what a dimension not yet measured
can add to a ranking score (`Bounds.most_headroom`).
"""

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # measuring needs torch; declaring, judging and validating do not
    import torch

# What a measure reads. "pixels": it is called with the (B, 3, H, W) float tensor in
# [0, 1] (the form for plugins). "luma": it is called with the ImageBatch and reads only
# luminance, sizes or faces, so colour need not be decoded. "color": called with the
# ImageBatch and reads `batch.pixels`.
Reads = Literal["pixels", "luma", "color"]

TIERS = (1, 2, 3)

# Requirements a scorer either has or lacks for good (capabilities), and inputs a single
# scoring call may or may not carry; each maps to the reason given when it is missing.
# Only CAPABILITIES are checked before scoring (a job needing a missing one is refused);
# the face and moderation models are package dependencies, so a scorer without them says
# so image by image (unavailable, failed where required) rather than refusing jobs.
CAPABILITIES = frozenset({"clip_model"})
MISSING_REQUIREMENT_REASONS = {
    "clip_model": "no CLIP model is configured",
    "face_model": "dlib or the face-recognition-models package is not installed",
    "moderation_model": "onnxruntime or the nudenet package (its detector model) is not installed",
    "prompt": "no prompt was given",
    "reference": "no reference photo was given",
    "requested_size": "no size was requested",
}


@dataclass(frozen=True)
class Bounds:
    """Pass when minimum <= value <= maximum; either side may be open (None)."""

    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        for side in (self.minimum, self.maximum):
            if side is not None and not (isinstance(side, (int, float)) and math.isfinite(side)):
                raise ValueError(f"a bound must be a finite number, got {side!r}")
        if self.minimum is None and self.maximum is None:
            raise ValueError("bounds need a minimum, a maximum or both")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")

    def admits(self, value: float) -> bool:
        if math.isnan(value):
            return False
        above_min = self.minimum is None or value >= self.minimum
        return above_min and (self.maximum is None or value <= self.maximum)

    def merged(self, minimum: float | None, maximum: float | None) -> "Bounds":
        """These bounds with the given sides replaced; None keeps a side as it is."""
        return Bounds(
            self.minimum if minimum is None else minimum,
            self.maximum if maximum is None else maximum,
        )

    def nearest(self, value: float | None) -> float:
        """The bound that decides `value`: the one it breaks, else the closer one."""
        if self.minimum is None or self.maximum is None:
            return self.minimum if self.maximum is None else self.maximum
        if value is None or math.isnan(value):
            return self.minimum
        return self.minimum if abs(value - self.minimum) <= abs(self.maximum - value) else self.maximum

    def describe(self) -> str:
        if self.maximum is None:
            return f"minimum {readable(self.minimum)}"
        if self.minimum is None:
            return f"maximum {readable(self.maximum)}"
        return f"range {readable(self.minimum)} to {readable(self.maximum)}"

    def headroom(self, value: float, scale: float | None) -> float:
        """How far inside the bounds `value` lies, in units of `scale`; 0 outside."""
        gaps = [value - self.minimum] if self.minimum is not None else []
        gaps += [self.maximum - value] if self.maximum is not None else []
        unit = scale or self._natural_scale()
        return max(min(gaps), 0.0) / unit

    def most_headroom(self, lowest: float | None, highest: float | None, scale: float | None) -> float:
        """The most headroom any value from `lowest` to `highest` (None: unbounded) can
        have: the middle of a range, else the value farthest from the one bound; infinite
        when nothing limits it."""
        if self.minimum is not None and self.maximum is not None:
            best = (self.minimum + self.maximum) / 2
            best = best if lowest is None else max(best, lowest)
            best = best if highest is None else min(best, highest)
        elif self.minimum is not None:
            best = highest
        else:
            best = lowest
        return math.inf if best is None else self.headroom(best, scale)

    def _natural_scale(self) -> float:
        if self.minimum is not None and self.maximum is not None:
            return (self.maximum - self.minimum) / 2 or 1.0
        return abs(self.nearest(None)) or 1.0


@dataclass(frozen=True)
class DimensionResult:
    """One dimension's judgement of one image.

    `value` is None when the dimension was not measured: unavailable (`available` False,
    never passed), waived for want of an optional input (`available` True, passed, e.g.
    skin tone with no reference photo), or `skipped`: the image's verdict was reached
    without it (`tiers`), never passed. `threshold` is the bound that decides.
    """

    value: float | None
    threshold: float
    passed: bool
    reason: str
    available: bool = True
    skipped: bool = False


@dataclass(frozen=True)
class ImageVerdict:
    """Every result of one image; `failed` names those that keep it from shipping and
    `not_measured` those skipped. An image that neither passed nor failed has no verdict:
    measuring stopped before its last tier (`tiers`)."""

    dimensions: dict[str, DimensionResult]
    passed: bool
    score: float
    failed: tuple[str, ...] = ()
    not_measured: tuple[str, ...] = ()

    @property
    def judged(self) -> bool:
        return self.passed or bool(self.failed)


@dataclass(frozen=True)
class Dimension:
    """A batched measurement with default bounds.

    `measure` returns one value per image as a tensor of shape (B,); NaN means "could not
    be measured on this image" and fails with `unmeasurable_hint`. `requires` names
    capabilities or inputs without which the dimension is unavailable; `waived_without`
    names inputs without which it passes unmeasured. A clip is measured on each frame and
    `over_frames` makes one value of them: the mean, or the lowest or highest frame's.
    `tier` is when it is measured (1, 2 or 3, by cost); `lowest` and `highest`, where set,
    are what its measure can give at the extremes, and a value beyond them is an error.
    """

    name: str
    measure: Callable[..., "torch.Tensor"]
    bounds: Bounds
    failure_hint: str
    weight: float = 1.0
    reads: Reads = "pixels"
    requires: frozenset[str] = frozenset()
    waived_without: frozenset[str] = frozenset()
    scale: float | None = None
    unmeasurable_hint: str = "the value is not a number"
    over_frames: Literal["mean", "min", "max"] = "mean"
    tier: int = 3
    lowest: float | None = None
    highest: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a dimension needs a non-empty name")
        if not isinstance(self.bounds, Bounds):
            raise ValueError(f"dimension {self.name!r}: bounds must be a Bounds")
        if self.reads not in ("pixels", "luma", "color"):
            raise ValueError(f"dimension {self.name!r}: reads must be 'pixels', 'luma' or 'color'")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"dimension {self.name!r}: weight must be a number of at least 0")
        if self.over_frames not in ("mean", "min", "max"):
            raise ValueError(f"dimension {self.name!r}: over_frames must be 'mean', 'min' or 'max'")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"dimension {self.name!r}: scale must be a positive number")
        if self.tier not in TIERS:
            raise ValueError(f"dimension {self.name!r}: tier must be one of {TIERS}")
        for side in (self.lowest, self.highest):
            if side is not None and not (isinstance(side, (int, float)) and math.isfinite(side)):
                raise ValueError(f"dimension {self.name!r}: lowest and highest must be finite numbers")
        if self.lowest is not None and self.highest is not None and self.lowest > self.highest:
            raise ValueError(f"dimension {self.name!r}: lowest is above highest")


def readable(value: float) -> str:
    if value == 0:
        return "0"
    if not math.isfinite(value) or abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def judge(dimension: Dimension, value: float, bounds: Bounds) -> DimensionResult:
    passed = bounds.admits(value)
    threshold = bounds.nearest(value)
    return DimensionResult(value, threshold, passed, _reason(dimension, value, bounds, passed))


def _reason(dimension: Dimension, value: float, bounds: Bounds, passed: bool) -> str:
    name = dimension.name
    if math.isnan(value):
        return f"{name} could not be measured ({dimension.unmeasurable_hint})"
    said = f"{name} {readable(value)}"
    if passed:
        return f"{said} meets the {bounds.describe()}"
    below = bounds.minimum is not None and value < bounds.minimum
    side = "below" if below else "above"
    limit = bounds.minimum if below else bounds.maximum
    bound = "minimum" if below else "maximum"
    return f"{said} is {side} the {bound} {readable(limit)} ({dimension.failure_hint})"


def judge_forbidden(dimension: Dimension, value: float, bounds: Bounds) -> DimensionResult:
    """A forbidden condition fails when the value falls inside `bounds`."""
    threshold = bounds.nearest(value)
    if math.isnan(value):
        reason = f"{dimension.name} could not be measured ({dimension.unmeasurable_hint})"
        return DimensionResult(value, threshold, False, reason)
    inside = bounds.admits(value)
    verdict = "is inside" if inside else "stays outside"
    reason = f"{dimension.name} {readable(value)} {verdict} the forbidden {bounds.describe()}"
    return DimensionResult(value, threshold, not inside, reason)


def unavailable(dimension: Dimension, bounds: Bounds, missing: str) -> DimensionResult:
    reason = f"{dimension.name} unavailable: {MISSING_REQUIREMENT_REASONS.get(missing, missing)}"
    return DimensionResult(None, bounds.nearest(None), False, reason, available=False)


def waived(dimension: Dimension, bounds: Bounds, missing: str) -> DimensionResult:
    why = MISSING_REQUIREMENT_REASONS.get(missing, missing)
    reason = f"{dimension.name} passes unmeasured: {why}"
    return DimensionResult(None, bounds.nearest(None), True, reason)


def skipped(dimension: Dimension, bounds: Bounds, why: str) -> DimensionResult:
    return DimensionResult(None, bounds.nearest(None), False, f"{dimension.name} unmeasured: {why}", skipped=True)


def ranking_score(weighted: Sequence[tuple[Dimension, Bounds, float, DimensionResult]]) -> float:
    """Weighted mean of log1p(headroom) over the measured dimensions; 0 when none weigh."""
    return weighted_mean([
        (weight, math.log1p(bounds.headroom(result.value, dimension.scale)))
        for dimension, bounds, weight, result in weighted
        if result.value is not None and not math.isnan(result.value)
    ])


def weighted_mean(terms: Sequence[tuple[float, float]]) -> float:
    """Σ weight · term / Σ weight over (weight, term) pairs, in their order; 0 when none weigh."""
    total_weight = sum(weight for weight, _ in terms)
    if total_weight == 0:
        return 0.0
    return sum(weight * term for weight, term in terms) / total_weight


class Ranked(Protocol):
    passed: bool
    score: float


def select_best(verdicts: Sequence[Ranked], k: int) -> list[int]:
    """Indices of at most `k` passing images (verdicts or published scores), best score
    first, ties to the lower index."""
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    passing = [index for index, verdict in enumerate(verdicts) if verdict.passed]
    return sorted(passing, key=lambda index: (-verdicts[index].score, index))[:k]


@dataclass(frozen=True)
class MeasureIn:
    """A measure named by its module and attribute, imported on first use, so that the
    dimensions can be declared (and profiles and rules checked) without importing torch."""

    module: str
    attribute: str

    def __call__(self, source) -> "torch.Tensor":
        return _resolved(self.module, self.attribute)(source)


@cache
def _resolved(module: str, attribute: str) -> Callable[..., "torch.Tensor"]:
    return getattr(importlib.import_module(module), attribute)


DIMENSIONS: dict[str, Dimension] = {}


def register_dimension(dimension: Dimension) -> Dimension:
    """Add a dimension; registering an equal one again is a no-op, a different one an error."""
    if not isinstance(dimension, Dimension):
        raise ValueError(f"only a Dimension can be registered, got {type(dimension).__name__}")
    known = DIMENSIONS.get(dimension.name)
    if known is not None and known != dimension:
        raise ValueError(f"a different dimension named {dimension.name!r} is already registered")
    DIMENSIONS[dimension.name] = dimension
    return dimension


def registered(name: str) -> Dimension:
    try:
        return DIMENSIONS[name]
    except KeyError:
        raise ValueError(f"unknown dimension {name!r}; known: {sorted(DIMENSIONS)}") from None


def unknown_names(names: Sequence[str] | Mapping[str, object]) -> list[str]:
    return [name for name in names if name not in DIMENSIONS]
