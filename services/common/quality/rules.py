"""Quality rules a template or a job declares on top of a scoring profile.

`QualityRules` (JSON or YAML; every field optional):

    {
      "profile": "headshot",                       # the profile to start from
      "thresholds": {                              # bounds override the profile's, side by side
        "sharpness": {"min": 80},
        "exposure": {"min": 0.3, "max": 0.7, "weight": 2},
        "prompt_alignment": {"min": 0.25}          # a dimension the profile lacks is added
      },
      "require": ["prompt_alignment"],             # must be measurable and pass
      "forbid": [{"dimension": "faces", "min": 1}],# fail when faces >= 1
      "score_all": true                            # measure every dimension of every candidate
    }

* `thresholds[name]` has `min`, `max` (both: a range) and `weight` (ranking weight, ≥ 0).
  For a dimension of the profile, a side given replaces the profile's side and a side
  left out keeps it; a dimension the profile lacks is added with exactly the sides given
  (with its default bounds when none is given).
* `require`: a required dimension that the scorer cannot compute (prompt_alignment with
  no CLIP model) makes the job unscorable (the scorer's `Scorer.missing_capabilities`);
  one that cannot be computed for a call (no prompt) fails every image. Other dimensions that are not
  computable are reported unavailable and do not count against an image.
* `forbid`: an image fails when the dimension's value lies inside [min, max] (an open side
  is unbounded). A forbidden condition must be computable, like a required dimension.
* `score_all`: every dimension of every candidate is measured, for calibration, instead
  of tier by tier (the scorer's `tiers`); verdicts and the selection are the same either way.

Unknown dimension names, min above max, and unknown fields are rejected with a
ValueError (pydantic's ValidationError) that names the culprit.
"""

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.quality.dimensions import DIMENSIONS, unknown_names
from services.common.quality.plugins import discover_plugins

STRICT = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _check_order(minimum: float | None, maximum: float | None, *, what: str) -> None:
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"{what}: min {minimum} is above max {maximum}")


def check_known_dimensions(names: Iterable[str], where: str) -> None:
    discover_plugins()
    unknown = unknown_names(list(names))
    if unknown:
        raise ValueError(f"unknown dimension(s) {unknown} in {where}; known: {sorted(DIMENSIONS)}")


class Threshold(BaseModel):
    """Bounds and ranking weight for one dimension; any part may be left out."""

    model_config = STRICT

    # strict: a bound sent as a string is refused, not read as a number
    min: float | None = Field(default=None, strict=True)
    max: float | None = Field(default=None, strict=True)
    weight: float | None = Field(default=None, ge=0, strict=True)

    @model_validator(mode="after")
    def _ordered(self) -> "Threshold":
        _check_order(self.min, self.max, what="threshold")
        return self


class ForbiddenCondition(BaseModel):
    """Fail an image when `dimension`'s value lies within [min, max]."""

    model_config = STRICT

    dimension: str
    min: float | None = Field(default=None, strict=True)
    max: float | None = Field(default=None, strict=True)

    @model_validator(mode="after")
    def _meaningful(self) -> "ForbiddenCondition":
        if self.min is None and self.max is None:
            raise ValueError(f"forbidden condition on {self.dimension!r} needs a min, a max or both")
        _check_order(self.min, self.max, what=f"forbidden condition on {self.dimension!r}")
        check_known_dimensions([self.dimension], "forbid")
        return self


class QualityRules(BaseModel):
    """Custom rules of a template or job; see the module docstring for the format."""

    model_config = STRICT

    profile: str | None = Field(default=None, min_length=1)
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    require: tuple[str, ...] = ()
    forbid: tuple[ForbiddenCondition, ...] = ()
    score_all: bool = Field(False, strict=True, description="measure every dimension of every candidate")

    @model_validator(mode="after")
    def _known_dimensions(self) -> "QualityRules":
        check_known_dimensions(self.thresholds, "thresholds")
        check_known_dimensions(self.require, "require")
        return self
