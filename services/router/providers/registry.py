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
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from services.common.contracts import Tier, VideoSpec
from services.common.templates import Capability
from services.router.providers import adapters
from services.router.providers.entry_parts import (
    Capabilities,
    Frozen,
    HostedStage,
    LatencyEstimate,
    LocalOptions,
    ModelPin,
    OutputChecks,
    PassRatePrior,
    PriceModel,
    Timeouts,
    Webhooks,
)
from services.router.providers.identity_inputs import LOCAL_BASE as LOCAL_FACES
from services.router.providers.identity_inputs import IdentityInput, IdentityInputs, can_carry
from services.router.providers.inputs import DurationInput, ModelInputs, NamedInput, VideoInputs
from services.router.providers.training_config import TrainerConfig

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "providers.yaml"
# A secret's name looks like an environment variable; anything else is likely the secret.
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class RegistryError(ValueError):
    """The registry file is missing, not YAML, or breaks a rule; the message says where."""


class ProviderConfig(Frozen):
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
    # Its priors for an order of a subject, per way of carrying the subject's identity.
    identity_pass_rate_prior: dict[Literal["lora", "reference"], PassRatePrior] = {}
    poll_interval_s: float = Field(1.0, gt=0)
    local: LocalOptions | None = None
    # For adapters that run stages: how each stage of `capabilities.stages` other than generate runs.
    stages: dict[Capability, HostedStage] = {}
    # For adapters that train: how a subject's identity is trained here (training_config.py).
    trainer: TrainerConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def megapixels_as_the_api_bills(cls, data: Any) -> Any:
        """A price per megapixel counts them as the adapter's API bills, unless the entry says."""
        if not isinstance(data, dict) or not isinstance(data.get("price"), dict) or "megapixels" in data["price"]:
            return data
        try:
            billed = adapters.traits_of(str(data.get("adapter"))).megapixels
        except ValueError:
            return data  # an unknown adapter: its own validator says so
        return {**data, "price": {**data["price"], "megapixels": billed}}

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
        self._check_clips(traits)
        self._check_identity(traits)
        pins = [(m.name, m.version) for m in self.models]
        if len(set(pins)) != len(pins):
            raise ValueError("each model name and version may be listed once")
        try:
            options = adapters.adapter_options(self)
        except ValidationError as error:
            raise ValueError(f"options: {_describe(error).strip()}") from None
        adapters.adapter_class(self.adapter).check_config(self, options)
        return self

    def _check_clips(self, traits: "adapters.AdapterTraits") -> None:
        if not self.capabilities.video:
            if any(self.inputs_for(pin).video for pin in self.models):
                raise ValueError("a model declares video inputs, but capabilities.video names no clips to make")
            return
        if not traits.makes_clips:
            raise ValueError(f"adapter {self.adapter!r} makes no clips (capabilities.video)")
        if self.adapter != "local" and any(pin.inputs is None or pin.inputs.video is None for pin in self.models):
            raise ValueError("every model of a video provider declares how it takes a clip's shape (inputs.video)")
        if "image" in self.capabilities.video and any(self.clip_inputs_for(p).first_frame is None
                                                      for p in self.models):
            raise ValueError("capabilities.video names image, but a model takes no first frame (inputs.video.first_frame)")

    def _check_identity(self, traits: "adapters.AdapterTraits") -> None:
        if not self.capabilities.stages and self.trainer is None:
            raise ValueError("capabilities.stages is empty: a provider that runs no stage declares a trainer")
        if self.trainer is not None and not traits.trains:
            raise ValueError(f"adapter {self.adapter!r} trains no identities (trainer)")
        if self.trainer is not None and self.adapter == "replicate" and not self.trainer.destination:
            raise ValueError("a Replicate trainer names its destination model (trainer.destination: owner/name)")
        if self.adapter == "local":
            return  # the local portrait model carries both ways, from the request itself
        if not traits.hosts_files and ("reference" in self.capabilities.identity or (
                self.trainer is not None and self.trainer.images.via == "upload")):
            raise ValueError(f"adapter {self.adapter!r} keeps no files: a subject's photos reach its models only by"
                             " a file the provider keeps (trainer.images.via: presigned links a trainer to them)")
        for mode in self.capabilities.identity:
            lacking = [pin.name for pin in self.models if not (self.inputs_for(pin).identity or _NONE).takes(mode)]
            if lacking:
                raise ValueError(f"capabilities.identity names {mode}, but models {', '.join(lacking)} declare no"
                                 f" inputs.identity.{mode}")

    def carries(self, pin: ModelPin, identity: IdentityInput) -> bool:
        """Whether `pin` here can carry the identity (declared way, the weights' base, a link it reads)."""
        if identity.mode not in self.capabilities.identity:
            return False
        if self.adapter == "local":
            return identity.base in ("", LOCAL_FACES) if identity.mode == "lora" else bool(identity.photos)
        return can_carry(self.inputs_for(pin).identity, identity)

    @property
    def makes_clips(self) -> bool:
        return bool(self.capabilities.video)

    def clip_inputs_for(self, pin: ModelPin) -> VideoInputs:
        return self.inputs_for(pin).video or LOCAL_CLIPS

    def can_make_clip(self, pin: ModelPin, spec: VideoSpec, *, from_image: bool) -> bool:
        source = "image" if from_image else "text"
        return source in self.capabilities.video and self.clip_inputs_for(pin).why_not(spec, from_image) is None

    def why_no_clip(self, pin: ModelPin, spec: VideoSpec, *, from_image: bool) -> str:
        """Why `can_make_clip` says no."""
        if ("image" if from_image else "text") not in self.capabilities.video:
            return f"no clips from {'a still' if from_image else 'a prompt'}"
        return self.clip_inputs_for(pin).why_not(spec, from_image) or "cannot make it"

    def clip_price_micro_usd(self, spec: VideoSpec, pin: ModelPin | None = None) -> int:
        """The list price of one clip of `spec`: of the seconds the model is asked for (Kling makes
        5 or 10 s, so a 4 s clip is asked, and paid, as 5 s)."""
        seconds = self.clip_inputs_for(pin or self.models[0]).duration.seconds_for(spec.duration_s)
        return self.price.clip_price_micro_usd(spec.resolution, seconds or spec.duration_s) + \
            self.price.per_image_micro_usd

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

    def can_make(self, pin: ModelPin, width: int, *, height: int) -> bool:
        return self.capabilities.supports_size(width, height) and self.inputs_for(pin).can_make(width, height)

    def own_host(self, url: str) -> bool:
        """Whether `url` is on a host the registry names for this provider: its endpoint's (any
        port: an operator's ComfyUI serves its outputs there), or a credential host."""
        host = urlsplit(url).hostname
        return host is not None and (host == urlsplit(self.base_url).hostname or self.may_receive_credentials(url))

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
        """Whether it runs the stage for images (a video provider makes clips only)."""
        return capability in self.capabilities.stages and not self.makes_clips

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
        return self.price.price_micro_usd((width, height), self.latency.per_image_s, steps=steps)


_NONE = IdentityInputs()
# The local provider makes clips of any length, shape and rate, from text or from a first frame.
LOCAL_CLIPS = VideoInputs(duration=DurationInput(min_s=0.5, max_s=60), first_frame=NamedInput(field="first_frame"))


class TierConfig(Frozen):
    latency_target_s: float = Field(gt=0, description="longest expected generation time for this tier")
    success_target: float = Field(0.95, gt=0, lt=1, description="P(enough candidates pass) to plan for")


class PlanningConfig(Frozen):
    max_candidates: int = Field(1000, ge=1)
    # Rework rounds the engine may count on when the deadline leaves time for them.
    max_rounds: int = Field(3, ge=1)
    # Time a round takes beyond generation: storing, scoring, the rework event.
    round_overhead_s: float = Field(5.0, ge=0)


def _default_tiers() -> dict[Tier, TierConfig]:
    return {
        "fast": TierConfig(latency_target_s=20),
        "stable": TierConfig(latency_target_s=60),
        "low-cost": TierConfig(latency_target_s=300),
    }


class Registry(Frozen):
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

    def pass_rate_priors(self) -> dict[str, PassRatePrior]:
        """Each provider's prior, and its priors per way of carrying a subject (`name+identity:lora`)."""
        priors = {name: config.pass_rate_prior for name, config in self.providers.items()}
        return priors | {f"{name}+identity:{mode}": prior for name, config in self.providers.items()
                         for mode, prior in config.identity_pass_rate_prior.items()}

    def trainers(self) -> list[ProviderConfig]:
        return [config for config in self.providers.values() if config.trainer is not None]

    def clip_makers(self, spec: VideoSpec, from_image: bool, *, model: str = "") -> tuple[list[str], list[str]]:
        """The providers whose models can make a clip of `spec` (from a still, or from the
        prompt), and why each other provider of clips cannot; only models named `model` count
        when one is given."""
        makers: list[str] = []
        reasons: list[str] = []
        for config in self.providers.values():
            pins = [pin for pin in config.models if not model or pin.name == model]
            if not config.makes_clips or not pins:
                continue
            if any(config.can_make_clip(pin, spec, from_image=from_image) for pin in pins):
                makers.append(config.name)
            else:
                reasons.append(f"{config.name}: {config.why_no_clip(pins[0], spec, from_image=from_image)}")
        return makers, reasons


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
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
