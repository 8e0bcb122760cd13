"""Calling internal APIs as a service, with its identity from the stack's credentials (as
the services themselves do, services/common/internal_calls.py)."""

import grpc

from genline_stack.embedded import Endpoints
from services.common.internal_calls import identity_client_interceptor


def channel_as(endpoints: Endpoints, service: str, target: str, audience: str) -> grpc.aio.Channel:
    """An asyncio gRPC channel to `audience` at `target`, its calls signed as `service`."""
    return grpc.aio.insecure_channel(target, interceptors=identity_client_interceptor(endpoints.signer(service),
                                                                                       audience))


def metadata_as(endpoints: Endpoints, service: str, audience: str) -> list[tuple[str, str]]:
    """gRPC call metadata that proves `service` to `audience` (for blocking stubs)."""
    return [("authorization", endpoints.signer(service).authorization(audience))]


def headers_as(endpoints: Endpoints, service: str, audience: str) -> dict[str, str]:
    return {"Authorization": endpoints.signer(service).authorization(audience)}
