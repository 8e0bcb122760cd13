"""Orders at the seed's size: what a job of K images from N candidates costs as N grows.

Starts the embedded stack and the five services as separate processes (as bench/e2e.py does,
one local provider that paints without latency or defects) and places, one after another,
orders of 4 from 16, 16 from 64, 60 from 240 and 100 from 960 candidates (--orders). Per
order: the wall time from the 202 to the job final and settled; the same work in this process
(paint the candidates, score them in the scorer's batches, tier by tier until the best K are
known); CPU milliseconds per candidate of each service, the broker, PostgreSQL and the S3
server; the peak RSS of each service while the order ran (sampled every 0.1 s); and, counted
by the services themselves, SQL statements and S3 requests per candidate, and the largest
record the relays published.

Per-candidate cost stays flat as N grows when the 960 order's CPU per candidate is within
1.2x of the 64 order's, and memory is bounded when every service's peak RSS is within 1.3x of
its own at 64 (`rss_ratio` is the largest of the five ratios).

The last line: `order: cpu_per_candidate_ratio=<960 vs 64> rss_ratio=<960 vs 64>
big_order_s=<60 from 240> work_s=<the same candidates in one process>`.

    python bench/order.py [--side 512] [--orders 4x16,16x64,60x240,100x960]
"""

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.costs import CpuMeter, counted  # noqa: E402
from bench.e2e import PROMPT, Watcher, start_platform, submit, tenant  # noqa: E402
from genline_stack.fleet import SERVICES  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402
from services.common.quality.profiles import job_profile  # noqa: E402
from services.router.providers.local.painter import CandidateRange, LocalGenerator  # noqa: E402
from services.scorer.dimensions import Equipment, Scorer, Scoring  # noqa: E402
from services.scorer.dimensions.tiers import Enough  # noqa: E402
from services.scorer.settings import ScorerSettings  # noqa: E402

DEFAULT_ORDERS = "4x16,16x64,60x240,100x960"
PER_CANDIDATE = ("pg_statements", "s3_requests")


@dataclass
class Order:
    images: int
    candidates: int
    wall_s: float = 0.0
    work_s: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per candidate
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)  # per candidate
    state: str = ""
    delivered: int = 0

    @property
    def name(self) -> str:
        return f"{self.images} from {self.candidates}"

    @property
    def platform_cpu_ms(self) -> float:
        return sum(ms for part, ms in self.cpu_ms.items() if part != "bench client")


class PeakRss:
    """The largest RSS each service reached while it runs, sampled every `interval_s`."""

    def __init__(self, processes: dict[str, psutil.Process], interval_s: float = 0.1) -> None:
        self.processes, self.interval_s = processes, interval_s
        self.peaks = dict.fromkeys(processes, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, process in self.processes.items():
                try:
                    self.peaks[name] = max(self.peaks[name], process.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(self.interval_s)


def place(order: Order, http: httpx.Client, database_url: str, meter: CpuMeter, fleet, side: int, seed: int) -> None:
    watcher = Watcher(database_url, 0.5, listen=True, coalesce_s=0.05)
    meter.client_backends = watcher.backend_pids
    body = {"prompt": PROMPT, "images": order.images, "candidates": order.candidates, "width": side, "height": side,
            "seed": seed}
    before_cpu, before_counts = meter.read(), counted(fleet)
    with PeakRss({name: psutil.Process(fleet.processes[name].pid) for name in SERVICES}) as rss:
        job_id = submit(http, watcher, body)
        watcher.wait_all(1, timeout_s=1800)
    submitted, settled = watcher.done[job_id]
    order.wall_s = settled - submitted
    order.cpu_ms = {part: (seconds - before_cpu[part]) * 1000 / order.candidates
                    for part, seconds in meter.read().items()}
    order.counts = {name: (value - before_counts.get(name, 0.0)) / order.candidates
                    for name, value in counted(fleet).items() if name in PER_CANDIDATE}
    order.peak_rss_mb = rss.peaks
    view = watcher.views([job_id])[job_id]
    order.state, order.delivered = view["state"], len(view.get("outputs", []))


def work_in_process(order: Order, side: int, batch: int) -> float:
    """Seconds to paint the order's candidates and score them as the scorer does: in batches
    of `batch`, tier by tier, each batch against the passing candidates of those before."""
    generator = LocalGenerator(side, side, defect_rate=0.0)
    profile = job_profile("generic")
    passed: tuple[tuple[float, int], ...] = ()
    clock = time.perf_counter()
    with Scorer(Equipment(load_entry_points=False)) as scorer:
        for start in range(0, order.candidates, batch):
            count = min(batch, order.candidates - start)
            painted = generator.paint(CandidateRange(prompt=PROMPT, seed=start, count=count))
            indices = tuple(range(start, start + count))
            scoring = Scoring(profile=profile, prompt=PROMPT, requested_size=(side, side), tiered=True,
                              enough=Enough(images=order.images, indices=indices, passed_before=passed))
            verdicts = scorer.score([p.png for p in painted], scoring)
            passed += tuple((v.score, i) for v, i in zip(verdicts, indices, strict=True) if v.passed)
    return time.perf_counter() - clock


def report(orders: list[Order]) -> None:
    parts = sorted({part for order in orders for part in order.cpu_ms}, key=lambda p: -orders[-1].cpu_ms.get(p, 0))
    print(f"\n{'order':<16}{'state':<12}{'delivered':>10}{'wall s':>9}{'work s':>9}{'CPU ms/cand':>13}"
          f"{'stmts/cand':>12}{'S3/cand':>9}{'peak RSS MB':>13}")
    for order in orders:
        print(f"{order.name:<16}{order.state:<12}{order.delivered:>10}{order.wall_s:>9.1f}{order.work_s:>9.1f}"
              f"{order.platform_cpu_ms:>13.1f}{order.counts.get('pg_statements', 0):>12.2f}"
              f"{order.counts.get('s3_requests', 0):>9.2f}{max(order.peak_rss_mb.values()):>13.0f}")
    print("\nCPU ms per candidate:")
    print(f"  {'':<14}" + "".join(f"{order.name:>14}" for order in orders))
    for part in parts:
        print(f"  {part:<14}" + "".join(f"{order.cpu_ms.get(part, 0):>14.2f}" for order in orders))
    print("\npeak RSS MB:")
    for name in SERVICES:
        print(f"  {name:<14}" + "".join(f"{order.peak_rss_mb.get(name, 0):>14.0f}" for order in orders))


def ratio(orders: list[Order], candidates: int, baseline: int, figure) -> float:
    by_size = {order.candidates: order for order in orders}
    if candidates not in by_size or baseline not in by_size:
        return float("nan")
    return figure(by_size[candidates]) / figure(by_size[baseline])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--orders", default=DEFAULT_ORDERS, help="images x candidates, comma separated")
    args = parser.parse_args()
    orders = [Order(*map(int, spec.split("x"))) for spec in args.orders.split(",")]
    with tempfile.TemporaryDirectory(prefix="genline-order-") as tmp:
        data_dir = Path(tmp)
        stack, endpoints, fleet = start_platform(data_dir)
        try:
            api_key = tenant(endpoints)
            fleet.start_all()
            http = httpx.Client(base_url=fleet.ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            meter = CpuMeter(stack, fleet, data_dir / "pgdata")
            place(Order(1, 4), http, endpoints.database_url, meter, fleet, args.side, seed=0)  # imports, connections
            for seed, order in enumerate(orders, start=1):
                place(order, http, endpoints.database_url, meter, fleet, args.side, seed)
                print(f"{order.name}: {order.state}, {order.delivered} delivered in {order.wall_s:.1f} s", flush=True)
            fleet.stop_all()  # idle services would take CPU from the work in process
            batch = ScorerSettings.model_fields["scoring_batch_candidates"].default
            for order in orders:
                order.work_s = work_in_process(order, args.side, batch)
        finally:
            with signals_held():
                fleet.stop_all()
                stack.stop()
    report(orders)
    cpu = ratio(orders, 960, 64, lambda o: o.platform_cpu_ms)
    rss = max(ratio(orders, 960, 64, lambda o, name=name: o.peak_rss_mb[name]) for name in SERVICES)
    big = next((o for o in orders if (o.images, o.candidates) == (60, 240)), orders[-1])
    print(f"\norder: cpu_per_candidate_ratio={cpu:.2f} rss_ratio={rss:.2f} big_order_s={big.wall_s:.1f}"
          f" work_s={big.work_s:.1f}")


if __name__ == "__main__":
    run_stoppable(main)
