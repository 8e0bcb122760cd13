"""What the scorer will apply to a job, checked at submission: its profile and rules exist,
and every dimension they require can be computed on this platform."""

import dataclasses
import hashlib
from typing import Any, Protocol

from services.common.problems import Problem
from services.common.quality.profiles import Profile, ProfileError, QualityRules, job_profile, profile_names
from services.ingest.settings import IngestSettings


class ScoredRequest(Protocol):
    """What these checks read of a job's request (`submission.JobRequest`): passed in, so that
    this module never imports the submission back."""

    @property
    def template(self) -> str: ...

    @property
    def profile(self) -> str | None: ...

    @property
    def quality(self) -> QualityRules | None: ...


def quality_rules(body: ScoredRequest) -> dict[str, Any] | None:
    """The rules as the client wrote them, without the defaults of what it left out."""
    return body.quality.model_dump(mode="json", exclude_unset=True) if body.quality is not None else None


def profile_version(profile: Profile) -> str:
    """A digest of the checks a profile applies (its thresholds, weights, required and
    forbidden dimensions, the job's rules included): it changes exactly when they do, and is
    the same in every process (sets are written sorted: their order follows string hashing,
    which differs from one process to the next)."""
    return hashlib.sha256(repr(_canonical(profile)).encode()).hexdigest()[:16]


def _canonical(value: object) -> object:
    """`value` with every set sorted, through dataclasses, tuples, lists and dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple((f.name, _canonical(getattr(value, f.name)))
                                            for f in dataclasses.fields(value)))
    if isinstance(value, (set, frozenset)):
        return tuple(sorted((_canonical(item) for item in value), key=repr))
    if isinstance(value, (tuple, list)):
        return tuple(_canonical(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted(((repr(k), _canonical(v)) for k, v in value.items()), key=repr))
    return value


def check_scoring(body: ScoredRequest, settings: IngestSettings) -> Profile:
    """Refuse at submission what the scorer would refuse later: an unknown profile, invalid
    rules, or a dimension that must be computed without the model it needs; the profile the
    job will be scored with."""
    if body.profile is not None and body.profile not in profile_names():
        raise Problem(status=422, slug="unknown-profile", detail=f"unknown profile {body.profile!r}; known: {profile_names()}")
    try:
        profile = job_profile(body.template, body.profile, rules=quality_rules(body))
    except ProfileError as error:
        raise Problem(status=422, slug="invalid-quality-rules", detail=str(error)) from None
    capabilities = frozenset({"clip_model"}) if settings.clip_model_dir else frozenset()
    missing = profile.missing_capabilities(capabilities)
    if missing:
        raise Problem(status=422, slug="dimension-unavailable",
                      detail=f"profile {profile.name!r} with these rules requires {', '.join(missing)}, but no CLIP model"
                      " is configured on this platform, so it could not be scored; do not require it",
                      extra={"unavailable": missing})
    return profile
