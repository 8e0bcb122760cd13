"""The provider registry: the shipped YAML, prices, pinned models and validation errors."""

import copy
from pathlib import Path

import pytest
import yaml

from services.router.providers.base import ProviderContext
from services.router.providers.entry_parts import PriceModel
from services.router.providers.factory import build_providers
from services.router.providers.local.provider import LocalProvider
from services.router.providers.registry import RegistryError, load_registry, parse_registry

FAL = {
    "adapter": "fal",
    "endpoint": "https://queue.fal.run",
    "credentials": "FAL_KEY",
    "models": [{"name": "flux-schnell", "version": "2024-08", "remote_id": "fal-ai/flux/schnell"}],
    "price": {"per_megapixel_micro_usd": 3000},
    "concurrency": 4,
}


def registry_error(**fal_changes) -> str:
    entry = copy.deepcopy(FAL) | fal_changes
    with pytest.raises(RegistryError) as raised:
        parse_registry({"providers": {"fal-flux": entry}}, "test.yaml")
    return str(raised.value)


def test_shipped_registry_has_several_distinct_local_providers():
    registry = load_registry()
    local = {name: p for name, p in registry.providers.items()
             if p.adapter == "local" and p.runs("generate") and not p.capabilities.subjects_only}
    assert {"local-standard", "local-budget", "local-premium"} <= set(local)
    prices = {p.list_price_micro_usd(1024, 1024) for p in local.values()}
    defects = {p.local_options.defect_rate for p in local.values()}
    latencies = {p.latency.batch_s(1) for p in local.values()}
    assert len(prices) == len(defects) == len(latencies) == len(local)
    assert set(registry.tiers) == {"fast", "stable", "low-cost"}
    assert registry.tiers["fast"].latency_target_s < registry.tiers["low-cost"].latency_target_s
    stages = {stage for p in registry.providers.values() for stage in p.capabilities.stages}
    assert stages == {"preprocess", "remove_background", "generate", "stylize", "upscale", "animate", "postprocess"}


def test_shipped_registry_builds_offline_without_secrets():
    registry = load_registry()
    providers = build_providers(registry)
    assert all(isinstance(p, LocalProvider) for p in providers.values())


def test_price_model_adds_image_megapixel_and_second_parts():
    price = PriceModel(per_image_micro_usd=1_000, per_megapixel_micro_usd=4_000, per_second_micro_usd=500)
    assert price.price_micro_usd((1000, 1000), seconds=0) == 5_000
    assert price.price_micro_usd((1024, 1024), seconds=2) == 1_000 + round(4_000 * 1.048576) + 1_000
    assert price.price_micro_usd((512, 512), seconds=-1) == 1_000 + round(4_000 * 0.262144)


def test_pinned_model_version_matches_exactly():
    registry = parse_registry({"providers": {"fal-flux": FAL}})
    config = registry.provider("fal-flux")
    assert config.model_for("flux-schnell", "2024-08").remote == "fal-ai/flux/schnell"
    assert config.model_for("flux-schnell", None).version == "2024-08"
    assert config.model_for("flux-schnell", "2024-09") is None
    assert config.model_for(None, None).name == "flux-schnell"


def test_validation_errors_say_where(tmp_path):
    message = registry_error(price={"per_image_micro_usd": -5})
    assert "test.yaml" in message
    assert "providers.fal-flux.price.per_image_micro_usd" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"adapter": "comfyui", "endpoint": None, "credentials": None}, "needs an endpoint"),
        ({"endpoint": "queue.fal.run"}, "http:// or https://"),
        ({"credentials": None}, "needs credentials"),
        ({"credentials": "key-8f2c:77ab91"}, "name of a secret"),
        ({"adapter": "midjourney"}, "adapter"),
        ({"concurrency": 0}, "concurrency"),
        ({"models": []}, "models"),
        ({"timeouts": {"submit_s": 30, "overall_s": 10}}, "must not exceed overall_s"),
        ({"models": [{"name": "m", "version": "1"}, {"name": "m", "version": "1"}]}, "listed once"),
        ({"local": {"defect_rate": 0.1}}, "only to adapter 'local'"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_provider_entries_are_rejected_clearly(change, expected):
    assert expected in registry_error(**change)


def test_local_provider_takes_no_endpoint():
    local = {"adapter": "local", "endpoint": "http://x", "models": [{"name": "m", "version": "1"}],
             "price": {"per_image_micro_usd": 1}, "concurrency": 1}
    with pytest.raises(RegistryError, match="takes no endpoint"):
        parse_registry({"providers": {"l": local}})


def test_registry_needs_every_tier_and_a_provider():
    with pytest.raises(RegistryError, match="providers"):
        parse_registry({"providers": {}})
    with pytest.raises(RegistryError, match="low-cost"):
        parse_registry({"providers": {"f": FAL}, "tiers": {"fast": {"latency_target_s": 5},
                                                            "stable": {"latency_target_s": 50}}})


def test_unreadable_or_malformed_files_are_reported(tmp_path):
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: [unclosed\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(broken)


def test_building_providers_needs_the_named_secrets():
    registry = parse_registry({"providers": {"fal-flux": FAL}})
    with pytest.raises(RegistryError, match="FAL_KEY"):
        build_providers(registry, secrets={})


def test_every_configuration_example_in_the_docs_loads():
    """docs/examples/providers/*.yaml, which docs/guides/providers.md shows: each a list or
    mapping of provider entries, or a whole registry (`providers:`)."""
    examples = sorted((Path(__file__).parents[2] / "docs" / "examples" / "providers").glob("*.yaml"))
    assert len(examples) >= 8
    for example in examples:
        data = yaml.safe_load(example.read_text())
        registry = parse_registry(data if isinstance(data, dict) and "providers" in data else {"providers": data},
                                  str(example.relative_to(Path(__file__).parents[2])))
        assert registry.providers, example.name


@pytest.mark.parametrize("path", ["services/router/providers.yaml", "deploy/k8s/base/router/providers.yaml"])
def test_the_hosted_examples_commented_in_the_registry_load(path):
    text = (Path(__file__).parents[2] / path).read_text()
    commented = text[text.index("# Hosted providers"):].splitlines()
    entries = "\n".join(line[2:] for line in commented if line.startswith("#  "))
    registry = parse_registry({"providers": yaml.safe_load(entries)}, path)
    assert {"replicate", "fal", "openai", "bfl", "runware", "comfyui"} <= {p.adapter for p in registry.providers.values()}


def test_a_new_api_is_one_class_registered_by_name(client):
    """What an adapter module does: register a class; the registry and factory find it by name."""
    from services.router.providers.adapters import AdapterTraits, adapter, known_adapters
    from services.router.providers.remote import RemoteProvider
    from services.router.providers.remote_calls import OutputImage, RemoteOutput

    @adapter("echo-test")
    class EchoProvider(RemoteProvider):
        traits = AdapterTraits(needs_credentials=False)

        async def _submit(self, call):
            return RemoteOutput(images=(OutputImage(url=f"{self.config.base_url}/files/none/0.png"),))

    entry = {"adapter": "echo-test", "endpoint": "http://127.0.0.1:9", "models": [{"name": "m", "version": "1"}],
             "price": {"per_image_micro_usd": 1}, "concurrency": 1}
    providers = build_providers(parse_registry({"providers": {"echo": entry}}), context=ProviderContext(client=client))
    assert isinstance(providers["echo"], EchoProvider) and "echo-test" in known_adapters()
    assert {"replicate", "fal", "comfyui", "openai", "openai-compatible", "bfl", "stability", "runware",
            "local"} <= set(known_adapters())
