"""End-to-end overhead: what the platform costs per job, beside the work a job needs.

Starts the embedded stack and the five services as separate processes, with one local
provider that paints without latency or defects, and runs in one go:

1. Sequential: --sequential jobs (1 image of 2 candidates, --side pixels square), one at a
   time; latency from the 202 to the job final and settled in ingest's read model, and the
   median of each hop, from the job's own timestamps (each the time an event was made).
2. With --history N: N records of history put on the topics the services read (the events
   of the sequential jobs published again, round and round, which every inbox skips), then
   the sequential jobs once more, on a stack that has carried that history: their p50
   against the fresh stack's.
3. Idle: --idle seconds with nothing asked, each part's CPU ms a second (what keeping the
   platform up costs: its timers, heartbeats and looks for work).
4. Burst: --burst jobs of 4 candidates from --clients clients at once; jobs/s from the
   first 202 to the last job settled, latency under load, and CPU milliseconds per job of
   each service, the broker, PostgreSQL (every backend but those of this client's own
   connections, which count with the client), the S3 server and this client, each with its
   share of the platform's and what it spends outside the work (delivery's, with what its
   workers spent rendering files);
   and, counted by the services themselves (their /metrics before and after), per job:
   SQL statements (and of them, those loops on timers sent), S3 requests, records produced and consumed, fetch requests (and those
   that brought records), relay passes, gRPC calls
   and internal HTTP calls. Those counts are exact and machine-independent.
5. Baseline: the same work in this process without the bus, one job after another, on one
   core: paint the candidates, score them in one batch, put the best in S3 and sign its
   link, one INSERT. Its median time per job, for the sequential job and for the burst's, and
   the CPU time of its painting and of its scoring; and, for reference, the sequential job's
   time on every core (its candidates scored side by side).

The platform's CPU per job outside painting and scoring is its CPU per burst job less the
CPU the baseline's painting and scoring took for the same job: CPU time, which a busy
machine does not stretch as it stretches wall time.

The last line: `e2e: p50_ms p99_ms jobs_per_s baseline_ms overhead_factor throughput_ratio`,
where baseline_ms is the sequential job's in-process time on one core, overhead_factor =
p50 / baseline_ms and throughput_ratio = jobs_per_s × the burst job's in-process ms / 1000
(at 1, the platform on every core keeps pace with one process doing the burst's work on one
core) and idle_cpu_ms_per_s the idle platform's CPU; with --history, a second line
`history: records p50_fresh_ms p50_after_ms ratio`.

    python bench/e2e.py [--sequential 40] [--burst 300] [--clients 4] [--side 128] [--history 0]
                        [--idle 10] [--kafka-plaintext]   (the broker is behind TLS by default, as `make run` has it)
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.costs import BY_SERVICE, COUNTED, CpuMeter, counted  # noqa: E402
from bench.history import load_history  # noqa: E402
from bench.watcher import Watcher  # noqa: E402
from genline_stack.embedded import EmbeddedStack, Endpoints  # noqa: E402
from genline_stack.fleet import SERVICES, ServiceFleet  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402
from services.common.quality.profiles import job_profile  # noqa: E402
from services.common.settings import ServiceSettings  # noqa: E402
from services.common.storage import Blob, ObjectStore  # noqa: E402
from services.ingest.accounts import Tenant, create_tenant  # noqa: E402
from services.ingest.settings import IngestSettings  # noqa: E402
from services.ledger.app import grant  # noqa: E402
from services.ledger.records import CreditGrant  # noqa: E402
from services.ledger.settings import LedgerSettings  # noqa: E402
from services.router.providers.local.painter import CandidateRange, LocalGenerator  # noqa: E402
from services.scorer.dimensions import Equipment, Scorer, Scoring  # noqa: E402
from services.scorer.dimensions.tiers import Enough  # noqa: E402

PROMPT = "a red bicycle against a brick wall"
# The job's states in the order they are reached, and the hop that leads to each.
HOPS = (("admitted", "ingest → ledger: reserve"),
        ("generating", "ledger → router: attempt starts"), ("scoring", "router: paint, store"),
        ("delivering", "router → scorer: fetch, score"), ("succeeded", "scorer → delivery: copy, sign"))
PROVIDERS_YAML = """
providers:
  local-bench:
    adapter: local
    models:
      - {name: local-painter, version: "1"}
    capabilities: {max_side: 2048, max_megapixels: 4.2, max_images_per_request: 8}
    price: {per_image_micro_usd: 4000}
    concurrency: 64
    latency: {base_s: 0, per_image_s: 0}
    pass_rate_prior: {mean: 0.95, strength: 4}
    local: {defect_rate: 0.0, failure_rate: 0.0, latency_s: 0}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def slow_jobs(latencies: list[float]) -> int:
    """How many took more than twice the median: on this bench's 40 jobs p99 is the slowest
    one's latency, so this says whether a slow job is one or many."""
    median = statistics.median(latencies)
    return sum(latency > 2 * median for latency in latencies)


def job_body(side: int, candidates: int, seed: int) -> dict:
    return {"prompt": PROMPT, "images": 1, "candidates": candidates, "width": side, "height": side, "seed": seed}


# ---- the platform ---------------------------------------------------------------------


def submit(http: httpx.Client, watcher: Watcher, body: dict) -> str:
    key = {"Idempotency-Key": str(uuid.uuid4())}  # a retry after a dropped keep-alive is the same job
    try:
        response = http.post("/v1/jobs", json=body, headers=key)
    except httpx.TransportError:
        response = http.post("/v1/jobs", json=body, headers=key)
    at = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"submission refused: {response.status_code} {response.text}")
    job_id = response.json()["id"]
    watcher.submitted(job_id, at)
    return job_id


def hop_medians(views: list[dict], done: dict[str, tuple[float, float]]) -> list[tuple[str, float]]:
    """Median ms of each hop, state to state from submission, then final to settled seen."""
    hops: dict[str, list[float]] = {name: [] for _, name in HOPS} | {"ledger → ingest: settled, projected": []}
    for view in views:
        settled = done[view["id"]][1]
        times = {state: datetime.fromisoformat(at).timestamp() for state, at in view["timestamps"].items()}
        previous = times["submitted"]
        for state, name in HOPS:
            if state in times:
                hops[name].append((times[state] - previous) * 1000)
                previous = times[state]
        hops["ledger → ingest: settled, projected"].append((settled - previous) * 1000)
    return [(name, statistics.median(values)) for name, values in hops.items() if values]


def sequential(http: httpx.Client, watcher: Watcher, jobs: int, side: int) -> tuple[list[float], list]:
    for i in range(jobs):
        submit(http, watcher, job_body(side, 2, i))
        watcher.wait_all(i + 1, 120)
    latencies = [(seen - accepted) * 1000 for accepted, seen in watcher.done.values()]
    return latencies, hop_medians(list(watcher.views(list(watcher.done)).values()), watcher.done)


def burst(fleet_url: str, api_key: str, watcher: Watcher, meter: CpuMeter, jobs: int, clients: int,
          side: int) -> dict:
    meter.client_backends = watcher.backend_pids
    before = meter.read()
    started = time.time()

    def client(offset: int) -> None:
        with httpx.Client(base_url=fleet_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as http:
            for i in range(offset, jobs, clients):
                submit(http, watcher, job_body(side, 4, 10_000 + i))

    with ThreadPoolExecutor(clients) as pool:
        submitting = [pool.submit(client, offset) for offset in range(clients)]
        watcher.wait_all(jobs, 600)
        for future in submitting:
            future.result()
    finished = max(seen for _, seen in watcher.done.values())
    after = meter.read()
    latencies = [(seen - accepted) * 1000 for accepted, seen in watcher.done.values()]
    return {"jobs_per_s": jobs / (finished - started), "latencies": latencies, "seconds": finished - started,
            "cpu_ms": {name: (after[name] - before[name]) * 1000 / jobs for name in after}}


def idle(meter: CpuMeter, seconds: float) -> dict[str, float]:
    """Each part's CPU ms a second while nothing is asked of the platform, after a pause for
    what the last jobs left to do: what it costs to keep the platform up."""
    time.sleep(2)
    before = meter.read()
    time.sleep(seconds)
    after = meter.read()
    return {name: (after[name] - before[name]) * 1000 / seconds for name in after}


# ---- the same work in one process -----------------------------------------------------


@contextlib.contextmanager
def on_one_core() -> Iterator[None]:
    """This thread, and the threads it starts, run on one core (where the OS can pin them)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


@dataclass
class InProcess:
    """Median ms per job of the in-process work (its time, for latencies), and the CPU ms of
    its painting and scoring (for what the platform spends beside them)."""

    total_ms: float
    paint_ms: float
    score_ms: float


async def in_process(endpoints: Endpoints, jobs: int, side: int, candidates: int,
                     threads: int | None = None) -> InProcess:
    """Paint, score in one batch (on `threads`, every core by default), store the best with a
    link, one INSERT: per job."""
    generator = LocalGenerator(side, side, defect_rate=0.0)
    profile = job_profile("generic")
    store = ObjectStore(endpoints.settings(ServiceSettings))
    totals, paints, scores = [], [], []
    with Scorer(Equipment(load_entry_points=False, threads=threads)) as scorer:
        conn = await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True)
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_delivered (job_id uuid PRIMARY KEY, key text,"
                           " url text, score float8)")
        for i in range(jobs + 3):  # the first few warm up
            clock, cpu = time.perf_counter(), time.process_time()
            painted = generator.paint(CandidateRange(prompt=PROMPT, seed=i, count=candidates))
            painted_cpu = time.process_time()
            # As the scorer service scores an attempt: in tiers, until the job's one image is known.
            scoring = Scoring(profile=profile, prompt=PROMPT, requested_size=(side, side), tiered=True,
                              enough=Enough(images=1, indices=tuple(range(candidates))))
            verdicts = scorer.score([p.png for p in painted], scoring)
            scored_cpu = time.process_time()
            best = max(range(candidates), key=lambda n: (verdicts[n].passed, verdicts[n].score))
            job_id = uuid.uuid4()
            key = f"bench/{job_id}/1.png"
            await store.put(store.public_bucket, key, content=Blob(painted[best].png, "image/png"))
            url = store.presign_get(store.public_bucket, key, ttl_s=3600)
            await conn.execute("INSERT INTO bench_delivered VALUES (%s, %s, %s, %s)",
                               [job_id, key, url, verdicts[best].score])
            totals.append((time.perf_counter() - clock) * 1000)
            # By CPU time, this process's (every thread of it): on a busy machine the wall time
            # of painting and scoring grows with whatever else runs, and what the platform was
            # said to spend beside them came out below zero.
            paints.append((painted_cpu - cpu) * 1000)
            scores.append((scored_cpu - painted_cpu) * 1000)
        await conn.close()
    await store.aclose()
    return InProcess(*(statistics.median(values[3:]) for values in (totals, paints, scores)))


# ---- the run --------------------------------------------------------------------------


def start_platform(data_dir: Path, kafka_tls: bool = True):
    stack = EmbeddedStack(data_dir=data_dir, kafka_tls=kafka_tls)
    endpoints = stack.start()
    providers = data_dir / "providers.yaml"
    providers.write_text(PROVIDERS_YAML)
    fleet = ServiceFleet(endpoints=endpoints, log_dir=data_dir / "logs", extra_env={"GENLINE_PROVIDERS_PATH": str(providers)})
    return stack, endpoints, fleet


def tenant(endpoints: Endpoints) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    api_key = asyncio.run(create_tenant(endpoints.settings(IngestSettings), Tenant(name, plan="enterprise")))
    asyncio.run(grant(endpoints.settings(LedgerSettings), CreditGrant(tenant_id=name, amount=10_000_000, source="admin", reason="bench")))
    return api_key


def report(args, seq_latencies, hops, load: dict, seq_work: InProcess, burst_work: InProcess, every_core: InProcess,
           history: dict | None, idle_ms: dict[str, float]) -> None:
    p50, p99 = percentile(seq_latencies, 50), percentile(seq_latencies, 99)
    print(f"\nsequential: {len(seq_latencies)} jobs of 1 image from 2 candidates, {args.side}×{args.side}")
    print(f"  202 → final and settled: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(seq_latencies):.0f} ms;"
          f" {slow_jobs(seq_latencies)} over twice the median")
    for name, ms in hops:
        print(f"  {name:<40} median {ms:7.1f} ms")
    if history:
        print(f"\nhistory: {history['records']} records put on the topics and read by every service in"
              f" {history['seconds']:.0f} s; then {len(history['latencies'])} sequential jobs:"
              f" p50 {percentile(history['latencies'], 50):.0f} ms, p99 {percentile(history['latencies'], 99):.0f} ms")
    idle_platform = sum(ms for name, ms in idle_ms.items() if name != "bench client")
    print(f"\nidle ({args.idle:g} s, nothing asked): the platform {idle_platform:.1f} ms of CPU a second; "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(idle_ms.items(), key=lambda item: -item[1])
                      if name != "bench client"))
    print(f"\nburst: {args.burst} jobs of 1 image from 4 candidates, {args.clients} clients")
    print(f"  {load['jobs_per_s']:.1f} jobs/s ({load['seconds']:.1f} s); latency p50"
          f" {percentile(load['latencies'], 50):.0f} ms, p99 {percentile(load['latencies'], 99):.0f} ms")
    platform_ms = sum(ms for name, ms in load["cpu_ms"].items() if name != "bench client")
    work = {"router": burst_work.paint_ms, "scorer": burst_work.score_ms}  # the work, where it is done
    print("  CPU ms per job, each part's share of the platform's, and what it spends outside the work"
          " (the router less painting, the scorer less scoring, their CPU in process):")
    rendering = f"  (rendering files: {load['counts']['rendering_cpu_s'] * 1000:.1f})"
    for name, ms in sorted(load["cpu_ms"].items(), key=lambda item: -item[1]):
        share = f"{100 * ms / platform_ms:5.1f} %" if name != "bench client" else "       "
        print(f"    {name:<14} {ms:7.1f}  {share}  outside the work {ms - work.get(name, 0.0):7.1f}"
              + (rendering if name == "delivery" else ""))
    print("  counted per job (exact, summed over the five services):")
    for name, value in load["counts"].items():
        if name in COUNTED:
            print(f"    {name:<24} {value:7.1f}")
    for figure in BY_SERVICE:
        print(f"    {figure} by service: " + ", ".join(f"{name} {load['counts'][f'{figure} {name}']:.1f}"
                                                   for name in SERVICES))
    print(f"    {'platform':<14} {platform_ms:7.1f}  (every process above but the bench client)")
    outside = platform_ms - burst_work.paint_ms - burst_work.score_ms
    print(f"    {'outside work':<14} {outside:7.1f}  (the platform less painting {burst_work.paint_ms:.1f}"
          f" and scoring {burst_work.score_ms:.1f}, their CPU in process)")
    print(f"\nin one process on one core, per job: {seq_work.total_ms:.1f} ms (2 candidates: painting"
          f" {seq_work.paint_ms:.1f}, scoring {seq_work.score_ms:.1f} ms of CPU), {burst_work.total_ms:.1f} ms (4 candidates)")
    print(f"  on every core: {every_core.total_ms:.1f} ms (2 candidates); p50 against it: {p50 / every_core.total_ms:.1f}")
    print(f"  burst throughput against one core's 2-candidate work: {load['jobs_per_s'] * seq_work.total_ms / 1000:.2f}")
    print(f"e2e: p50_ms={p50:.0f} p99_ms={p99:.0f} jobs_per_s={load['jobs_per_s']:.1f} baseline_ms={seq_work.total_ms:.1f}"
          f" overhead_factor={p50 / seq_work.total_ms:.2f}"
          f" throughput_ratio={load['jobs_per_s'] * burst_work.total_ms / 1000:.2f}"
          f" p99_over_p50={p99 / p50:.2f} slow_jobs={slow_jobs(seq_latencies)} outside_work_cpu_ms={outside:.0f}"
          f" work_cpu_ms={burst_work.paint_ms + burst_work.score_ms:.0f}"
          f" statements_per_job={load['counts']['pg_statements']:.1f} s3_per_job={load['counts']['s3_requests']:.1f}"
          f" idle_cpu_ms_per_s={idle_platform:.0f}")
    if history:
        after = percentile(history["latencies"], 50)
        print(f"history: records={history['records']} p50_fresh_ms={p50:.0f} p50_after_ms={after:.0f}"
              f" ratio={after / p50:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=40)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--history", type=int, default=0,
                        help="records of history to put on the topics before the sequential jobs run again")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds the idle platform's CPU is measured for, before the burst")
    parser.add_argument("--kafka-plaintext", action="store_true",
                        help="the broker in plain text, not behind TLS as `make run` has it (what TLS costs)")
    args = parser.parse_args()
    history = None
    with tempfile.TemporaryDirectory(prefix="genline-e2e-") as tmp:
        data_dir = Path(tmp)
        stack, endpoints, fleet = start_platform(data_dir, kafka_tls=not args.kafka_plaintext)
        try:
            api_key = tenant(endpoints)
            fleet.start_all()
            http = httpx.Client(base_url=fleet.ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            warmup = Watcher(endpoints.database_url, 0.05, listen=True)
            sequential(http, warmup, 3, args.side)  # first jobs pay for imports and connections
            seq_latencies, hops = sequential(http, Watcher(endpoints.database_url, 0.05, listen=True),
                                             args.sequential, args.side)
            if args.history:
                seconds = load_history(endpoints, args.history)
                latencies, _ = sequential(http, Watcher(endpoints.database_url, 0.05, listen=True),
                                          args.sequential, args.side)
                history = {"records": args.history, "seconds": seconds, "latencies": latencies}
            meter = CpuMeter(stack, fleet, data_dir / "pgdata")
            idle_ms = idle(meter, args.idle)
            counted_before = counted(fleet)
            load = burst(fleet.ingest_url, api_key, Watcher(endpoints.database_url, 0.5, listen=True, coalesce_s=0.05), meter, args.burst,
                         args.clients, args.side)
            load["counts"] = {name: (value - counted_before.get(name, 0.0)) / args.burst
                              for name, value in counted(fleet).items()}
            fleet.stop_all()  # idle services would take CPU from the baseline
            with on_one_core():
                seq_work = asyncio.run(in_process(endpoints, 40, args.side, 2, threads=1))
                burst_work = asyncio.run(in_process(endpoints, 40, args.side, 4, threads=1))
            every_core = asyncio.run(in_process(endpoints, 40, args.side, 2))
        finally:
            with signals_held():
                fleet.stop_all()
                stack.stop()
    report(args, seq_latencies, hops, load, seq_work, burst_work, every_core, history, idle_ms)


if __name__ == "__main__":
    run_stoppable(main)
