"""Adapters by name, so that a new provider API is one new module in this package (or a package
of its own, when it has several: fal/, replicate/, local/).

An adapter module decorates its class with `@adapter("name")`; the package's modules, and
those of the packages in it, are imported the first time a name is looked up (the registry
checks `adapter:` against them).
The class says what its configuration needs through `AdapterTraits`: an endpoint, an API
key, the hosts its key may go to besides its endpoint's, how its models take their inputs
when providers.yaml does not say, whether it runs stages other than generate, and a model
of the adapter's own `options`.
"""

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from services.router.providers.base import Provider, ProviderContext
from services.router.providers.inputs import ModelInputs

_CLASSES: dict[str, "AdapterClass"] = {}
_Class = TypeVar("_Class", bound=type)
_discovered = False


class NoOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, kw_only=True)
class AdapterTraits:
    needs_endpoint: bool = True
    needs_credentials: bool = True
    runs_stages: bool = False
    # Whether it can run video models (capabilities.video): submit, wait minutes, fetch one clip.
    makes_clips: bool = False
    # Whether it can train a subject's identity (a provider's `trainer`): trainers.py finds its trainer.
    trains: bool = False
    # Whether its API keeps files its models read (hosted_files.py): a subject's photos reach a
    # reference model or a trainer there, never inline.
    hosts_files: bool = False
    default_endpoint: str | None = None
    # Hosts (fnmatch patterns, `host` or `host:port`) the API key may go to besides the endpoint's.
    credential_hosts: tuple[str, ...] = ()
    default_inputs: ModelInputs = field(default_factory=ModelInputs)
    options: type[BaseModel] = NoOptions
    # How the API bills an image's megapixels when its price is per megapixel (entry_parts.PriceModel).
    megapixels: str = "exact"


class AdapterClass(Protocol):
    """What the registry and the factory use of an adapter's class."""

    __qualname__: str
    traits: AdapterTraits

    def __call__(self, config: "Configured", context: ProviderContext, secret: str | None = None) -> Provider: ...

    def check_config(self, config: "Configured", options: Any) -> None: ...


def adapter(name: str) -> Callable[[_Class], _Class]:
    """Register the decorated class as the adapter called `name` in providers.yaml."""
    def register(cls: _Class) -> _Class:
        entry = cast(AdapterClass, cls)  # a provider class with `traits` and `check_config`
        if name in _CLASSES and _CLASSES[name] is not entry:
            raise ValueError(f"two adapters are called {name!r}: {_CLASSES[name].__qualname__} and {cls.__qualname__}")
        _CLASSES[name] = entry
        return cls
    return register


def adapter_class(name: str) -> AdapterClass:
    _discover()
    if name not in _CLASSES:
        raise ValueError(f"unknown adapter {name!r}; known: {', '.join(known_adapters())}")
    return _CLASSES[name]


def known_adapters() -> list[str]:
    _discover()
    return sorted(_CLASSES)


def traits_of(name: str) -> AdapterTraits:
    return adapter_class(name).traits


class Configured(Protocol):
    """What of a provider's configuration (registry.ProviderConfig) its adapter reads here."""

    @property
    def adapter(self) -> str: ...

    @property
    def options(self) -> Mapping[str, Any]: ...


def adapter_options(config: Configured) -> Any:
    """The provider's `options`, read by its adapter's model of them."""
    return traits_of(config.adapter).options.model_validate(config.options)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("services.router.providers")
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        importlib.import_module(module.name)
    _discovered = True
