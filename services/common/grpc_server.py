"""A service's internal gRPC server: its own servicer plus standard health checking and
server reflection, serving once started."""

from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


async def start_grpc_server(add_servicer: Callable[[grpc.aio.Server], None], service_name: str, host: str,
                            port: int) -> grpc.aio.Server:
    """`add_servicer(server)` adds the service's servicer; `service_name` is its full proto name."""
    server = grpc.aio.server()
    add_servicer(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    await server.start()
    for name in ("", service_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server
