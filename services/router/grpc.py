"""The router's gRPC server: ListProviders and FindClipMakers (which providers can make a
clip of a shape, and why the others cannot), plus standard health checking and server
reflection. Internal only."""

import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import grpc
from pydantic import ValidationError

from services.common.contracts import ProviderStatus, VideoSpec
from services.common.grpc_server import GrpcService, start_grpc_server
from services.common.internal_calls import verifier_of
from services.common.protos import load
from services.router.engine import RoutingEngine
from services.router.settings import RouterSettings

pb, rpc = load("genline.router.v1")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RouterService"].full_name


def _provider(status: ProviderStatus, estimate: Callable[[str], float], *, templates: list[str]) -> Any:
    pass_rates = status.pass_rates | {t: estimate(t) for t in templates if t not in status.pass_rates}
    return pb.Provider(
        name=status.name, adapter=status.adapter, state=status.state, healthy=status.healthy,
        price_micro_usd=status.price_micro_usd, pass_rates=pass_rates, prior_pass_rate=status.prior_pass_rate,
        in_flight=status.in_flight, concurrency_limit=status.concurrency_limit,
        max_concurrency=status.max_concurrency, latency_estimate_s=status.latency_estimate_s,
        calls=status.calls, failures=status.failures,
        quality={template: pb.QualityBreaker(state=q.state, reason=q.reason, verdicts=q.verdicts,
                                             pass_rate=math.nan if q.pass_rate is None else q.pass_rate)
                 for template, q in status.quality.items()},
    )


class RouterService:
    """Every RPC of genline.router.v1.RouterService (the generated base class would only add
    UNIMPLEMENTED stand-ins, and it has no types)."""

    def __init__(self, engine: RoutingEngine, refresh: Callable[[], Awaitable[None]]) -> None:
        self.engine, self.refresh = engine, refresh

    async def ListProviders(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.refresh()  # other router processes may have learnt since
        templates = list(request.templates)
        return pb.ListProvidersResponse(providers=[
            _provider(status, partial(self.engine.pass_rates.mean, status.name), templates=templates)
            for status in self.engine.provider_status()
        ])

    async def FindClipMakers(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            spec = VideoSpec(duration_s=request.duration_s, aspect_ratio=request.aspect_ratio or "16:9",
                             resolution=request.resolution or "720p", fps=request.fps or None)
        except ValidationError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no such clip: {error.errors()[0]['msg']}")
        makers, reasons = self.engine.registry.clip_makers(spec, request.from_image, model=request.model)
        return pb.FindClipMakersResponse(providers=makers, reasons=reasons)


async def start_router_grpc(service: RouterService, settings: RouterSettings) -> grpc.aio.Server:
    """Serve `service` on the settings' gRPC address, to callers the settings' identities verify."""
    return await start_grpc_server(GrpcService(
        SERVICE_NAME, lambda server: rpc.add_RouterServiceServicer_to_server(service, server)),
        f"{settings.grpc_host}:{settings.grpc_port}", verifier=verifier_of(settings))
