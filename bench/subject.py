"""A headshot order of a subject against the same order of none: what carrying a person's
identity into every candidate, and checking every candidate against it, costs.

Starts the embedded stack and the five services as separate processes (as bench/e2e.py does),
with a local painter for orders of no subject and the local portrait model and trainer for
orders of one, none of them waiting (no latency). It makes a subject from eight photos of one
person (the stack's demo portrait, framed eight ways) and trains its identity with a small order
first, so the measured order reuses trained weights as a later order of a customer does. Then,
one after the other:

* subject — 60 from 240 candidates across the six styles of `subject-headshots`, of the subject
  (identity `lora`): the portrait model paints its face, the scorer checks every candidate's
  face, and its identity, skin and any second person against the subject's photos;
* plain — the same order of no subject: 60 from 240 across the same six styles, template
  `styled-headshots`, whose painter paints a stranger (a text-to-image model asked for a headshot
  makes someone up) and whose profile is the subject's without the checks only a subject
  gives (identity, skin tone, a second person);
* prompt — 60 from 240 of the prompt alone, no template: pictures checked for their technical
  quality only, no face; its ratio (printed, not the last line) also counts the face checks
  every headshot order makes, subject or not.

Both painters plant face defects at the rates the shipped providers.yaml gives its portrait
model (two faces, closed eyes; for the subject also another person and drift), which the
scorer has to catch. Per order:
the wall time from the 202 to the job final and settled, and CPU milliseconds per candidate of
the services, the broker, PostgreSQL and the S3 server; for the subject's order, how many of its
delivered pictures are distinct (no two within NEAR_DUPLICATE_BITS of each other's fingerprint)
and how many each style got.

The last line: `subject: order_s=<subject's order> plain_order_s=<the same order of no subject>
ratio=<the two> cpu_per_candidate_ratio=<the two> distinct=<delivered distinct>/<asked>`; the
subject's order should take at most 1.3 times the plain one.

    python bench/subject.py [--side 512] [--images 60] [--candidates 240]
"""

import argparse
import base64
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.costs import CpuMeter  # noqa: E402
from bench.e2e import submit, tenant  # noqa: E402
from bench.watcher import Watcher  # noqa: E402
from genline_stack.embedded import EmbeddedStack, Endpoints  # noqa: E402
from genline_stack.fleet import ServiceFleet  # noqa: E402
from genline_stack.portraits import demo_photograph, poses  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402
from services.common.quality.fingerprints import near_duplicates  # noqa: E402

PROMPT = "professional headshot"
TEMPLATE = "subject-headshots"
NO_SUBJECT_TEMPLATE = "styled-headshots"
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
    local:
      defect_rate: 0.0
      failure_rate: 0.0
      latency_s: 0
      portrait: {two_faces: 0.02, closed_eyes: 0.03}
  local-portraits:
    adapter: local
    models: [{name: local-portrait, version: "1"}]
    capabilities: {max_side: 2048, max_megapixels: 4.2, max_images_per_request: 8, identity: [lora, reference],
                   subjects_only: true}
    price: {per_image_micro_usd: 4000}
    concurrency: 64
    latency: {base_s: 0, per_image_s: 0}
    pass_rate_prior: {mean: 0.75, strength: 4}
    identity_pass_rate_prior: {lora: {mean: 0.85, strength: 4}, reference: {mean: 0.55, strength: 4}}
    local:
      defect_rate: 0.0
      failure_rate: 0.0
      portrait: {another_person: 0.02, two_faces: 0.02, closed_eyes: 0.03, drift: 0.03, reference_drift: 0.25}
  local-trainer:
    adapter: local
    models: [{name: local-lora-trainer, version: "1"}]
    capabilities: {stages: []}
    price: {}
    concurrency: 2
    trainer:
      model: {name: local-lora-trainer, version: "1"}
      base: genline-local-faces
      images: {min: 4, max: 30}
      price: {per_run_micro_usd: 300000}
      expected_s: 1
      timeout_s: 600
      poll_interval_s: 1
"""


@dataclass
class Order:
    name: str
    body: dict
    wall_s: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per candidate
    view: dict = field(default_factory=dict)

    @property
    def platform_cpu_ms(self) -> float:
        return sum(ms for part, ms in self.cpu_ms.items() if part != "bench client")

    @property
    def platform_cpu_s(self) -> float:
        return self.platform_cpu_ms * self.body["candidates"] / 1000

    def delivered(self) -> list[dict]:
        selected = set(self.view.get("selected", []))
        return [score for score in self.view.get("scores", []) if score["index"] in selected]


def start_platform(data_dir: Path) -> tuple[EmbeddedStack, Endpoints, ServiceFleet]:
    stack = EmbeddedStack(data_dir=data_dir)
    endpoints = stack.start()
    providers = data_dir / "providers.yaml"
    providers.write_text(PROVIDERS_YAML)
    fleet = ServiceFleet(endpoints=endpoints, log_dir=data_dir / "logs", extra_env={"GENLINE_PROVIDERS_PATH": str(providers)})
    return stack, endpoints, fleet


def trained_subject(http: httpx.Client, watcher: Watcher) -> str:
    """A subject of eight photos whose identity a small order trained."""
    photos = [base64.b64encode(photo).decode() for photo in poses(demo_photograph("portrait.jpg"), 8)]
    made = http.post("/v1/subjects", json={"kind": "person", "name": "bench", "photos": photos}, timeout=300)
    if made.status_code != 201 or made.json()["state"] != "ready":
        raise RuntimeError(f"the subject was not made: {made.status_code} {made.text}")
    subject_id = made.json()["id"]
    submit(http, watcher, {"prompt": PROMPT, "template": TEMPLATE, "subject": subject_id, "identity": "lora",
                           "images": 1, "candidates": 2})
    watcher.wait_all(len(watcher.done) + 1, timeout_s=900)
    state = http.get(f"/v1/subjects/{subject_id}").json()["state"]
    if state != "trained":
        raise RuntimeError(f"the subject's identity was not trained: it is {state}")
    return subject_id


def place(order: Order, http: httpx.Client, watcher: Watcher, meter: CpuMeter) -> None:
    before = meter.read()
    job_id = submit(http, watcher, order.body)
    watcher.wait_all(len(watcher.done) + 1, timeout_s=3600)
    submitted, settled = watcher.done[job_id]
    order.wall_s = settled - submitted
    order.cpu_ms = {part: (seconds - before[part]) * 1000 / order.body["candidates"]
                    for part, seconds in meter.read().items()}
    order.view = http.get(f"/v1/jobs/{job_id}").json()


def distinct(scores: list[dict]) -> int:
    """How many of the pictures are distinct: each one not a near-duplicate of one before it."""
    kept: list[str] = []
    for score in scores:
        if score.get("fingerprint") and not any(near_duplicates(score["fingerprint"], other) for other in kept):
            kept.append(score["fingerprint"])
    return len(kept)


def report(orders: list[Order]) -> None:
    parts = sorted({part for order in orders for part in order.cpu_ms}, key=lambda p: -orders[0].cpu_ms.get(p, 0))
    print(f"\n{'order':<12}{'state':<12}{'delivered':>10}{'generated':>10}{'wall s':>9}{'CPU ms/cand':>13}")
    for order in orders:
        generated = sum(order.view.get("generated", {}).values())
        print(f"{order.name:<12}{order.view.get('state', ''):<12}{len(order.view.get('outputs', [])):>10}"
              f"{generated:>10}{order.wall_s:>9.1f}{order.platform_cpu_ms:>13.1f}")
    print("\nCPU ms per candidate:")
    print(f"  {'':<14}" + "".join(f"{order.name:>12}" for order in orders))
    for part in parts:
        print(f"  {part:<14}" + "".join(f"{order.cpu_ms.get(part, 0):>12.2f}" for order in orders))
    subject = orders[0]
    print(f"\nthe subject's delivered pictures by style: {dict(Counter(s['style'] for s in subject.delivered()))}")
    identity = (subject.view.get("subject") or {}).get("identity") or {}
    print(f"its identity: {identity.get('mode')} by {identity.get('provider')}/{identity.get('model')}")
    for order in orders:
        scores = order.view.get("scores", [])
        failed = Counter(name for s in scores if s["judged"] and not s["passed"] for name in s["failed"])
        print(f"{order.name}: candidates measured to a verdict {sum(s['judged'] for s in scores)} of {len(scores)},"
              f" refused by check {dict(failed)}")
    print_floor(subject, orders[1])


def print_floor(subject: Order, plain: Order) -> None:
    """How busy the machine's cores were in each order, and the least time the subject's
    order could take on all of them with its CPU work as measured: where the plain order
    already keeps the cores busy, the ratio cannot fall below that floor's, however the
    subject's work is spread."""
    cores = len(os.sched_getaffinity(0))
    floor_s = subject.platform_cpu_s / cores
    print(f"cores busy: subject {subject.platform_cpu_s / subject.wall_s:.2f}, plain"
          f" {plain.platform_cpu_s / plain.wall_s:.2f} of {cores}; the subject's {subject.platform_cpu_s:.1f} CPU s"
          f" on all {cores} take at least {floor_s:.1f} s, a ratio of at least {floor_s / plain.wall_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--candidates", type=int, default=240)
    args = parser.parse_args()
    sized = {"images": args.images, "candidates": args.candidates, "width": args.side, "height": args.side}
    with tempfile.TemporaryDirectory(prefix="genline-subject-") as tmp:
        data_dir = Path(tmp)
        stack, endpoints, fleet = start_platform(data_dir)
        try:
            api_key = tenant(endpoints)
            fleet.start_all()
            http = httpx.Client(base_url=fleet.ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            watcher = Watcher(endpoints.database_url, 0.5, listen=True, coalesce_s=0.05)
            meter = CpuMeter(stack, fleet, data_dir / "pgdata")
            meter.client_backends = watcher.backend_pids
            clock = time.perf_counter()
            subject_id = trained_subject(http, watcher)
            print(f"subject {subject_id} trained in {time.perf_counter() - clock:.1f} s", flush=True)
            submit(http, watcher, {"prompt": PROMPT, "images": 1, "candidates": 4, "seed": 0})  # warm the painter
            watcher.wait_all(len(watcher.done) + 1, timeout_s=300)
            orders = [Order("subject", {"prompt": PROMPT, "template": TEMPLATE, "subject": subject_id,
                                        "identity": "lora", "seed": 1} | sized),
                      Order("plain", {"prompt": PROMPT, "template": NO_SUBJECT_TEMPLATE, "seed": 1} | sized),
                      Order("prompt", {"prompt": PROMPT, "seed": 1} | sized)]
            for order in orders:
                order.body["metadata"] = {"bench": uuid.uuid4().hex[:8]}
                place(order, http, watcher, meter)
                print(f"{order.name}: {order.view['state']}, {len(order.view.get('outputs', []))} delivered in"
                      f" {order.wall_s:.1f} s", flush=True)
        finally:
            with signals_held():
                fleet.stop_all()
                stack.stop()
    report(orders)
    subject, plain, prompt = orders
    print(f"\nagainst the prompt alone (no face checked): prompt_order_s={prompt.wall_s:.1f}"
          f" ratio={subject.wall_s / prompt.wall_s:.2f}"
          f" cpu_per_candidate_ratio={subject.platform_cpu_ms / prompt.platform_cpu_ms:.2f}")
    print(f"\nsubject: order_s={subject.wall_s:.1f} plain_order_s={plain.wall_s:.1f}"
          f" ratio={subject.wall_s / plain.wall_s:.2f}"
          f" cpu_per_candidate_ratio={subject.platform_cpu_ms / plain.platform_cpu_ms:.2f}"
          f" distinct={distinct(subject.delivered())}/{args.images}")


if __name__ == "__main__":
    run_stoppable(main)
