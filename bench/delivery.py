"""Delivery under a flood: how long another tenant's one-image job takes while one tenant's flood
of jobs of many images drains, against the same job on an idle platform.

Starts the embedded stack and the five services as separate processes (bench/e2e.py's platform),
with bench/e2e.py's local provider, which paints without latency or defects and takes 64 calls
at once; its paintings are made on this machine's cores by the router's painting workers, in
fair turns by tenant (services/router/providers/local/painting_workers.py). (With its calls bounded
by the cores instead, the one-image job waited for one of the flood's calls of 8 paintings to
end before its own could start.) Then:

1. idle: --probes one-image jobs of a second tenant, one after another; each job's time from its
   202 to final and settled;
2. flood: the first tenant submits --flood jobs of --images images (as many candidates), all
   at once; once the flood has reached delivery, the second tenant's --probes one-image jobs
   again, one after another, each timed the same way, and each stage's share of it (from the
   job's own timestamps: to admitted, generating, scoring, delivering and succeeded);
3. while the flooded probes ran, each part's share of the CPU spent (the services with their
   workers, the broker, PostgreSQL, the S3 server);
4. the flood drained: how long it took, the most of its jobs in `delivering` at once (sampled
   from ingest's read model), and, from delivery's /metrics, the CPU its rendering workers spent
   a file and the invisible watermark's CPU a megapixel.

The platform runs on this machine's cores, all of them shared by every service, the broker,
PostgreSQL and the S3 server; the ratio is what it is here.

The last line: `delivery: idle_s=<median> flood_s=<median> ratio=<flood/idle> flood_jobs=<>
images=<> drained_s=<> max_delivering=<> render_cpu_ms=<a file> watermark_ms_per_mp=<>` (one line).

    python bench/delivery.py [--flood 120] [--images 8] [--side 1024] [--probes 3]
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.costs import CpuMeter  # noqa: E402
from bench.e2e import PROMPT, PROVIDERS_YAML, submit, tenant  # noqa: E402
from bench.watcher import Watcher  # noqa: E402
from genline_stack.embedded import EmbeddedStack  # noqa: E402
from genline_stack.fleet import ServiceFleet  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402


def start_platform(data_dir: Path) -> tuple[EmbeddedStack, Any, ServiceFleet]:
    stack = EmbeddedStack(data_dir=data_dir)
    endpoints = stack.start()
    providers = data_dir / "providers.yaml"
    providers.write_text(PROVIDERS_YAML)
    return stack, endpoints, ServiceFleet(endpoints=endpoints, log_dir=data_dir / "logs",
                                          extra_env={"GENLINE_PROVIDERS_PATH": str(providers)})


def body(images: int, side: int, seed: int) -> dict:
    return {"prompt": PROMPT, "images": images, "candidates": images, "width": side, "height": side, "seed": seed}


HOPS = ("admitted", "generating", "scoring", "delivering", "succeeded")


@dataclass
class Probe:
    """One one-image job: seconds from its 202 to final and settled, and to each state from the last."""

    total_s: float
    hops_s: dict[str, float]
    provider_s: float = 0.0  # of `generating`, the provider's own call (the painting, here)


def probe(http: httpx.Client, watcher: Watcher, side: int, seed: int) -> Probe:
    job_id = submit(http, watcher, body(1, side, seed))
    while job_id not in watcher.done:
        watcher.poll()
        time.sleep(0.05)
    accepted, settled = watcher.done[job_id]
    view = http.get(f"/v1/jobs/{job_id}").json()
    times = {state: datetime.fromisoformat(at).timestamp() for state, at in view["timestamps"].items()}
    previous, hops = times.get("submitted", accepted), {}
    for state in HOPS:
        if state in times:
            hops[state], previous = times[state] - previous, times[state]
    provider_s = sum(stage["latency_ms"] for stage in view.get("stages", []) if stage["stage"] == "generate") / 1000
    return Probe(settled - accepted, hops, provider_s)


class Delivering:
    """Samples how many jobs are in `delivering` at once, every half second, in a thread."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.most, self.stopped = 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def now(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM ingest.jobs WHERE state = 'delivering'").fetchone()
        return int(row[0]) if row else 0

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.most = max(self.most, self.now())

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def metric_sums(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def per(sums: dict[str, float], histogram: str) -> float:
    count = sums.get(f"{histogram}_count", 0.0)
    return sums.get(f"{histogram}_sum", 0.0) / count if count else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=120, help="the flood's jobs")
    parser.add_argument("--images", type=int, default=8, help="images a flood job delivers")
    parser.add_argument("--side", type=int, default=1024, help="pixels a side of every image")
    parser.add_argument("--probes", type=int, default=3, help="the other tenant's one-image jobs, idle and flooded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genline-bench-delivery-") as folder:
        stack, endpoints, fleet = start_platform(Path(folder))
        try:
            fleet.start_all(timeout_s=600)  # a busy machine starts five services slowly
            flooder, other = tenant(endpoints), tenant(endpoints)
            watcher = Watcher(endpoints.database_url, interval_s=0.05)
            meter = CpuMeter(stack, fleet, Path(folder) / "pgdata")
            meter.client_backends = watcher.backend_pids
            with httpx.Client(base_url=fleet.url("ingest"), headers={"Authorization": f"Bearer {other}"},
                              timeout=60) as other_http, \
                    httpx.Client(base_url=fleet.url("ingest"), headers={"Authorization": f"Bearer {flooder}"},
                                 timeout=60) as flood_http:
                probe(other_http, watcher, args.side, 1)  # warms every service up (and the workers)
                idle = [probe(other_http, watcher, args.side, 10 + n) for n in range(args.probes)]
                delivering = Delivering(endpoints.database_url)
                started = time.monotonic()
                flood = [submit(flood_http, watcher, body(args.images, args.side, 100 + n)) for n in range(args.flood)]
                while delivering.now() < 4 and time.monotonic() - started < 600:  # the flood has reached delivery
                    time.sleep(0.5)
                before = meter.read()
                flooded = [probe(other_http, watcher, args.side, 20 + n) for n in range(args.probes)]
                during = {part: seconds - before[part] for part, seconds in meter.read().items()}
                watcher.wait_all(len(watcher.done) + len(watcher.pending), timeout_s=7200)
                drained = time.monotonic() - started
                delivering.stop()
            sums = metric_sums(fleet.url("delivery"))
        finally:
            with signals_held():
                fleet.stop_all()
                stack.stop()
    idle_s, flood_s = statistics.median(p.total_s for p in idle), statistics.median(p.total_s for p in flooded)
    print(f"{'one-image job, seconds':<34}{'idle (median)':>14}{'under the flood (median)':>26}")
    print(f"{'  202 to final and settled':<34}{idle_s:>14.2f}{flood_s:>26.2f}")
    for hop in HOPS:
        print(f"{'  to ' + hop:<34}{statistics.median(p.hops_s.get(hop, 0) for p in idle):>14.2f}"
              f"{statistics.median(p.hops_s.get(hop, 0) for p in flooded):>26.2f}")
        if hop == "scoring":  # the hop that generates: how much of it the provider's call took
            print(f"{'    of it the provider call':<34}{statistics.median(p.provider_s for p in idle):>14.2f}"
                  f"{statistics.median(p.provider_s for p in flooded):>26.2f}")
    print(f"  each: idle {', '.join(f'{p.total_s:.2f}' for p in idle)};"
          f" flooded {', '.join(f'{p.total_s:.2f}' for p in flooded)}")
    spent = sum(during.values())
    print("CPU while the flooded probes ran, by part: " + ", ".join(
        f"{part} {seconds / spent:.0%}" for part, seconds in sorted(during.items(), key=lambda item: -item[1])))
    print(f"flood: {len(flood)} jobs of {args.images} images at {args.side} px, drained in {drained:.0f} s,"
          f" at most {delivering.most} jobs in delivering at once")
    render_ms = per(sums, "genline_delivery_cpu_seconds") * 1000
    watermark_ms = per(sums, "genline_watermark_embed_seconds_per_megapixel") * 1000
    print(f"delivery's workers: {render_ms:.0f} ms of CPU a file; the watermark {watermark_ms:.1f} ms a megapixel")
    print(f"delivery: idle_s={idle_s:.2f} flood_s={flood_s:.2f} ratio={flood_s / idle_s:.1f} flood_jobs={len(flood)}"
          f" images={args.images} drained_s={drained:.0f} max_delivering={delivering.most}"
          f" render_cpu_ms={render_ms:.0f} watermark_ms_per_mp={watermark_ms:.1f}")


if __name__ == "__main__":
    run_stoppable(main)
