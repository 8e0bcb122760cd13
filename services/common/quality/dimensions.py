"""What a quality dimension is, and the registry that names them: the vocabulary that
profiles and rules are written in, shared by ingest (which checks a job's profile and
rules at submission) and the scorer (which measures and judges with them).

A `Dimension` measures one value per image over a batch and carries default `Bounds`
(a minimum, a maximum, or both: a range). Profiles and rules may replace the bounds.
Each dimension declares its `tier`, by what it costs: 1 for the batched checks on luma
and colour, 2 for face, person and moderation checks, 3 for anything expensive (a
plugin's tier unless it says otherwise). `lowest` and `highest` are the least and most its
measure can give. Declaring needs no torch: a built-in dimension is declared without its
measure, which the scorer, the one service that measures, registers under its name
(`services.scorer.dimensions.measures`); a plugin's dimension carries its own. Judging
lives in the scorer (the scorer's `dimensions.core`).
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # measuring needs torch; declaring and validating do not
    import torch

# What a measure reads. "pixels": it is called with the (B, 3, H, W) float tensor in
# [0, 1] (the form for plugins). "luma": it is called with the ImageBatch and reads only
# luminance, sizes or faces, so colour need not be decoded. "color": called with the
# ImageBatch and reads `batch.pixels`. "container": a video clip's file as its header and
# packets describe it, nothing decoded; "sequence": a video clip's every frame in order, small
# (both are called with the clip's reading, and give a still nothing to measure).
Reads = Literal["pixels", "luma", "color", "container", "sequence"]
READS = ("pixels", "luma", "color", "container", "sequence")

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
    "reference": "no reference photo was given, nor a subject",
    "subject": "the job has no subject (a person or product of the tenant's photos)",
    "requested_size": "no size was requested",
    "requested_clip": "the job asks for no clip (no video block)",
    "requested_fps": "no frame rate was asked",
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
        minimum, maximum = self.minimum, self.maximum
        if minimum is None or maximum is None:
            return self.only_side()
        if value is None or math.isnan(value):
            return minimum
        return minimum if abs(value - minimum) <= abs(maximum - value) else maximum

    def only_side(self) -> float:
        """The one side of bounds open on the other (bounds always have a side: __post_init__)."""
        side = self.minimum if self.maximum is None else self.maximum if self.minimum is None else None
        if side is None:
            raise ValueError("these bounds have both sides")
        return side

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"range {readable(self.minimum)} to {readable(self.maximum)}"
        return f"{'minimum' if self.maximum is None else 'maximum'} {readable(self.only_side())}"

    def headroom(self, value: float, scale: float | None) -> float:
        """How far inside the bounds `value` lies, in units of `scale`; 0 outside."""
        gaps = [value - self.minimum] if self.minimum is not None else []
        gaps += [self.maximum - value] if self.maximum is not None else []
        unit = scale or self._natural_scale()
        return max(min(gaps), 0.0) / unit

    def most_headroom(self, lowest: float | None, highest: float | None, *, scale: float | None) -> float:
        """The most headroom any value from `lowest` to `highest` (None: unbounded) can
        have: the middle of a range, else the value farthest from the one bound; infinite
        when nothing limits it."""
        best: float | None
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


@dataclass(frozen=True, kw_only=True)
class Dimension:
    """A batched measurement with default bounds.

    `measure` returns one value per image as a tensor of shape (B,); NaN means "could not
    be measured on this image" and fails with `unmeasurable_hint`. It is None for a
    built-in dimension, whose measure the scorer registers under its name. `requires` names
    capabilities or inputs without which the dimension is unavailable; `waived_without`
    names inputs without which it passes unmeasured. A clip is measured on each frame and
    `over_frames` makes one value of them: the mean, or the lowest or highest frame's.
    `tier` is when it is measured (1, 2 or 3, by cost); `lowest` and `highest`, where set,
    are what its measure can give at the extremes, and a value beyond them is an error.
    """

    name: str
    measure: Callable[..., "torch.Tensor"] | None
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
        if self.reads not in READS:
            raise ValueError(f"dimension {self.name!r}: reads must be one of {READS}")
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
