"""What a job costs, counted and timed for bench/e2e.py: the figures the services count of
their own work, read from their /metrics (exact, and the same on any machine), and the CPU
seconds of every process behind the platform."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402

from genline_stack.embedded import EmbeddedStack  # noqa: E402
from genline_stack.fleet import SERVICES, ServiceFleet  # noqa: E402
from genline_stack.postgres import postmaster_of  # noqa: E402


# What the services count of their own work (services/common/telemetry.py), summed over the
# five: per job of the burst, these are exact and do not depend on the machine.
def every(labels: dict) -> bool:
    return True


COUNTED = {
    "pg_statements": ("genline_db_statements_total", every),
    # Of those, the ones a loop on a timer sent (a sweeper's round, a poll): they come with time, not jobs.
    "pg_statements_on_timers": ("genline_db_statements_total",
                                lambda labels: labels.get("source") not in ("work", "connection")),
    "s3_requests": ("genline_s3_requests_total", every),
    "records_produced": ("genline_outbox_relayed_total", every),
    "records_consumed": ("genline_events_consumed_total", every),
    "fetches": ("genline_bus_fetches_total", every),
    "fetches_with_records": ("genline_bus_fetches_total", lambda labels: labels.get("brought") == "yes"),
    "relay_passes": ("genline_outbox_relay_passes_total", every),
    "relay_passes_with_rows": ("genline_outbox_relay_passes_total", lambda labels: labels.get("found") == "yes"),
    "grpc_calls": ("genline_grpc_requests_total", every),
    "internal_http_calls": ("genline_http_requests_total", lambda labels: "/internal/" in labels.get("route", "")),
}


# Of these, shown service by service too: where the statements and requests to cut are.
BY_SERVICE = ("pg_statements", "s3_requests")

# What delivery's rendering workers spent on the files they rendered (decode, both watermarks,
# encode, thumbnail, sign), as delivery counts it: a CPU time, not an exact count, so kept
# apart from COUNTED; the part of delivery's CPU that goes with files, not with events.
RENDERING_CPU_S = ("genline_delivery_cpu_seconds_sum", lambda labels: labels.get("step") == "render")


def counted(fleet: ServiceFleet) -> dict[str, float]:
    """The COUNTED figures, summed over every service's /metrics now, those of BY_SERVICE for
    each service as well (`pg_statements ingest`), and `rendering_cpu_s`."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = dict.fromkeys(COUNTED, 0.0) | {f"{figure} {name}": 0.0 for figure in BY_SERVICE for name in SERVICES}
    totals["rendering_cpu_s"] = 0.0
    for name in SERVICES:
        text = httpx.get(f"{fleet.url(name)}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == RENDERING_CPU_S[0] and RENDERING_CPU_S[1](sample.labels):
                    totals["rendering_cpu_s"] += sample.value
                for figure, (metric, keep) in COUNTED.items():
                    if sample.name == metric and keep(sample.labels):
                        totals[figure] += sample.value
                        if figure in BY_SERVICE:
                            totals[f"{figure} {name}"] += sample.value
    return totals


class CpuMeter:
    """CPU seconds of the processes behind each part of the platform, between two reads.
    The PostgreSQL backends of the bench's own connections (`client_backends`, its watcher's)
    count with the bench client, not with the platform's PostgreSQL."""

    def __init__(self, stack: EmbeddedStack, fleet: ServiceFleet, pgdata: Path) -> None:
        self.parts = {name: psutil.Process(fleet.processes[name].pid) for name in SERVICES}
        self.parts |= {part: psutil.Process(server.pid) for part, server in stack.servers.items()}
        self.postgres = postmaster_of(pgdata)
        self.client = psutil.Process()
        self.client_backends: set[int] = set()

    def read(self) -> dict[str, float]:
        """Each part's CPU seconds so far; a service's with its live workers' (delivery's
        rendering processes)."""
        seconds = {name: _cpu(process) + (sum(_cpu(child) for child in _children(process)) if name in SERVICES else 0.0)
                   for name, process in self.parts.items()}
        seconds["postgres"] = server_cpu_s(self.postgres, leave_out=self.client_backends)
        seconds["bench client"] = _cpu(self.client) + sum(
            _cpu(child) for child in self.postgres.children(recursive=True) if child.pid in self.client_backends)
        return seconds


def server_cpu_s(postmaster: psutil.Process, leave_out: set[int] | frozenset[int] = frozenset()) -> float:
    """CPU seconds of a PostgreSQL server: the postmaster's own and its ended children's, and
    its live children's but those of the backends in `leave_out`."""
    return _cpu(postmaster, exited_children=True) + sum(
        _cpu(child) for child in postmaster.children(recursive=True) if child.pid not in leave_out)


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cpu(process: psutil.Process, exited_children: bool = False) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    own = times.user + times.system
    return own + (times.children_user + times.children_system if exited_children else 0.0)
