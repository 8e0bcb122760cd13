"""Telemetry every service shares: JSON logs carrying the job id, Prometheus metrics, and
the `/healthz`, `/readyz` and `/metrics` endpoints."""

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

EVENTS_CONSUMED = Counter(
    "genline_events_consumed_total", "Events handled by a consumer", ["service", "type", "outcome"]
)
DLQ_MESSAGES = Counter("genline_dlq_messages_total", "Messages sent to a dead-letter topic", ["service", "topic"])
OUTBOX_RELAYED = Counter("genline_outbox_relayed_total", "Outbox events published to Kafka", ["service"])
OUTBOX_PENDING = Gauge("genline_outbox_pending", "Outbox events not yet published (last seen)", ["service"])
JOBS_SUBMITTED = Counter("genline_jobs_submitted_total", "Jobs accepted by the public API", ["template"])
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
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


@contextlib.contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if job_id := _job_id.get():
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "botocore", "urllib3", "faststream"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


ReadinessCheck = Callable[[], Awaitable[None]]


def ops_routes(readiness_checks: dict[str, ReadinessCheck]) -> list[Route]:
    """Liveness says the process serves; readiness says its dependencies answer."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        failures = {}
        for name, check in readiness_checks.items():
            try:
                await check()
            except Exception as exc:
                failures[name] = str(exc) or type(exc).__name__
        status = 503 if failures else 200
        return JSONResponse({"status": "unready" if failures else "ready", "failures": failures}, status)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
