"""OpenTelemetry traces across the services.

One trace follows a job: the public API continues the caller's `traceparent` (or starts a
trace), every event carries the context in its CloudEvents `traceparent` header, each
consumer continues it in a span around its handler, and gRPC carries it in metadata.
PostgreSQL queries and S3 calls are spans of whatever span is current. Spans are exported
over OTLP (HTTP) only when `GENLINE_OTLP_ENDPOINT` is set; without it they still give every
log line its trace id, and nothing leaves the process.
"""

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import context, trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)
tracer = trace.get_tracer("genline")
_propagator = TraceContextTextMapPropagator()


def configure_tracing(service: str, otlp_endpoint: str | None) -> None:
    """Once per process, before any database connection is made (S3 calls make their own
    spans: services/common/storage.py). Without an endpoint no span is recorded and no query
    is wrapped: spans only carry the trace's context (log lines still name the trace, events
    still pass it on), which costs next to nothing."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"genline-{service}"})
    disabled = (os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
                or os.environ.get("OTEL_TRACES_EXPORTER", "").lower() == "none")
    if not otlp_endpoint or disabled:
        trace.set_tracer_provider(TracerProvider(resource=resource, sampler=ALWAYS_OFF))
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the traces' URL as it is; any other is a base.
    traces_url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or f"{otlp_endpoint.rstrip('/')}/v1/traces"
    provider = TracerProvider(resource=resource)  # its sampler from OTEL_TRACES_SAMPLER, else parent-based
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    log.info("exporting traces to %s", otlp_endpoint)
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(skip_dep_check=True)


def trace_id_of(traceparent: str) -> str | None:
    """The trace id of a W3C `traceparent`, None when it is malformed."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, when there is a real one."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def continued(traceparent: str | None, name: str, *, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[None]:
    """A span that continues the trace of `traceparent` (an event's, a stored job's)."""
    parent = _propagator.extract({"traceparent": traceparent}) if traceparent else context.Context()
    with tracer.start_as_current_span(name, context=parent, kind=kind):
        yield


def http_middleware(app: Any, excluded_paths: str = "/healthz,/readyz,/metrics") -> Any:
    """The ASGI middleware that continues an incoming `traceparent` in a server span."""
    return OpenTelemetryMiddleware(app, excluded_urls=excluded_paths, exclude_spans=["receive", "send"])


def grpc_server_interceptor() -> Any:
    return aio_server_interceptor()  # type: ignore[no-untyped-call]  # OpenTelemetry's gRPC package is untyped


def grpc_client_interceptors() -> list[Any]:
    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]
