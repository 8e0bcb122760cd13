"""The parts a provider's entry in the registry (registry.py) is made of: its pinned models,
what it can make, how it prices an image, its timeouts, latency and pass-rate priors, a local
model's options, a hosted stage, the checks its outputs get and its webhooks."""

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.templates import Capability
from services.router.providers.image_stages import OPERATIONS
from services.router.providers.inputs import ModelInputs, parse_size

# fal's megapixel: a 1024×1024 image is one (billed as one), 1536×1024 is 1.5, billed as two.
WHOLE_MEGAPIXEL = 1024 * 1024


class Frozen(BaseModel):
    """A registry's model: read once, never changed, and no key it does not name."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelPin(Frozen):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    # The provider's own identifier for this model at this version: a fal app id, a
    # Replicate version id, a ComfyUI checkpoint file. Defaults to `name`.
    remote_id: str | None = None
    # How the model takes its inputs; None: as the adapter's models usually do.
    inputs: ModelInputs | None = None

    @property
    def remote(self) -> str:
        return self.remote_id or self.name


class Capabilities(Frozen):
    # Exact sizes the provider accepts; empty means any size within the limits below.
    sizes: tuple[tuple[int, int], ...] = ()
    min_side: int = Field(64, ge=1)
    max_side: int = Field(2048, ge=1)
    max_megapixels: float = Field(1.05, gt=0)
    seed_control: bool = True
    image_input: bool = False
    max_images_per_request: int = Field(4, ge=1, le=64)
    # The stages of a template this provider can run; generation alone by default (none: a
    # provider that only trains, under `trainer`).
    stages: tuple[Capability, ...] = ("generate",)
    # A video provider makes clips (and nothing else): from text (a video job's `generate`),
    # from an image (its `animate`), or both. Empty: an image provider.
    video: tuple[Literal["text", "image"], ...] = ()
    # How its models carry a subject's identity (identity_inputs.py): LoRA weights by URL, reference photos.
    identity: tuple[Literal["lora", "reference"], ...] = ()
    # It makes only orders of a subject (a reference model needs the photos; the local portrait model).
    subjects_only: bool = False

    def supports_size(self, width: int, height: int) -> bool:
        if self.sizes:
            return (width, height) in self.sizes
        sides_fit = self.min_side <= min(width, height) and max(width, height) <= self.max_side
        return sides_fit and width * height / 1e6 <= self.max_megapixels


class PriceModel(Frozen):
    """A provider's list price for one image; any mix of per image, per image by size (a
    table, as OpenAI prices each quality), per megapixel, per second of compute and per
    inference step; and, for APIs that report token usage (OpenAI's image models), per token."""

    per_image_micro_usd: int = Field(0, ge=0)
    # "WxH" -> price of one image of that size; a size not listed costs as the nearest one.
    per_image_by_size: dict[str, int] = {}
    per_megapixel_micro_usd: int = Field(0, ge=0)
    # How an image's megapixels are counted: `exact` (its area in millions of pixels), or
    # `whole` (in 1024×1024 units, rounded up to a whole one, as fal bills: "images are billed
    # by rounding up to the nearest megapixel"). None: as the adapter's API bills.
    megapixels: Literal["exact", "whole"] | None = None
    per_second_micro_usd: int = Field(0, ge=0)
    per_step_micro_usd: int = Field(0, ge=0)
    # Per token of the `usage` a job reports: the prompt's text and image tokens, and the
    # image tokens made. With an output token price the usage is the whole bill; with input
    # prices alone, the prompt's tokens are billed beside the per-image price.
    per_text_input_token_micro_usd: float = Field(0, ge=0)
    per_image_input_token_micro_usd: float = Field(0, ge=0)
    per_output_token_micro_usd: float = Field(0, ge=0)
    # Clips: per clip, per second of clip asked (the seconds sent to the model), per second by
    # resolution tier ({"720p": 56000}), and per clip by tier and seconds ({"720p": {"5": 280000}};
    # a length not listed costs as the next longer one listed, else the longest).
    per_clip_micro_usd: int = Field(0, ge=0)
    per_clip_second_micro_usd: int = Field(0, ge=0)
    per_clip_second_by_resolution: dict[str, int] = {}
    per_clip_by_resolution_duration: dict[str, dict[str, int]] = {}

    @field_validator("per_clip_by_resolution_duration")
    @classmethod
    def durations_are_seconds(cls, table: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for tier, prices in table.items():
            if not prices:
                raise ValueError(f"per_clip_by_resolution_duration.{tier} lists no lengths")
            for seconds, price in prices.items():
                if float(seconds) <= 0 or price < 0:
                    raise ValueError(f"per_clip_by_resolution_duration.{tier}: {seconds} s at {price} is not a price")
        return table

    @property
    def prices_clips(self) -> bool:
        return bool(self.per_clip_micro_usd or self.per_clip_second_micro_usd or self.per_clip_second_by_resolution
                    or self.per_clip_by_resolution_duration)

    def clip_price_micro_usd(self, resolution: str, seconds: float) -> int:
        """The list price of one clip of `seconds` at a resolution tier."""
        per_second = self.per_clip_second_micro_usd + self.per_clip_second_by_resolution.get(resolution, 0)
        return round(self.per_clip_micro_usd + per_second * seconds + self._clip_by_table(resolution, seconds))

    def _clip_by_table(self, resolution: str, seconds: float) -> int:
        table = self.per_clip_by_resolution_duration.get(resolution)
        if not table:
            return 0
        lengths = sorted(table, key=float)
        chosen = next((length for length in lengths if float(length) >= seconds - 1e-9), lengths[-1])
        return table[chosen]

    @field_validator("per_image_by_size")
    @classmethod
    def sizes_parse(cls, table: dict[str, int]) -> dict[str, int]:
        for size, price in table.items():
            parse_size(size)
            if price < 0:
                raise ValueError(f"the price of {size} must not be negative")
        return table

    def price_micro_usd(self, size: tuple[int, int], seconds: float, *, steps: int | None = None) -> int:
        """One image of `size` (width, height) that took `seconds` of compute and `steps` steps."""
        return round(
            self.per_image_micro_usd
            + self._by_size(*size)
            + self.per_megapixel_micro_usd * self.billed_megapixels(*size)
            + self.per_second_micro_usd * max(0.0, seconds)
            + self.per_step_micro_usd * (steps or 0)
        )

    def billed_megapixels(self, width: int, height: int) -> float:
        if self.megapixels == "whole":
            return float(math.ceil(width * height / WHOLE_MEGAPIXEL))
        return width * height / 1e6

    @property
    def prices_tokens(self) -> bool:
        return any((self.per_text_input_token_micro_usd, self.per_image_input_token_micro_usd,
                    self.per_output_token_micro_usd))

    def tokens_micro_usd(self, text_in: int, image_in: int, *, out: int) -> int:
        """What a job's token usage bills (input tokens alone where no output price is set)."""
        return round(self.per_text_input_token_micro_usd * text_in + self.per_image_input_token_micro_usd * image_in
                     + self.per_output_token_micro_usd * out)

    def _by_size(self, width: int, height: int) -> int:
        if not self.per_image_by_size:
            return 0
        nearest = min(self.per_image_by_size, key=lambda size: _size_distance(parse_size(size), (width, height)))
        return self.per_image_by_size[nearest]


def _size_distance(size: tuple[int, int], asked: tuple[int, int]) -> tuple[int, int]:
    return abs(size[0] * asked[1] - size[1] * asked[0]), abs(size[0] * size[1] - asked[0] * asked[1])


class Timeouts(Frozen):
    # One HTTP request (submit, poll, cancel, download).
    submit_s: float = Field(10.0, gt=0)
    # A whole call, submit to the last image; sent to the provider as its deadline where the API takes one.
    overall_s: float = Field(120.0, gt=0)
    # The longest wait between polls once polls fail (backoff) or a provider asks for more.
    poll_backoff_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def submit_fits_in_overall(self) -> "Timeouts":
        if self.submit_s > self.overall_s:
            raise ValueError(f"submit_s ({self.submit_s}) must not exceed overall_s ({self.overall_s})")
        return self


class LatencyEstimate(Frozen):
    """Expected wall time of a batch: a fixed part (queue, start-up) plus a part per image."""

    base_s: float = Field(2.0, ge=0)
    per_image_s: float = Field(1.0, ge=0)

    def batch_s(self, count: int) -> float:
        return self.base_s + self.per_image_s * count


class PassRatePrior(Frozen):
    """What we believe of a provider's pass rate before the scorer has said anything."""

    mean: float = Field(0.7, gt=0, lt=1)
    strength: float = Field(4.0, gt=0, description="worth this many scored images")


class PortraitDefects(Frozen):
    """How often the local portrait model plants each defect (portraits/defects.py), of every portrait."""

    another_person: float = Field(0.0, ge=0, le=1)
    two_faces: float = Field(0.0, ge=0, le=1)
    closed_eyes: float = Field(0.0, ge=0, le=1)
    drift: float = Field(0.0, ge=0, le=1)
    # Painting from the photos (reference), the identity drifts this much more often than from weights.
    reference_drift: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def at_most_all(self) -> "PortraitDefects":
        if self.another_person + self.two_faces + self.closed_eyes + self.drift + self.reference_drift > 1 + 1e-9:
            raise ValueError("the portrait defects' rates add up to more than 1")
        return self

    def rates(self, by_reference: bool) -> list[tuple[str, float]]:
        drift = self.drift + (self.reference_drift if by_reference else 0.0)
        return [("another_person", self.another_person), ("two_faces", self.two_faces),
                ("closed_eyes", self.closed_eyes), ("drift", drift)]


class LocalOptions(Frozen):
    """How a local provider behaves, so several local providers can stand in for a market."""

    defect_rate: float = Field(0.25, ge=0, lt=1)
    failure_rate: float = Field(0.0, ge=0, le=1)
    # Simulated generation time of a batch; without it, the latency estimate.
    latency_s: float | None = Field(None, ge=0)
    # For stages other than generate: the image operation (`image_stages.OPERATIONS`) and
    # parameters of this provider's own, which the stage's parameters cannot override.
    operation: str | None = None
    options: dict[str, Any] = {}
    # A portrait model (`capabilities.identity`): the share of its portraits with each planted defect.
    portrait: PortraitDefects = PortraitDefects()

    @field_validator("operation")
    @classmethod
    def operation_is_known(cls, operation: str | None) -> str | None:
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")
        return operation


class HostedStage(Frozen):
    """How a hosted (fal or Replicate) provider runs one stage: the model it calls and where
    the candidate's image, the prompt and the parameters go in that model's input."""

    # The provider's first model when not given (a provider that runs just this stage).
    model: ModelPin | None = None
    image_field: str = Field("image_url", min_length=1)
    # Where the job's prompt goes, for image-to-image models that take one; none: not sent.
    prompt_field: str | None = None
    # Fixed inputs of this model; the template stage's parameters cannot override them.
    params: dict[str, Any] = {}
    # The template stage's parameters this model takes, by the name it gives them.
    param_fields: dict[str, str] = {}


class OutputChecks(Frozen):
    """What every image from the provider must be before it counts (else: its defect)."""

    # A one-colour image is refused; off only where the scorer is meant to see such images.
    reject_blank: bool = True
    max_bytes: int = Field(50 * 2**20, ge=1024)
    max_redirects: int = Field(3, ge=0, le=10)


class Webhooks(Frozen):
    """The provider calls back at `url` (public, reaching the router's webhook route) when a
    job ends; polls go on every `poll_interval_s`, in case a callback is lost."""

    url: str
    # The NAME of the secret the provider signs callbacks with, where it signs with a shared secret.
    secret: str | None = None
    poll_interval_s: float = Field(15.0, gt=0)

    @field_validator("url")
    @classmethod
    def url_is_http(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"webhooks.url must be an http:// or https:// URL, got {url!r}")
        return url.rstrip("/")
