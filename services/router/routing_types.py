"""What one routing attempt takes and gives: the policy it follows, the request, the plan,
the provider calls it made and the images it got, and the errors it ends with.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from services.common.contracts import Tier, VideoSpec
from services.common.templates import Capability
from services.router.providers.base import GeneratedImage
from services.router.providers.identity_inputs import IdentityInput
from services.router.styles import StylePlan

RankBy = Literal["cost_per_passing_image", "price_per_image"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderQuote:
    """What a provider is expected to charge and deliver for one job, right now."""

    provider: str
    price_micro_usd: int
    pass_rate: float
    latency_s: float
    max_batch: int
    available: bool = True

    @property
    def cost_per_passing_image(self) -> float:
        return self.price_micro_usd / max(self.pass_rate, 1e-6)

    def rank_key(self, rank_by: RankBy) -> float:
        return self.cost_per_passing_image if rank_by == "cost_per_passing_image" else self.price_micro_usd


# ---- the breakers', limits' and retries' settings (health.py holds what uses them) ----


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSettings:
    enabled: bool = True
    window_s: float = 60.0
    min_calls: int = 5
    failure_rate: float = 0.5
    cooldown_s: float = 30.0
    # A probe with no outcome after this long is taken as lost; None: wait for it for ever
    # (a call always reports back, a verdict may never come).
    probe_lost_after_s: float | None = None
    # Only the last this-many outcomes count, however recent the older ones; None: all in the window.
    max_calls: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QualitySettings:
    enabled: bool = True
    # The last `window_verdicts` verdicts count, if no older than `window_s`: a short
    # window, so that a collapse shows at once, whatever passed before it.
    window_verdicts: int = 6
    window_s: float = 600.0
    # Open when at most this share of a full window passed: a collapse, not a dip.
    max_pass_rate: float = 0.2
    cooldown_s: float = 60.0

    def breaker(self) -> BreakerSettings:
        return BreakerSettings(enabled=self.enabled, window_s=self.window_s, min_calls=self.window_verdicts,
                               max_calls=self.window_verdicts, failure_rate=1.0 - self.max_pass_rate,
                               cooldown_s=self.cooldown_s, probe_lost_after_s=self.cooldown_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class AimdSettings:
    enabled: bool = True
    # The limit grows by `increase` after `limit` successes in a row, as TCP's window does.
    increase: float = 1.0
    decrease_factor: float = 0.5
    floor: int = 1
    # How long to leave a provider alone after a 429 that names no Retry-After.
    default_pause_s: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRetries:
    # Calls one chunk of candidates may make, over all providers of its chain.
    max_calls: int = 4
    # Extra calls to the same provider after a server error, before falling back.
    same_provider_retries: int = 1
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def backoff_s(self, retry_number: int, rng: random.Random, *, retry_after_s: float | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base·2ⁿ)], but never sooner than Retry-After."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, retry_number))
        return max(rng.uniform(0, ceiling), retry_after_s or 0.0)


class RoutingError(Exception):
    """Why an attempt produced nothing; `calls` are the provider calls it made on the way."""

    calls: tuple["CallRecord", ...] = ()
    spent_micro_usd: int = 0


class NoCapableProvider(RoutingError):
    pass


class CostCapReached(RoutingError):
    pass


class AllProvidersFailed(RoutingError):
    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message if not errors else f"{message}: {'; '.join(errors[-5:])}")
        self.errors = errors


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingPolicy:
    """How the engine decides. The defaults are Genline's; the benchmark turns parts off."""

    rank_by: RankBy = "cost_per_passing_image"
    oversampling: Literal["adaptive", "fixed"] = "adaptive"
    fixed_oversample_factor: float = 1.5
    learn_pass_rates: bool = True
    fallback: bool = True
    # While a batch's preferred providers are only busy, it waits for them rather than
    # spilling to a provider dearer than this many times the best, as long as the tier's
    # latency target and the deadline allow. None: spill at once.
    spill_tolerance: float | None = 1.25
    only_provider: str | None = None
    retry: ProviderRetries = ProviderRetries()
    breaker: BreakerSettings = BreakerSettings()
    quality: QualitySettings = QualitySettings()
    aimd: AimdSettings = AimdSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRequest:
    job_id: str
    tenant_id: str
    tier: Tier
    template: str
    prompt: str
    seed: int
    images_needed: int
    width: int = 1024
    height: int = 1024
    attempt: int = 1
    # The first candidate index of this attempt, so a rework never reuses an index.
    start_index: int = 0
    model: str | None = None
    model_version: str | None = None
    needs_image_input: bool = False
    needs_seed_control: bool = False
    cost_cap_micro_usd: int | None = None
    time_left_s: float | None = None
    max_candidates: int | None = None
    # False on an attempt's first run (its first claim): no earlier run can have left a remote
    # job of it to resume, so the journal is not asked.
    resumable: bool = True
    # N chosen by the client: generate exactly this many (within the cost cap) instead of
    # sizing N from the pass-rate estimate.
    candidates: int | None = None
    # The stage this request is for (`pipeline` runs a template's stages through here), its
    # parameters, the provider it is pinned to, and the images it works on: per index, or
    # one for every index.
    capability: Capability = "generate"
    params: Mapping[str, object] = field(default_factory=dict)
    provider: str | None = None
    inputs: Mapping[int, bytes] = field(default_factory=dict)
    input: bytes | None = None
    # Where each call's images go as soon as it returns (the last stage of an attempt): the
    # keeper stores them and hands them back without their bytes, so an attempt holds in
    # memory only the calls in flight, whatever its size. None: the images stay in memory.
    keep: "ImageKeeper | None" = None
    # The stage makes clips of this shape (a video job's last stage): from text on generate,
    # from each candidate's still on animate. None: images.
    video: VideoSpec | None = None
    # An order across styles: the style of each candidate (styles.py). None: one style.
    styles: StylePlan | None = None
    # An order of a subject: the identity every generation carries; only providers whose model
    # carries it are capable. None: no subject.
    identity: IdentityInput | None = None
    # Its tenant's plan's priority (a larger share of the providers' slots) and the job's place
    # among the tenant's own jobs: its turn when its calls wait for a slot (capacity.py).
    priority: int = 0
    job_priority: str = "interactive"

    @property
    def clip_source(self) -> str | None:
        if self.video is None:
            return None
        return "text" if self.capability == "generate" else "image"


class ImageKeeper(Protocol):
    def planned(self, candidates: int) -> None:
        """A route of the attempt plans `candidates` more (one for each candidate of a later stage)."""

    async def keep(self, stage: str, images: list["RoutedImage"]) -> list["RoutedImage"]:
        """Store a call's images (made at `stage`); the same images without their bytes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutePlan:
    chain: tuple[ProviderQuote, ...]
    candidates: int
    success_target: float
    expected_cost_micro_usd: int
    expected_latency_s: float
    cost_cap_limited: bool
    # Capable providers left out because one image there costs more than the cap allows.
    priced_out: tuple[str, ...] = ()
    # Every capable provider's quality breaker is open for the template: quality cannot
    # tell them apart, so none is passed over for it.
    quality_waived: bool = False

    @property
    def primary(self) -> ProviderQuote:
        return self.chain[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    provider: str
    start_index: int
    count: int
    expected_cost_micro_usd: int
    actual_cost_micro_usd: int
    expected_latency_s: float
    latency_s: float
    outcome: str  # "ok" or a ProviderError kind
    error: str | None = None
    stage: str = "generate"
    stage_index: int = 0  # the stage's place in the template's pipeline


@dataclass(frozen=True, slots=True, kw_only=True)
class StageStep:
    """What one stage did to one candidate: where it ran, what it cost, how long it took."""

    stage: str
    provider: str
    cost_micro_usd: int
    latency_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutedImage:
    provider: str
    image: GeneratedImage
    # Every stage the image went through, this one last (empty: generated, no pipeline).
    steps: tuple[StageStep, ...] = ()
    # The model and pinned version that generated it (its Content Credentials name them).
    model: str = ""
    model_version: str = ""
    # The style it was made in, for an order across styles.
    style: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptResult:
    job_id: str
    attempt: int
    planned_candidates: int
    success_target: float
    images: tuple[RoutedImage, ...]
    calls: tuple[CallRecord, ...]
    expected_cost_micro_usd: int
    actual_cost_micro_usd: int
    expected_latency_s: float
    latency_s: float
    cost_cap_reached: bool
    errors: tuple[str, ...]

    @property
    def providers_used(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(image.provider for image in self.images))

    @property
    def shortfall(self) -> int:
        return self.planned_candidates - len(self.images)


def with_calls(error: RoutingError, calls: tuple[CallRecord, ...], *, spent_micro_usd: int) -> RoutingError:
    error.calls, error.spent_micro_usd = calls, spent_micro_usd
    return error
