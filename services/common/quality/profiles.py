"""Scoring profiles: which dimensions an image must pass, with what bounds and weights.

A profile is a YAML file in `profile_files/` beside this module (`generic`, `headshot`, …):

    name: product
    description: Product photos ...
    dimensions:                 # every dimension listed is measured and must pass
      sharpness: {min: 50, weight: 1.0}
      exposure: {min: 0.25, max: 0.9, weight: 0.5}
      blank: {}                 # the dimension's own default bounds and weight
    require: []                 # dimensions that must be computable (see QualityRules)
    forbid:
      - {dimension: faces, min: 1}

A dimension's bounds in a profile replace the dimension's defaults (`{}` states them, so
that rules change them side by side as they change any bounds a profile states).
`load_profile(name, rules)` reads one and applies a template's or job's `QualityRules`
on top (`rules.profile`, when set, picks the profile instead of `name`). A profile is
scored tier by tier unless the rules or the job's template ask for every dimension of
every candidate (`score_all`). A dimension that
cannot be computed here is reported unavailable and does not count against an image,
unless the profile or rules require it or a forbidden condition reads it.
"""

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from services.common.quality.dimensions import CAPABILITIES, DIMENSIONS, Bounds, Dimension, registered
from services.common.quality.rules import (
    STRICT,
    ForbiddenCondition,
    QualityRules,
    Threshold,
    check_known_dimensions,
)
from services.common.templates import load_catalogue

PROFILES_DIR = Path(__file__).with_name("profile_files")
PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

__all__ = [
    "Check",
    "ForbiddenRange",
    "Profile",
    "ProfileError",
    "QualityRules",
    "job_profile",
    "load_profile",
    "profile_names",
    "with_subject_checks",
]


class ProfileError(ValueError):
    """An unknown profile, an invalid profile file, or rules that contradict a profile."""


@dataclass(frozen=True)
class Check:
    """One dimension an image must pass: the bounds in force and its ranking weight."""

    dimension: str
    bounds: Bounds
    weight: float


@dataclass(frozen=True)
class ForbiddenRange:
    """An image fails when `dimension`'s value lies within `bounds`."""

    dimension: str
    bounds: Bounds

    @property
    def label(self) -> str:
        """The result's name in a verdict, e.g. 'forbid:faces>=1'."""
        low, high = self.bounds.minimum, self.bounds.maximum
        if high is None:
            return f"forbid:{self.dimension}>={low:g}"
        if low is None:
            return f"forbid:{self.dimension}<={high:g}"
        return f"forbid:{low:g}<={self.dimension}<={high:g}"


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: str
    description: str
    checks: tuple[Check, ...]
    required: frozenset[str] = frozenset()
    forbidden: tuple[ForbiddenRange, ...] = ()
    score_all: bool = False

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(check.dimension for check in self.checks)

    def must_compute(self) -> list[str]:
        """Dimensions that have to be measurable: the required ones and the forbidden ones."""
        names = [c.dimension for c in self.checks if c.dimension in self.required]
        return list(dict.fromkeys(names + [f.dimension for f in self.forbidden]))

    def missing_capabilities(self, capabilities: frozenset[str]) -> list[str]:
        """Dimensions the profile must compute that a scorer with `capabilities` cannot."""
        return [
            name for name in self.must_compute() if (registered(name).requires & CAPABILITIES) - capabilities
        ]


class ProfileSpec(BaseModel):
    """A profile file as written."""

    model_config = STRICT

    name: str
    description: str = ""
    dimensions: dict[str, Threshold] = Field(min_length=1)
    require: tuple[str, ...] = ()
    forbid: tuple[ForbiddenCondition, ...] = ()

    @model_validator(mode="after")
    def _known_dimensions(self) -> "ProfileSpec":
        check_known_dimensions(self.dimensions, "dimensions")
        check_known_dimensions(self.require, "require")
        return self


def profile_names(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_profile(name: str, rules: QualityRules | None = None, *, directory: Path = PROFILES_DIR) -> Profile:
    """The named profile (or `rules.profile`) with `rules` applied; ProfileError if unknown."""
    chosen = rules.profile if rules is not None and rules.profile else name
    return build_profile(read_profile_spec(chosen, directory), rules)


def template_profile(template: str) -> str:
    """The profile the template catalogue names for `template`, else the one named like it, else generic."""
    named = load_catalogue().templates.get(template)
    if named is not None and named.profile is not None:
        return named.profile
    return template if template in profile_names() else "generic"


def job_profile(template: str, profile: str | None = None, *, rules: dict[str, Any] | None = None) -> Profile:
    """The profile a job is scored with: the rules' profile, else the job's, else its
    template's (`template_profile`); measuring everything when the rules or the template
    ask to. ProfileError names what is wrong."""
    try:
        parsed = QualityRules.model_validate(rules) if rules is not None else None
    except ValidationError as error:
        raise ProfileError(f"invalid quality rules: {_first_problems(error)}") from None
    chosen = load_profile(profile or template_profile(template), parsed)
    named = load_catalogue().templates.get(template)
    return replace(chosen, score_all=True) if named is not None and named.score_all else chosen


def _first_problems(error: ValidationError, limit: int = 3) -> str:
    problems = [
        f"{'.'.join(str(part) for part in e['loc']) or 'rules'}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()[:limit]
    ]
    return "; ".join(problems)


@lru_cache(maxsize=64)
def read_profile_spec(name: str, directory: Path = PROFILES_DIR) -> ProfileSpec:
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name) or name not in profile_names(directory):
        raise ProfileError(f"unknown profile {name!r}; known: {profile_names(directory)}")
    path = directory / f"{name}.yaml"
    try:
        spec = ProfileSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError, OSError) as error:
        raise ProfileError(f"profile file {path} is invalid: {error}") from error
    if spec.name != name:
        raise ProfileError(f"profile file {path} names itself {spec.name!r}")
    return spec


def build_profile(spec: ProfileSpec, rules: QualityRules | None = None) -> Profile:
    rules = rules or QualityRules()
    stated = {name: _defaults_stated(DIMENSIONS[name], entry) for name, entry in spec.dimensions.items()}
    layers = [stated, rules.thresholds]
    names = list(dict.fromkeys([*spec.dimensions, *rules.thresholds, *spec.require, *rules.require]))
    try:
        checks = tuple(_check(DIMENSIONS[name], [layer[name] for layer in layers if name in layer]) for name in names)
        forbidden = tuple(
            ForbiddenRange(condition.dimension, Bounds(condition.min, condition.max))
            for condition in (*spec.forbid, *rules.forbid)
        )
    except ValueError as error:
        raise ProfileError(f"profile {spec.name!r} with these rules is contradictory: {error}") from error
    required = frozenset(spec.require) | frozenset(rules.require)
    return Profile(name=spec.name, description=spec.description, checks=checks, required=required, forbidden=forbidden, score_all=rules.score_all)


def _defaults_stated(dimension: Dimension, entry: Threshold) -> Threshold:
    """A profile's entry with the dimension's default bounds where it states none, so that
    each default is written once (in its declaration) and a profile still states it."""
    if entry.min is not None or entry.max is not None:
        return entry
    return entry.model_copy(update={"min": dimension.bounds.minimum, "max": dimension.bounds.maximum})


def _check(dimension: Dimension, layers: list[Threshold]) -> Check:
    """Defaults, overridden by the profile's entry, then by the rules' entry."""
    # The first layer stating a bound replaces the defaults (a profile's `faces: {max: 0}`
    # means at most 0, not 1 to 0); later layers replace side by side.
    bounds, weight, stated = dimension.bounds, dimension.weight, False
    for layer in layers:
        try:
            if layer.min is not None or layer.max is not None:
                bounds = bounds.merged(layer.min, layer.max) if stated else Bounds(layer.min, layer.max)
                stated = True
        except ValueError as error:
            raise ValueError(f"{dimension.name}: {error}") from None
        weight = weight if layer.weight is None else layer.weight
    return Check(dimension.name, bounds, weight)


def with_ceiling(profile: Profile, dimension: str, *, maximum: float | None) -> Profile:
    """`profile` with `dimension`'s maximum lowered to `maximum` where it is higher (a
    tenant's moderation ceiling over a job's own rules); unchanged without the dimension."""
    if maximum is None:
        return profile
    checks = tuple(
        Check(c.dimension, _lowered(c.bounds, maximum), c.weight) if c.dimension == dimension else c
        for c in profile.checks
    )
    return replace(profile, checks=checks)


def _lowered(bounds: Bounds, maximum: float) -> Bounds:
    if bounds.maximum is not None and bounds.maximum <= maximum:
        return bounds
    if bounds.minimum is not None and bounds.minimum > maximum:
        raise ProfileError(f"the tenant's ceiling {maximum} is below the rules' minimum {bounds.minimum}")
    return Bounds(bounds.minimum, maximum)


# What every candidate of an order of a subject is checked for, whatever profile the order
# names: a person's one face, its open eyes, its identity and skin tone against the subject,
# no second person; a product found.
SUBJECT_CHECKS = {
    "person": ("faces", "eyes_open", "identity", "skin_tone", "second_person"),
    "product": ("product_match",),
}


def eyes_waiver(*, faced: int, eyes_seen: int | None) -> str | None:
    """Why `eyes_open` does not hold a person's candidates, or None where it does: in fewer
    than half of the person's photos with one face are two open eyes found (glasses hide eyes
    from OpenCV's eye cascade, and every candidate would then fail). None too where nothing
    says (no photo with one face, or the eyes not counted)."""
    if not faced or eyes_seen is None or 2 * eyes_seen >= faced:
        return None
    return (f"two open eyes are found in only {eyes_seen} of the subject's {faced} photos with one face"
            " (glasses can hide eyes from the eye detector), so its candidates are not held to them")


def with_subject_checks(profile: Profile, kind: str) -> Profile:
    """`profile` with the checks of a subject of `kind` that it lacks, at their dimensions'
    default bounds and weights, and all of them required: an order of a subject is checked
    against it whatever profile it names (a subject profile already has them all)."""
    wanted = SUBJECT_CHECKS[kind]
    added = tuple(_check(DIMENSIONS[name], []) for name in wanted if name not in profile.dimension_names)
    return replace(profile, checks=profile.checks + added, required=profile.required | frozenset(wanted))


def profile_of_dimensions(names: tuple[str, ...]) -> Profile:
    """An ad-hoc profile of registered dimensions with their default bounds."""
    check_known_dimensions(names, "dimensions")
    checks = tuple(_check(DIMENSIONS[name], []) for name in dict.fromkeys(names))
    return Profile(name="custom", description="the listed dimensions with their default bounds", checks=checks)
