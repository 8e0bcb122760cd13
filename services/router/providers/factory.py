"""Adapters built from the registry: one `Provider` per configured provider.

Each provider's adapter class is found by its name (`adapters.py`). The caller resolves
secrets (by the names the registry gives) and passes them in, with what the adapters
share (`ProviderContext`: the one HTTP client, the clock, the journal of remote jobs, the
callbacks inbox; an empty one where none is given).
"""

from collections.abc import Mapping

from services.router.providers.adapters import adapter_class
from services.router.providers.base import Provider, ProviderContext
from services.router.providers.registry import ProviderConfig, Registry, RegistryError


def build_provider(config: ProviderConfig, secret: str | None = None, *, context: ProviderContext | None = None) -> Provider:
    return adapter_class(config.adapter)(config, context or ProviderContext(), secret=secret)


def build_providers(registry: Registry, secrets: Mapping[str, str] | None = None,
                    *, context: ProviderContext | None = None) -> dict[str, Provider]:
    """Every provider of the registry; fails up front if a needed secret was not given."""
    secrets = secrets or {}
    context = context or ProviderContext()
    context.secrets = secrets
    named = {c.credentials for c in registry.providers.values() if c.credentials}
    named |= {c.webhooks.secret for c in registry.providers.values() if c.webhooks and c.webhooks.secret}
    missing = sorted(name for name in named if not secrets.get(name))
    if missing:
        raise RegistryError(f"no secret given for credentials: {', '.join(missing)}")
    return {name: build_provider(config, secrets.get(config.credentials or ""), context=context)
            for name, config in registry.providers.items()}
