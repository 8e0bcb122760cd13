"""What judging a dimension yields. `Dimension`, `Bounds` and the registry that names them
are the shared vocabulary (`services.common.quality.dimensions`).

Profiles and rules may replace a dimension's default bounds; `judge` turns a measured value and the bounds in force into a `DimensionResult` with a
reason a person can read. A dimension that cannot be computed — no CLIP model, no
prompt — is judged `unavailable`: its value is None and it never counts as passed.

Ranking score of an image (`ranking_score`):

    score = Σ weight_d · log1p(headroom_d) / Σ weight_d      over measured dimensions
    headroom_d = distance from the value to the nearest bound, inside the bounds, / scale_d

with scale_d the dimension's `scale` (by default the size of its bound, or the half-width
of a range). Every dimension scores 0 at or beyond its bound and grows with quality; the
logarithm keeps one very large margin (a very sharp image) from drowning the rest.

`tiers` measures dimensions in the order of their tier; `lowest` and `highest` bound what a
dimension not yet measured can add to a ranking score (`Bounds.most_headroom`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.common.quality.dimensions import MISSING_REQUIREMENT_REASONS, Bounds, Dimension, readable

# A measured value; None where the dimension does not apply to the image (`not_measured`).
Measured = float | None


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class ImageVerdict:
    """Every result of one image; `failed` names those that keep it from shipping and
    `not_measured` those skipped. An image that neither passed nor failed has no verdict:
    measuring stopped before its last tier (`tiers`). Its `fingerprint` is its perceptual
    hash (`services.common.quality.fingerprints`), None for a video clip."""

    dimensions: dict[str, DimensionResult]
    passed: bool
    score: float
    failed: tuple[str, ...] = ()
    not_measured: tuple[str, ...] = ()
    fingerprint: str | None = None

    @property
    def judged(self) -> bool:
        return self.passed or bool(self.failed)


def judge(dimension: Dimension, value: float, *, bounds: Bounds) -> DimensionResult:
    passed = bounds.admits(value)
    threshold = bounds.nearest(value)
    return DimensionResult(value=value, threshold=threshold, passed=passed, reason=_reason(dimension, value, bounds=bounds))


def _reason(dimension: Dimension, value: float, *, bounds: Bounds) -> str:
    name = dimension.name
    if math.isnan(value):
        return f"{name} could not be measured ({dimension.unmeasurable_hint})"
    said = f"{name} {readable(value)}"
    if bounds.admits(value):
        return f"{said} meets the {bounds.describe()}"
    below = bounds.minimum is not None and value < bounds.minimum
    side = "below" if below else "above"
    limit = bounds.minimum if below else bounds.maximum
    assert limit is not None  # the value broke this side, so it is bounded
    bound = "minimum" if below else "maximum"
    return f"{said} is {side} the {bound} {readable(limit)} ({dimension.failure_hint})"


def judge_forbidden(dimension: Dimension, value: float, *, bounds: Bounds) -> DimensionResult:
    """A forbidden condition fails when the value falls inside `bounds`."""
    threshold = bounds.nearest(value)
    if math.isnan(value):
        reason = f"{dimension.name} could not be measured ({dimension.unmeasurable_hint})"
        return DimensionResult(value=value, threshold=threshold, passed=False, reason=reason)
    inside = bounds.admits(value)
    verdict = "is inside" if inside else "stays outside"
    reason = f"{dimension.name} {readable(value)} {verdict} the forbidden {bounds.describe()}"
    return DimensionResult(value=value, threshold=threshold, passed=not inside, reason=reason)


def unavailable(dimension: Dimension, bounds: Bounds, *, missing: str) -> DimensionResult:
    reason = f"{dimension.name} unavailable: {MISSING_REQUIREMENT_REASONS.get(missing, missing)}"
    return DimensionResult(value=None, threshold=bounds.nearest(None), passed=False, reason=reason, available=False)


def waived(dimension: Dimension, bounds: Bounds, *, missing: str) -> DimensionResult:
    why = MISSING_REQUIREMENT_REASONS.get(missing, missing)
    reason = f"{dimension.name} passes unmeasured: {why}"
    return DimensionResult(value=None, threshold=bounds.nearest(None), passed=True, reason=reason)


def not_measured(dimension: Dimension, bounds: Bounds) -> DimensionResult:
    """A dimension that does not apply to this image (a clip without a face to keep, a file
    whose damage its container check already names): reported, never passed, and counted
    against the image only where required (as `unavailable`); the measure notes why."""
    return DimensionResult(value=None, threshold=bounds.nearest(None), passed=False, reason=f"{dimension.name} not measured", available=False)


def skipped(dimension: Dimension, bounds: Bounds, *, why: str) -> DimensionResult:
    return DimensionResult(value=None, threshold=bounds.nearest(None), passed=False, reason=f"{dimension.name} unmeasured: {why}", skipped=True)


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
    @property
    def passed(self) -> bool: ...

    @property
    def score(self) -> float: ...


def select_best(verdicts: Sequence[Ranked], k: int) -> list[int]:
    """Indices of at most `k` passing images (verdicts or published scores), best score
    first, ties to the lower index."""
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    passing = [index for index, verdict in enumerate(verdicts) if verdict.passed]
    return sorted(passing, key=lambda index: (-verdicts[index].score, index))[:k]


