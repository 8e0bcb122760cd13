"""Adapters built from the registry: one `Provider` per configured provider.

The caller resolves secrets (by the names the registry gives) and passes them in, with
the one shared `httpx.AsyncClient` every HTTP adapter uses.
"""

from collections.abc import Mapping

import httpx

from services.router.clock import Clock
from services.router.providers.base import Provider
from services.router.providers.comfyui import ComfyUIProvider
from services.router.providers.fal import FalProvider
from services.router.providers.local_provider import LocalProvider
from services.router.providers.registry import ProviderConfig, Registry, RegistryError
from services.router.providers.remote import RemoteProvider
from services.router.providers.replicate import ReplicateProvider

HTTP_ADAPTER_CLASSES: dict[str, type[RemoteProvider]] = {
    "fal": FalProvider,
    "replicate": ReplicateProvider,
    "comfyui": ComfyUIProvider,
}


def build_provider(config: ProviderConfig, client: httpx.AsyncClient | None, secret: str | None = None,
                   clock: Clock | None = None) -> Provider:
    if config.adapter == "local":
        return LocalProvider(config, clock)
    if client is None:
        raise ValueError(f"provider {config.name!r} ({config.adapter}) needs an httpx.AsyncClient")
    return HTTP_ADAPTER_CLASSES[config.adapter](config, client, secret, clock)


def build_providers(registry: Registry, client: httpx.AsyncClient | None = None,
                    secrets: Mapping[str, str] | None = None, clock: Clock | None = None) -> dict[str, Provider]:
    """Every provider of the registry; fails up front if a needed secret was not given."""
    secrets = secrets or {}
    missing = sorted({c.credentials for c in registry.providers.values()
                      if c.credentials and c.adapter in ("fal", "replicate") and not secrets.get(c.credentials)})
    if missing:
        raise RegistryError(f"no secret given for credentials: {', '.join(missing)}")
    return {name: build_provider(config, client, secrets.get(config.credentials or ""), clock)
            for name, config in registry.providers.items()}
