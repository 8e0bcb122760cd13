"""Adapters built from the registry: one `Provider` per configured provider.

Each provider's adapter class is found by its name (`adapters.py`). The caller resolves
secrets (by the names the registry gives) and passes them in, with what the adapters
share (`ProviderContext`: the one HTTP client, the clock, the journal of remote jobs, the
callbacks inbox).
"""

from collections.abc import Mapping

import httpx

from services.router.clock import Clock
from services.router.providers.adapters import adapter_class
from services.router.providers.base import Provider, ProviderContext
from services.router.providers.registry import ProviderConfig, Registry, RegistryError


def build_provider(config: ProviderConfig, client: httpx.AsyncClient | None = None, secret: str | None = None,
                   clock: Clock | None = None, context: ProviderContext | None = None) -> Provider:
    context = context or ProviderContext(client=client, clock=clock)
    return adapter_class(config.adapter)(config, context, secret)


def build_providers(registry: Registry, client: httpx.AsyncClient | None = None,
                    secrets: Mapping[str, str] | None = None, clock: Clock | None = None,
                    context: ProviderContext | None = None) -> dict[str, Provider]:
    """Every provider of the registry; fails up front if a needed secret was not given."""
    secrets = secrets or {}
    context = context or ProviderContext(client=client, clock=clock)
    context.secrets = secrets
    named = {c.credentials for c in registry.providers.values() if c.credentials}
    named |= {c.webhooks.secret for c in registry.providers.values() if c.webhooks and c.webhooks.secret}
    missing = sorted(name for name in named if not secrets.get(name))
    if missing:
        raise RegistryError(f"no secret given for credentials: {', '.join(missing)}")
    return {name: build_provider(config, secret=secrets.get(config.credentials or ""), context=context)
            for name, config in registry.providers.items()}
