"""The provider registry: which providers exist, what they can do and what they cost.

Loaded from YAML (`services/router/providers.yaml` by default) into frozen pydantic
models. A provider names its adapter (any module of this package that registers one, see
`adapters.py`), its credentials (the name of a secret, never the secret; the caller
resolves the name and hands the secret to the adapter) and the hosts the secret may go
to. Each model is pinned to a version (a job pinned to a model and version is only ever
sent to a provider that lists exactly that pair) and says how it takes its inputs
(`inputs.py`; the adapter's usual mapping when it does not).
"""

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.common.contracts import Tier
from services.common.templates import Capability
from services.router.providers import adapters
from services.router.providers.image_stages import OPERATIONS
from services.router.providers.inputs import ModelInputs, parse_size

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "providers.yaml"
# A secret's name looks like an environment variable; anything else is likely the secret.
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class RegistryError(ValueError):
    """The registry file is missing, not YAML, or breaks a rule; the message says where."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelPin(_Frozen):
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


class Capabilities(_Frozen):
    # Exact sizes the provider accepts; empty means any size within the limits below.
    sizes: tuple[tuple[int, int], ...] = ()
    min_side: int = Field(64, ge=1)
    max_side: int = Field(2048, ge=1)
    max_megapixels: float = Field(1.05, gt=0)
    seed_control: bool = True
    image_input: bool = False
    max_images_per_request: int = Field(4, ge=1, le=64)
    # The stages of a template this provider can run; generation alone by default.
    stages: tuple[Capability, ...] = Field(("generate",), min_length=1)

    def supports_size(self, width: int, height: int) -> bool:
        if self.sizes:
            return (width, height) in self.sizes
        sides_fit = self.min_side <= min(width, height) and max(width, height) <= self.max_side
        return sides_fit and width * height / 1e6 <= self.max_megapixels


class PriceModel(_Frozen):
    """A provider's list price for one image; any mix of per image, per image by size (a
    table, as OpenAI prices each quality), per megapixel, per second of compute and per
    inference step."""

    per_image_micro_usd: int = Field(0, ge=0)
    # "WxH" -> price of one image of that size; a size not listed costs as the nearest one.
    per_image_by_size: dict[str, int] = {}
    per_megapixel_micro_usd: int = Field(0, ge=0)
    per_second_micro_usd: int = Field(0, ge=0)
    per_step_micro_usd: int = Field(0, ge=0)

    @field_validator("per_image_by_size")
    @classmethod
    def sizes_parse(cls, table: dict[str, int]) -> dict[str, int]:
        for size, price in table.items():
            parse_size(size)
            if price < 0:
                raise ValueError(f"the price of {size} must not be negative")
        return table

    def price_micro_usd(self, width: int, height: int, seconds: float, steps: int | None = None) -> int:
        megapixels = width * height / 1e6
        return round(
            self.per_image_micro_usd
            + self._by_size(width, height)
            + self.per_megapixel_micro_usd * megapixels
            + self.per_second_micro_usd * max(0.0, seconds)
            + self.per_step_micro_usd * (steps or 0)
        )

    def _by_size(self, width: int, height: int) -> int:
        if not self.per_image_by_size:
            return 0
        nearest = min(self.per_image_by_size, key=lambda size: _size_distance(parse_size(size), (width, height)))
        return self.per_image_by_size[nearest]


def _size_distance(size: tuple[int, int], asked: tuple[int, int]) -> tuple[int, int]:
    return abs(size[0] * asked[1] - size[1] * asked[0]), abs(size[0] * size[1] - asked[0] * asked[1])


class Timeouts(_Frozen):
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


class LatencyEstimate(_Frozen):
    """Expected wall time of a batch: a fixed part (queue, start-up) plus a part per image."""

    base_s: float = Field(2.0, ge=0)
    per_image_s: float = Field(1.0, ge=0)

    def batch_s(self, count: int) -> float:
        return self.base_s + self.per_image_s * count


class PassRatePrior(_Frozen):
    """What we believe of a provider's pass rate before the scorer has said anything."""

    mean: float = Field(0.7, gt=0, lt=1)
    strength: float = Field(4.0, gt=0, description="worth this many scored images")


class LocalOptions(_Frozen):
    """How a local provider behaves, so several local providers can stand in for a market."""

    defect_rate: float = Field(0.25, ge=0, lt=1)
    failure_rate: float = Field(0.0, ge=0, le=1)
    # Simulated generation time of a batch; without it, the latency estimate.
    latency_s: float | None = Field(None, ge=0)
    # For stages other than generate: the image operation (`image_stages.OPERATIONS`) and
    # parameters of this provider's own, which the stage's parameters cannot override.
    operation: str | None = None
    options: dict[str, Any] = {}

    @field_validator("operation")
    @classmethod
    def operation_is_known(cls, operation: str | None) -> str | None:
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")
        return operation


class HostedStage(_Frozen):
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


class OutputChecks(_Frozen):
    """What every image from the provider must be before it counts (else: its defect)."""

    # A one-colour image is refused; off only where the scorer is meant to see such images.
    reject_blank: bool = True
    max_bytes: int = Field(50 * 2**20, ge=1024)
    max_redirects: int = Field(3, ge=0, le=10)


class Webhooks(_Frozen):
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


class ProviderConfig(_Frozen):
    name: str = Field(min_length=1)
    adapter: str
    endpoint: str | None = None
    credentials: str | None = Field(None, description="the NAME of the secret holding the API key")
    # Hosts the API key may go to besides the endpoint's (fnmatch patterns: host or host:port).
    credential_hosts: tuple[str, ...] = ()
    # The adapter's own settings (see its `options` model).
    options: dict[str, Any] = {}
    outputs: OutputChecks = OutputChecks()
    webhooks: Webhooks | None = None
    models: tuple[ModelPin, ...] = Field(min_length=1)
    capabilities: Capabilities = Capabilities()
    price: PriceModel
    concurrency: int = Field(ge=1, le=1024)
    timeouts: Timeouts = Timeouts()
    latency: LatencyEstimate = LatencyEstimate()
    pass_rate_prior: PassRatePrior = PassRatePrior()
    poll_interval_s: float = Field(1.0, gt=0)
    local: LocalOptions | None = None
    # For adapters that run stages: how each stage of `capabilities.stages` other than generate runs.
    stages: dict[Capability, HostedStage] = {}

    @field_validator("adapter")
    @classmethod
    def adapter_is_known(cls, adapter: str) -> str:
        adapters.adapter_class(adapter)
        return adapter

    @field_validator("endpoint")
    @classmethod
    def endpoint_is_http(cls, endpoint: str | None) -> str | None:
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http:// or https:// URL, got {endpoint!r}")
        return endpoint.rstrip("/") if endpoint else endpoint

    @field_validator("credentials")
    @classmethod
    def credentials_name_a_secret(cls, credentials: str | None) -> str | None:
        if credentials is not None and not _SECRET_NAME.match(credentials):
            raise ValueError("credentials must be the name of a secret (like FAL_KEY), not the secret itself")
        return credentials

    @model_validator(mode="after")
    def adapter_settings_agree(self) -> "ProviderConfig":
        traits = adapters.traits_of(self.adapter)
        if traits.needs_endpoint and self.endpoint is None and traits.default_endpoint is None:
            raise ValueError(f"adapter {self.adapter!r} needs an endpoint")
        if traits.needs_credentials and self.credentials is None:
            raise ValueError(f"adapter {self.adapter!r} needs credentials (the name of its API key secret)")
        if not traits.needs_endpoint and (self.endpoint or self.credentials):
            raise ValueError(f"adapter {self.adapter!r} takes no endpoint or credentials")
        if self.adapter != "local" and self.local is not None:
            raise ValueError("'local' options apply only to adapter 'local'")
        stages = set(self.capabilities.stages) - {"generate"}
        if self.adapter == "local" and stages and (len(stages) > 1 or self.local_options.operation is None):
            raise ValueError("a local provider runs one stage other than generate, named with local.operation")
        if self.stages and not traits.runs_stages:
            raise ValueError(f"'stages' do not apply to adapter {self.adapter!r}")
        unused = sorted(set(self.stages) - stages)
        if unused:
            raise ValueError(f"stages {', '.join(unused)} are configured but not in capabilities.stages")
        pins = [(m.name, m.version) for m in self.models]
        if len(set(pins)) != len(pins):
            raise ValueError("each model name and version may be listed once")
        try:
            options = adapters.adapter_options(self)
        except ValidationError as error:
            raise ValueError(f"options: {_describe(error).strip()}") from None
        adapters.adapter_class(self.adapter).check_config(self, options)
        return self

    @property
    def local_options(self) -> LocalOptions:
        return self.local or LocalOptions()

    @property
    def base_url(self) -> str:
        return self.endpoint or adapters.traits_of(self.adapter).default_endpoint or ""

    def inputs_for(self, pin: ModelPin) -> ModelInputs:
        return pin.inputs or adapters.traits_of(self.adapter).default_inputs

    @property
    def max_batch(self) -> int:
        """The most images one call asks for: the capability, and what every model takes."""
        return min([self.capabilities.max_images_per_request, *(self.inputs_for(p).max_count for p in self.models)])

    def can_make(self, pin: ModelPin, width: int, height: int) -> bool:
        return self.capabilities.supports_size(width, height) and self.inputs_for(pin).can_make(width, height)

    def may_receive_credentials(self, url: str) -> bool:
        """Whether the API key may go with a request to `url`: the endpoint's own origin, or
        an https host the adapter or this entry declares."""
        target = urlsplit(url)
        if _origin(target) == _origin(urlsplit(self.base_url)):
            return True
        if target.scheme != "https" or not target.hostname:
            return False
        host = target.hostname.lower()
        names = {host, f"{host}:{target.port or 443}"}
        patterns = adapters.traits_of(self.adapter).credential_hosts + self.credential_hosts
        return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns for name in names)

    def runs(self, capability: str) -> bool:
        return capability in self.capabilities.stages

    def stage_model(self, stage: HostedStage) -> ModelPin:
        return stage.model or self.models[0]

    def model_for(self, model: str | None, version: str | None) -> ModelPin | None:
        """The pinned model a job gets here: its exact pin, or this provider's default."""
        if model is None:
            return self.models[0]
        for pin in self.models:
            if pin.name == model and (version is None or pin.version == version):
                return pin
        return None

    def list_price_micro_usd(self, width: int, height: int) -> int:
        """The price of one image, its compute time taken from the latency estimate and its
        steps from the default model's."""
        steps = self.inputs_for(self.models[0]).default_steps
        return self.price.price_micro_usd(width, height, self.latency.per_image_s, steps)


class TierConfig(_Frozen):
    latency_target_s: float = Field(gt=0, description="longest expected generation time for this tier")
    success_target: float = Field(0.95, gt=0, lt=1, description="P(enough candidates pass) to plan for")


class PlanningConfig(_Frozen):
    max_candidates: int = Field(64, ge=1)
    # Rework rounds the engine may count on when the deadline leaves time for them.
    max_rounds: int = Field(3, ge=1)
    # Time a round takes beyond generation: storing, scoring, the rework event.
    round_overhead_s: float = Field(5.0, ge=0)


def _default_tiers() -> dict[str, TierConfig]:
    return {
        "fast": TierConfig(latency_target_s=20),
        "stable": TierConfig(latency_target_s=60),
        "low-cost": TierConfig(latency_target_s=300),
    }


class Registry(_Frozen):
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    tiers: dict[Tier, TierConfig] = Field(default_factory=_default_tiers)
    planning: PlanningConfig = PlanningConfig()

    @field_validator("providers", mode="before")
    @classmethod
    def names_come_from_keys(cls, providers: Any) -> Any:
        if not isinstance(providers, Mapping):
            return providers
        return {name: _named(name, body) for name, body in providers.items()}

    @model_validator(mode="after")
    def every_tier_has_a_target(self) -> "Registry":
        missing = {"fast", "stable", "low-cost"} - set(self.tiers)
        if missing:
            raise ValueError(f"tiers lack latency targets for: {', '.join(sorted(missing))}")
        return self

    def provider(self, name: str) -> ProviderConfig:
        return self.providers[name]


def _origin(url) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, (url.hostname or "").lower(), url.port or default


def _named(name: str, body: Any) -> Any:
    if isinstance(body, Mapping) and "name" not in body:
        return {"name": name, **body}
    return body


def parse_registry(data: Any, source: str = "<registry>") -> Registry:
    try:
        return Registry.model_validate(data)
    except ValidationError as error:
        raise RegistryError(f"{source}: invalid provider registry:\n{_describe(error)}") from None


def load_registry(path: str | Path | None = None) -> Registry:
    """Read and check a registry file; the default is the registry shipped with the router."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RegistryError(f"{path}: cannot read the provider registry: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise RegistryError(f"{path}: not valid YAML: {error}") from None
    return parse_registry(data, str(path))


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)
