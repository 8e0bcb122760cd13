"""Telemetry every service shares: JSON logs carrying the job, tenant and request ids,
Prometheus metrics, and the `/healthz`, `/readyz` and `/metrics` endpoints.

Metric names follow Prometheus conventions: base units (seconds, bytes, USD, credits) and
`_total` for counters. Counters whose label values are known up front are created at zero
(`preinitialise`), so `increase()` sees the first event of a label set.
"""

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import tracing
from services.common.contracts import FINAL_STATES

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
_tenant_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant_id", default=None)
_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)
# The prompt of the job being handled, so that a redacting formatter can find it anywhere in
# a line (an exception's text, a provider's error body) without knowing where it came from.
_prompt: contextvars.ContextVar[str | None] = contextvars.ContextVar("prompt", default=None)
# The id of the HTTP request being served: set once per request (from `X-Request-ID` or new)
# by the HTTP middleware, read by the logs and by problem bodies.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

EVENTS_CONSUMED = Counter(
    "genline_events_consumed_total", "Events handled by a consumer", ["service", "type", "outcome"]
)
DLQ_MESSAGES = Counter("genline_dlq_messages_total", "Messages sent to a dead-letter topic", ["service", "topic"])
# Events of a type this release does not know (a later release's, during a rolling update):
# kept in the service's events_held table, not dead-lettered (services/common/bus/held.py).
EVENTS_HELD = Counter("genline_events_held_total", "Events of a type this release does not know, held until a"
                      " release that knows it applies them", ["service", "type"])
OUTBOX_RELAYED = Counter("genline_outbox_relayed_total", "Outbox events published to Kafka", ["service"])
# What a job costs, counted (bench/e2e.py divides these by the jobs, tests/e2e/test_job_costs.py
# holds them): statements sent to PostgreSQL by the service's pool, requests to object storage,
# relay passes that found rows. Statements and requests carry their `source` (counted_for).
DB_STATEMENTS = Counter("genline_db_statements_total", "SQL statements the service's pool sent to PostgreSQL,"
                        " by what sent them: work, or a loop on a timer", ["service", "source"])
S3_REQUESTS = Counter("genline_s3_requests_total", "Requests made to object storage, by what sent them",
                      ["operation", "source"])
RELAY_PASSES = Counter("genline_outbox_relay_passes_total", "Outbox relay passes, by whether they found rows",
                       ["service", "found"])
# Fetch requests a consumer sent (counted where it fetches when the relays announce, wake.py).
BUS_FETCHES = Counter("genline_bus_fetches_total", "Fetch requests the consumer sent the broker, by whether"
                      " they brought records", ["service", "brought"])
OUTBOX_PENDING = Gauge("genline_outbox_pending", "Outbox events committed and not yet published to Kafka",
                       ["service"])
JOBS_SUBMITTED = Counter("genline_jobs_submitted_total", "Jobs accepted by the public API", ["template"])
DATA_KEYS_READ = Counter("genline_data_keys_read_total", "Jobs' data keys asked of ingest's internal API",
                         ["service", "outcome"])
RECEIPTS_ISSUED = Counter("genline_receipts_issued_total", "Signed job receipts issued", ["state"])
JOBS_FINISHED = Counter("genline_jobs_finished_total", "Jobs that reached a final state", ["state"])
CANDIDATES_SCORED = Counter("genline_candidates_scored_total", "Candidates scored, by profile and verdict",
                            ["profile", "verdict"])
DIMENSION_FAILURES = Counter("genline_dimension_failures_total",
                             "Candidates a dimension rejected (pass rate per dimension, with the total above)",
                             ["profile", "dimension"])
STAGE_SECONDS = Histogram(
    "genline_stage_seconds",
    "Time spent in one pipeline stage",
    ["service", "stage"],
    buckets=SECONDS_BUCKETS,
)
DELIVERY_CPU_SECONDS = Histogram("genline_delivery_cpu_seconds",
                                 "CPU a worker spent on one delivered file (decode, watermarks, encode, sign)",
                                 ["step"], buckets=SECONDS_BUCKETS)
WATERMARK_SECONDS_PER_MEGAPIXEL = Histogram(
    "genline_watermark_embed_seconds_per_megapixel", "CPU the invisible watermark took a megapixel, per file",
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5))
QUEUE_SECONDS = Histogram("genline_queue_seconds", "From an event's time to the moment a consumer handles it",
                          ["service", "topic"], buckets=SECONDS_BUCKETS)
HTTP_REQUESTS = Counter("genline_http_requests_total", "HTTP requests served, by route template and status",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("genline_http_request_seconds", "Time to answer an HTTP request",
                         ["service", "method", "route"], buckets=SECONDS_BUCKETS)
GRPC_REQUESTS = Counter("genline_grpc_requests_total", "gRPC calls served, by method and status code",
                        ["service", "method", "code"])
GRPC_SECONDS = Histogram("genline_grpc_request_seconds", "Time to answer a gRPC call", ["service", "method"],
                         buckets=SECONDS_BUCKETS)
WEBHOOK_ATTEMPTS = Counter("genline_webhook_attempts_total",
                           "Webhook attempts, by outcome: delivered, gone (410), retry, given_up", ["outcome"])
WEBHOOK_SECONDS = Histogram("genline_webhook_attempt_seconds", "Time a webhook receiver took to answer",
                            buckets=SECONDS_BUCKETS)
STORED_BYTES = Counter("genline_storage_bytes_total", "Bytes written to object storage", ["bucket"])
STORED_OBJECTS = Counter("genline_storage_objects_total", "Objects written to object storage", ["bucket"])


# What sends the statements and requests now: "work" (an event, a request), the name of a
# loop that runs on a timer, whether or not there is anything to do (a sweeper's round, a look
# for work no one holds), or "connection" (a pooled connection's setup). A timer's cost grows
# with time and a job's with jobs, so each is counted apart: per second, and per job.
_source: contextvars.ContextVar[str] = contextvars.ContextVar("source", default="work")


@contextlib.contextmanager
def counted_for(loop: str | None) -> Iterator[None]:
    """Statements and requests sent inside are counted under `loop`, a loop on a timer (None:
    as they would be outside, e.g. for a pass that work woke rather than the timer)."""
    if loop is None:
        yield
        return
    token = _source.set(loop)
    try:
        yield
    finally:
        _source.reset(token)


def source() -> str:
    """What the statements and requests sent now are counted under (see counted_for)."""
    return _source.get()


def preinitialise(counter: Counter, *label_sets: tuple[str, ...]) -> None:
    """Create these label sets at zero, so the first increment is an increase Prometheus sees."""
    for labels in label_sets:
        counter.labels(*labels)


preinitialise(JOBS_FINISHED, *((state,) for state in FINAL_STATES))


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """What log lines about a job name: the job, its tenant, and the trace of the event being
    handled; `prompt` is the job's, which they never show when prompts are redacted (a sealed
    prompt, which is not text, has nothing to redact)."""

    job_id: str | None
    tenant_id: str | None = None
    traceparent: str | None = None
    prompt: object = None


@contextlib.contextmanager
def job_context(context: JobContext) -> Iterator[None]:
    """Log lines inside say what `context` says."""
    prompt = context.prompt if isinstance(context.prompt, str) else None
    tokens = (_job_id.set(context.job_id), _tenant_id.set(context.tenant_id), _traceparent.set(context.traceparent),
              _prompt.set(prompt))
    try:
        yield
    finally:
        for var, token in zip((_job_id, _tenant_id, _traceparent, _prompt), tokens):
            var.reset(token)


def bind_tenant(tenant_id: str) -> None:
    """Name the tenant in the log lines of the rest of this request."""
    _tenant_id.set(tenant_id)


def bind_prompt(prompt: str) -> None:
    """The rest of this request handles this prompt (see `_prompt`)."""
    _prompt.set(prompt)


REDACTED = "[prompt redacted]"
# A prompt shown as a field in text: JSON ("prompt": "…"), a repr ('prompt': '…') or keyword
# (prompt='…'), with escaped quotes inside.
_PROMPT_FIELD = re.compile(r"""(["']?prompt["']?\s*[:=]\s*)(["'])((?:\\.|(?!\2).)*)\2""")


def redact_prompts(text: str, prompt: str | None) -> str:
    """`text` without the bound prompt (as written, or escaped as JSON) and without the value
    of anything that looks like a prompt field."""
    if prompt:
        for form in {prompt, json.dumps(prompt)[1:-1]}:
            text = text.replace(form, REDACTED)
    return _PROMPT_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)


@contextlib.contextmanager
def timed_stage(service: str, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(service, stage).observe(time.perf_counter() - started)


def trace_id() -> str | None:
    """The trace of the current span, or of the event being handled."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        return format(span.trace_id, "032x")
    traceparent = _traceparent.get()
    return tracing.trace_id_of(traceparent) if traceparent else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line. With `redact` (GENLINE_REDACT_PROMPTS) no prompt reaches the
    line: a `prompt` field given to the logger is replaced, and the prompt of the job being
    handled is cut out of the message and the exception wherever it appears."""

    def __init__(self, service: str, redact: bool = True) -> None:
        super().__init__()
        self.service, self.redact = service, redact

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ids = {"trace_id": trace_id(), "job_id": _job_id.get(), "tenant_id": _tenant_id.get(),
               "request_id": request_id.get()}
        entry |= {name: value for name, value in ids.items() if value}
        if access := getattr(record, "access", None):
            entry |= access
        if (prompt := getattr(record, "prompt", None)) is not None:
            entry["prompt"] = REDACTED if self.redact else prompt
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if self.redact:
            for field in ("msg", "exc"):
                if field in entry:
                    entry[field] = redact_prompts(entry[field], _prompt.get())
        return json.dumps(entry)


def configure_logging(service: str, level: str, *, redact_prompts: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, redact_prompts))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP clients' own lines (httpx logs every request at INFO: each S3 call of every
    # job) say less than the services' lines and spans, at a cost on every call.
    for noisy in ("aiokafka", "botocore", "urllib3", "faststream", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


ReadinessCheck = Callable[[], Awaitable[None]]


# 1 for the release a service runs and the release it writes its events for (Prometheus's
# `build_info` habit): a rolling update shows as two versions at once, and its end as one.
BUILD_INFO = Gauge("genline_build_info", "The release this process runs and the oldest release whose consumers"
                   " it writes its events for (GENLINE_EVENTS_COMPATIBLE_WITH)",
                   ["service", "version", "events_compatible_with"])
DEPENDENCY_UP = Gauge("genline_dependency_up", "Whether a dependency answered the last readiness probe (1) or not (0)",
                      ["dependency"])


async def _failures(checks: dict[str, ReadinessCheck]) -> dict[str, str]:
    failures = {}
    for name, check in checks.items():
        try:
            await check()
        except Exception as exc:
            failures[name] = str(exc) or type(exc).__name__
        DEPENDENCY_UP.labels(name).set(0 if name in failures else 1)
    return failures


OPS_PATHS = ("/healthz", "/readyz", "/metrics")


def ops_routes(readiness_checks: dict[str, ReadinessCheck],
               reported_checks: dict[str, ReadinessCheck] | None = None, *,
               about: dict[str, str] | None = None) -> list[Route]:
    """Liveness says the process serves, and `about` it (its service and release); readiness
    says the dependencies it cannot work without answer. `reported_checks` are dependencies
    whose outage the service absorbs (the broker: events wait in the outbox): reported under
    `degraded`, and in `genline_dependency_up`, but the service stays ready."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"} | (about or {}))

    async def readyz(_: Request) -> Response:
        failures = await _failures(readiness_checks)
        degraded = await _failures(reported_checks or {})
        status = 503 if failures else 200
        return JSONResponse({"status": "unready" if failures else "ready", "failures": failures,
                             "degraded": degraded}, status)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route(path, endpoint) for path, endpoint in zip(OPS_PATHS, (healthz, readyz, metrics), strict=True)]


# ---- HTTP: request metrics, request ids, the access log --------------------------------

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}
access_log = logging.getLogger("genline.access")


def _route_template(scope: Scope) -> str:
    """The matched route's template (`/v1/jobs/{job_id}`), so ids do not explode the labels."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def _incoming_request_id(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


class HttpTelemetry:
    """ASGI middleware: counts and times every request by route template and status, gives it
    a request id (the caller's `X-Request-ID` when well-formed, echoed back) and writes one
    access log line."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope)
        status = 500  # what the client gets when the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid  # a problem may have set it already
            await send(message)

        # Not reset afterwards: an unhandled error is answered (and logged) by Starlette's
        # outermost middleware after this one has returned, and both must still name the id.
        # Every request runs in a task, and so a context, of its own: nothing leaks to the next.
        request_id.set(rid)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, elapsed_s=time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, *, elapsed_s: float) -> None:
        method, route = scope["method"], _route_template(scope)
        HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
        HTTP_SECONDS.labels(self.service, method, route).observe(elapsed_s)
        level = logging.DEBUG if scope["path"] in _QUIET_PATHS else logging.INFO
        access_log.log(level, "%s %s %d", method, scope["path"], status, extra={"access": {
            "method": method, "path": scope["path"], "route": route, "status": status,
            "duration_ms": round(elapsed_s * 1000, 1)}})


def instrument_http(app: Starlette, service: str) -> None:
    """Metrics, request id and access log inside a span that continues the caller's trace."""
    app.add_middleware(HttpTelemetry, service=service)
    app.add_middleware(tracing.http_middleware)
