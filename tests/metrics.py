"""Reading one sample from a service's /metrics, and how often a thread has been woken."""

from pathlib import Path

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


def wakes(status: Path) -> int:
    """How often a thread has waited and been woken (the kernel's voluntary context switches),
    from its `status` under /proc: `/proc/thread-self/status`, or a process's main thread's,
    `/proc/<pid>/task/<pid>/status` (a service's event loop)."""
    for line in status.read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in {status}")

