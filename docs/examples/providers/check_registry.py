"""Check a provider registry before a router loads it: every entry is valid, and every
`credentials` name it uses is a key of GENLINE_PROVIDER_SECRETS."""

import json
import os

from services.router.providers.registry import load_registry

# GENLINE_PROVIDERS_PATH as the router reads it; unset, the registry shipped with the router.
registry = load_registry(os.environ.get("GENLINE_PROVIDERS_PATH"))  # RegistryError names the entry and field
secrets = json.loads(os.environ.get("GENLINE_PROVIDER_SECRETS", "{}"))

missing = []
for name, provider in registry.providers.items():
    models = ", ".join(f"{pin.name}@{pin.version}" for pin in provider.models)
    print(f"{name:26} {provider.adapter:18} {','.join(provider.capabilities.stages):18} {models}")
    if provider.credentials and provider.credentials not in secrets:
        missing.append(f"{name} needs {provider.credentials}")

assert not missing, "GENLINE_PROVIDER_SECRETS lacks keys: " + "; ".join(missing)
print(f"{len(registry.providers)} providers load, and every key they name is set")
