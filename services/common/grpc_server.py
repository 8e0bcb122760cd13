"""A service's internal gRPC server: its own servicer plus standard health checking and
server reflection, serving once started, answering only proven callers, with every unary
call counted and timed."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc.experimental.aio import init_grpc_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import telemetry, tracing
from services.common.db import database_away
from services.common.identity import ServiceVerifier
from services.common.internal_calls import GrpcIdentity


def hold_grpc_aio() -> None:
    """Keep grpc.aio's process-wide completion queue for the life of the process.

    grpc.aio shuts that queue down when the last object using it is freed and joins its
    poller thread; once the event loops that drained the poller have stopped, that join can
    wait forever (grpc/grpc#40989), which hangs a process at exit. One reference taken from
    the main thread keeps the queue open; its poller is a daemon thread and ends with the
    process."""
    init_grpc_aio()


@dataclass(frozen=True)
class GrpcService:
    """A service's gRPC API: its full proto `name`, and `add_servicer(server)`, which adds its
    servicer to a server."""

    name: str
    add_servicer: Callable[[grpc.aio.Server], None]


async def start_grpc_server(service: GrpcService, address: str, *, verifier: ServiceVerifier) -> grpc.aio.Server:
    """The service served on `address` (host:port). Every call but health checks must carry a
    caller `verifier` proves (GrpcIdentity)."""
    service_name = service.name
    server = grpc.aio.server(interceptors=[tracing.grpc_server_interceptor(), GrpcIdentity(verifier),
                                           GrpcTelemetry(service_name.split(".")[1])])
    service.add_servicer(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    for name in ("", service_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server


class GrpcTelemetry(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types: its classes are Any
    """Counts unary calls by method and status code and times them (streams pass untouched)."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method, inner = handler_call_details.method, handler.unary_unary

        async def observed(request: Any, context: Any) -> Any:
            started, failed = time.perf_counter(), False
            try:
                return await inner(request, context)
            except Exception as exc:
                failed = True
                if database_away(exc):  # the caller may try again, as with any unavailable server
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the service's database does not answer")
                raise
            except BaseException:
                failed = True
                raise
            finally:
                self._record(method, _code_name(context, failed), elapsed_s=time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(observed, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _record(self, method: str, code_name: str, *, elapsed_s: float) -> None:
        telemetry.GRPC_REQUESTS.labels(self.service, method, code_name).inc()
        telemetry.GRPC_SECONDS.labels(self.service, method).observe(elapsed_s)


def _code_name(context: Any, failed: bool) -> str:
    """The status code a call ended with: the one set, else UNKNOWN for a failure, OK otherwise."""
    code = context.code()
    if code is None:
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    name: str = code.name if isinstance(code, grpc.StatusCode) else grpc.StatusCode(code).name
    return name
