"""Webhook latency: from a job's final event to its first webhook attempt, on the embedded stack.

Starts the embedded stack and the five services as processes (as bench/e2e.py does), registers
an endpoint on a receiver in this process, and runs --jobs jobs one after another. For each
job, the final event is the one that made ingest show it final (the view's `updated_at`, the
time that event was made, usually the ledger's settlement); the first attempt is delivery's
record of it (`attempted_at`, just before the POST) and its arrival at the receiver. Both
clocks are this machine's. The path measured: ingest's JobFinished through its outbox, the
broker, delivery's consumer, the webhook outbox, the sender.

    python bench/webhooks.py [--jobs 30]
"""

import argparse
import json
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from e2e import percentile, start_platform, tenant  # bench/e2e.py, beside this file

from genline_stack.stopping import run_stoppable, signals_held


def receiver() -> tuple[ThreadingHTTPServer, dict[str, float]]:
    """A server that answers 200 and notes when each job's first webhook arrived."""
    arrivals: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            arrivals.setdefault(body["data"]["id"], time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def measure(http: httpx.Client, arrivals: dict[str, float], jobs: int) -> tuple[list[float], list[float]]:
    to_attempt, to_arrival = [], []
    for seed in range(jobs):
        job_id = http.post("/v1/jobs", json={"prompt": "a red bicycle", "images": 1, "candidates": 2,
                                              "seed": seed, "width": 128, "height": 128}).json()["id"]
        deadline = time.monotonic() + 120
        while job_id not in arrivals and time.monotonic() < deadline:
            time.sleep(0.005)
        view = http.get(f"/v1/jobs/{job_id}").json()
        while not (recorded := http.get(f"/v1/jobs/{job_id}/webhook-attempts").json()["data"]):
            time.sleep(0.01)  # the attempt is recorded once the receiver has answered
        attempt = recorded[-1]  # the first (newest first)
        final_at = datetime.fromisoformat(view["updated_at"]).timestamp()
        to_attempt.append((datetime.fromisoformat(attempt["attempted_at"]).timestamp() - final_at) * 1000)
        to_arrival.append((arrivals[job_id] - final_at) * 1000)
    return to_attempt, to_arrival


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genline-webhooks-") as tmp:
        stack, endpoints, fleet = start_platform(Path(tmp))
        server, arrivals = receiver()
        try:
            api_key = tenant(endpoints)
            fleet.start_all()
            http = httpx.Client(base_url=fleet.ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            url = f"http://127.0.0.1:{server.server_port}/hook"
            assert http.post("/v1/webhook-endpoints", json={"url": url}).status_code == 201
            measure(http, arrivals, 3)  # the first jobs pay for imports and connections
            to_attempt, to_arrival = measure(http, arrivals, args.jobs)
        finally:
            with signals_held():
                server.shutdown()
                fleet.stop_all()
                stack.stop()
    for name, values in (("final event → first attempt", to_attempt), ("final event → arrival", to_arrival)):
        print(f"{name:<28} p50 {percentile(values, 50):6.0f} ms  p90 {percentile(values, 90):6.0f} ms"
              f"  max {max(values):6.0f} ms  ({len(values)} jobs)")
    print(f"webhooks: p50_ms={percentile(to_attempt, 50):.0f} p90_ms={percentile(to_attempt, 90):.0f}")


if __name__ == "__main__":
    run_stoppable(main)
