"""Reading one sample from a service's /metrics."""

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric_value(base_url: str, name: str, **labels: str) -> float:
    """The sample `name` whose labels include `labels`; 0 when it has not been counted yet."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0
