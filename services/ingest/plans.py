"""Plans, as data (plans.yaml, like the ledger's price book): what a tenant may ask of the
platform, and the pure arithmetic of its request-rate limit.

The rate limit is a GCRA (generic cell rate algorithm): one timestamp per tenant, the
theoretical arrival time (TAT) of its next request if it spent its rate evenly. A request
is allowed when it would not push the TAT further than `burst` intervals past now; each
allowed request moves the TAT one interval on. So in any span of t seconds a tenant gets
at most burst + rate × t requests, whichever replica answers them, because the TAT lives
in one PostgreSQL row updated atomically (the rate taken as a request is authenticated, deps.py; the limits at submission,
services.ingest.accounts.limits).
"""

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.contracts import Resolution

# The longest clip the platform makes (VideoSpec's bound); each plan allows at most its own.
VIDEO_SECONDS_MAX = 60


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    requests_per_s: float = Field(gt=0)
    burst: int = Field(ge=1, description="requests that may come at once, on top of the rate")
    concurrent_jobs: int | None = Field(ge=1, description="jobs not yet final at once; None: no limit")
    images_per_day: int | None = Field(ge=1, description="images asked for per UTC day; None: no cap")
    priority: int = Field(ge=0, description="queue priority: a larger share at every stage, twice per step")
    images_per_job: int = Field(60, ge=1, le=100, description="images one job may ask for")
    candidates_per_job: int = Field(240, ge=1, le=1000, description="candidates one job may ask for")
    video_seconds_max: float = Field(10, gt=0, le=VIDEO_SECONDS_MAX, description="the longest clip a job may ask for")
    video_resolution_max: Resolution = Field("720p", description="the sharpest resolution tier a clip may be asked at")
    evaluation_batch_images: int = Field(100, ge=1, le=10_000, description="images one evaluation batch may hold")

    @property
    def interval_s(self) -> float:
        return 1 / self.requests_per_s

    @property
    def tolerance_s(self) -> float:
        """How far ahead of now the TAT may run: the burst, in intervals."""
        return self.burst * self.interval_s


class PlanBook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default: str
    plans: dict[str, Plan] = Field(min_length=1)

    @model_validator(mode="after")
    def named_and_complete(self) -> "PlanBook":
        if self.default not in self.plans:
            raise ValueError(f"the default plan {self.default!r} is not among {sorted(self.plans)}")
        object.__setattr__(self, "plans", {name: plan.model_copy(update={"name": name})
                                           for name, plan in self.plans.items()})
        return self

    def get(self, name: str | None) -> Plan:
        """The plan by name; a tenant on a plan no longer offered gets the default."""
        return self.plans.get(name or self.default) or self.plans[self.default]

    def rates(self) -> "Rates":
        """Every plan's request rate, for a statement that takes a request as it finds the
        caller's plan (by `get`'s rule)."""
        named = sorted(self.plans.items())
        return Rates(names=[name for name, _ in named], intervals_s=[plan.interval_s for _, plan in named],
                     tolerances_s=[plan.tolerance_s for _, plan in named], default=self.default)


@dataclass(frozen=True, kw_only=True)
class Rates:
    """The plans' request rates (GCRA: one request every interval, bursts up to the tolerance
    ahead), by name, and the plan of a tenant on one no longer offered."""

    names: list[str]
    intervals_s: list[float]
    tolerances_s: list[float]
    default: str


def load_plans(path: str | Path | None = None) -> PlanBook:
    text = Path(path).read_text() if path else (resources.files("services.ingest") / "plans.yaml").read_text()
    return PlanBook.model_validate(yaml.safe_load(text))


@dataclass(frozen=True, kw_only=True)
class RateDecision:
    """What the rate limiter answered, in the terms of the RateLimit headers."""

    allowed: bool
    limit: int  # the burst: what a rested tenant may send at once
    remaining: int  # requests that would be allowed right now
    reset_s: int  # seconds until the allowance is whole again
    retry_after_s: int  # when refused: seconds until one request fits

    def headers(self, plan: Plan) -> dict[str, str]:
        window_s = max(1, math.ceil(plan.burst / plan.requests_per_s))
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_s), "RateLimit-Policy": f"{plan.burst};w={window_s}"}
        return headers | ({"Retry-After": str(self.retry_after_s)} if not self.allowed else {})


def rate_decision(plan: Plan, allowed: bool, *, ahead_s: float) -> RateDecision:
    """The decision from how far the tenant's TAT runs ahead of now (after the request, when
    it was allowed; as it stands, when it was refused)."""
    ahead_s = max(0.0, ahead_s)
    remaining = max(0, math.floor((plan.tolerance_s - ahead_s) / plan.interval_s + 1e-9))
    retry_after = 0 if allowed else max(1, math.ceil(ahead_s + plan.interval_s - plan.tolerance_s))
    return RateDecision(allowed=allowed, limit=plan.burst, remaining=remaining, reset_s=math.ceil(ahead_s), retry_after_s=retry_after)
