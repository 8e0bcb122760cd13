"""What the rolling-upgrade test drives the platform with: a tenant's client of the public API
(at ingest's stable address, genline_stack/front.py) that retries only what the API documents
as retryable (429 and 503 with Retry-After) and keeps every other error, a webhook receiver that notes when each job's
final event arrived, and a steady stream of small jobs tagged with the phase of the rollout
they were submitted in."""

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

# What a client may retry, as the API says (problem details with Retry-After).
RETRYABLE = (429, 503)
FINAL_EVENTS = ("job.succeeded", "job.partially_succeeded", "job.failed", "job.canceled", "job.expired")


@dataclass(eq=False, kw_only=True)
class Client:
    """A tenant's calls to the API at `base_url`: a documented retry (429 or 503 with Retry-After)
    is waited out and counted; anything else that is not a success is kept in `errors`."""

    base_url: str
    api_key: str
    errors: list[str] = field(default_factory=list)
    retries: int = 0

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201, 202), **options: Any) -> httpx.Response:
        while True:
            try:
                response = httpx.request(method, f"{self.base_url}{path}", timeout=120,
                                         headers={"Authorization": f"Bearer {self.api_key}"}, **options)
            except httpx.TransportError as error:
                self.errors.append(f"{method} {path}: {error!r}")
                raise
            if response.status_code in RETRYABLE and "retry-after" in response.headers:
                self.retries += 1
                time.sleep(min(2.0, float(response.headers["retry-after"])))
                continue
            if response.status_code not in expect:
                self.errors.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return response


class Receiver:
    """A webhook endpoint on loopback: for each job, the final events it was sent (their
    `webhook-id`s, a redelivery counted once) and when the first arrived, each verified against
    the endpoint's secret once that is known."""

    def __init__(self) -> None:
        self.finals: dict[str, tuple[str, float]] = {}
        self.deliveries: dict[str, set[str]] = {}
        self.unverified: list[str] = []
        self.secret: str | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received(dict(self.headers), body)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/finals"

    def received(self, headers: dict[str, str], body: bytes) -> None:
        event = json.loads(body)
        if event.get("type") not in FINAL_EVENTS:
            return
        with self._lock:
            if self.secret is not None and not verifies(self.secret, headers, body):
                self.unverified.append(headers.get("webhook-id", "?"))
            job_id = event["data"]["id"]  # the job's view
            self.deliveries.setdefault(job_id, set()).add(headers.get("webhook-id", ""))
            self.finals.setdefault(job_id, (event["type"], time.monotonic()))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, {name.lower(): value for name, value in headers.items()})
        return True
    except WebhookVerificationError:
        return False


@dataclass(frozen=True, kw_only=True)
class Submitted:
    job_id: str
    at: float
    phase: str


class JobStream:
    """One small job (an image from two candidates) every `every_s` until stopped, each noted
    with the phase the rollout was in (`phase`, which the test moves on)."""

    def __init__(self, client: Client, *, every_s: float) -> None:
        self.client, self.every_s = client, every_s
        self.phase = "steady"
        self.jobs: list[Submitted] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=180)

    def _run(self) -> None:
        for seed in itertools.count():
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                response = self.client.call("POST", "/v1/jobs", json={
                    "prompt": "a red bicycle against a brick wall", "images": 1, "candidates": 2, "seed": seed})
            except httpx.TransportError:
                response = None  # kept in the client's errors
            if response is not None and response.status_code == 202:
                self.jobs.append(Submitted(job_id=response.json()["id"], at=started, phase=self.phase))
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` 0.99 for the p99)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered) + 0.5)) - 1))]
