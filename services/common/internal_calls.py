"""Internal calls, both ends: the caller's service token and trace context on every request
(HTTP through `ServiceAuth`, gRPC through `identity_client_interceptor`), and the check of
the callee (`require_service` for Starlette routes, `GrpcIdentity` for gRPC servers), with
the refusals services.common.identity defines: 401 / UNAUTHENTICATED without a proven
caller, 403 / PERMISSION_DENIED for a caller with no business there."""

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

import grpc
import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common import tracing
from services.common.identity import Forbidden, ServiceSigner, ServiceVerifier, Unauthenticated
from services.common.problems import Problem, problem_response
from services.common.settings import ServiceSettings

# gRPC's own health checks answer without a token: the kubelet's probes carry none.
OPEN_GRPC_SERVICES = ("grpc.health.v1.Health",)


def signer_of(settings: ServiceSettings) -> ServiceSigner | None:
    """This service's signer (one per key in the process, so its tokens are reused); None
    without a key, when its calls go out unsigned and are refused."""
    key = settings.service_key
    return _signer(settings.service_name, key.get_secret_value()) if key else None


@functools.cache
def _signer(service: str, seed: str) -> ServiceSigner:
    return ServiceSigner(service, seed)


def verifier_of(settings: ServiceSettings) -> ServiceVerifier:
    return ServiceVerifier.of(settings.service_name, settings.service_keys)


class ServiceAuth(httpx.Auth):
    """An httpx client's requests to `audience` carry this service's token and the current
    trace context (`traceparent`)."""

    def __init__(self, signer: ServiceSigner | None, audience: str) -> None:
        self.signer, self.audience = signer, audience

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.signer is not None:
            request.headers["Authorization"] = self.signer.authorization(self.audience)
        if traceparent := tracing.current_traceparent():
            request.headers["traceparent"] = traceparent
        yield request


def problem_of(error: Unauthenticated | Forbidden) -> Problem:
    """The refusal of an internal call: 401 without a proven caller, 403 for one with no business there."""
    if isinstance(error, Unauthenticated):
        return Problem(status=401, slug="service-unauthenticated", detail=str(error), headers={"WWW-Authenticate": 'Bearer realm="genline-internal"'})
    return Problem(status=403, slug="service-forbidden", detail=str(error))


def refusal(error: Unauthenticated | Forbidden, request: Request) -> Response:
    problem = problem_of(error)
    return problem_response(request, problem)


def require_service(verifier: ServiceVerifier, capability: str,
                    *, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """`endpoint`, answering only callers `verifier` proves and `MAY_CALL` lets use `capability`."""

    async def checked(request: Request) -> Response:
        try:
            request.state.caller = verifier.authorize(request.headers.get("authorization"), capability)
        except (Unauthenticated, Forbidden) as error:
            return refusal(error, request)
        return await endpoint(request)

    return checked


def guard(route: Route, verifier: ServiceVerifier, *, capability: str) -> Route:
    """`route`, answering only callers that may use `capability` (see require_service)."""
    return Route(route.path, require_service(verifier, capability, endpoint=route.endpoint),
                 methods=sorted((route.methods or set()) - {"HEAD"}), name=route.name)


class _Token:
    def __init__(self, signer: ServiceSigner, audience: str) -> None:
        self.signer, self.audience = signer, audience

    def _signed(self, details: Any) -> Any:  # grpc.aio.ClientCallDetails, which grpc ships untyped
        metadata = list(details.metadata or ()) + [("authorization", self.signer.authorization(self.audience))]
        return details._replace(metadata=metadata)


# One class per arity: a channel files each interceptor under the first kind it is. grpc ships
# no types, so to mypy the classes they subclass are Any (the ignores below).
class _UnaryUnaryToken(_Token, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._signed(details), request)


class _UnaryStreamToken(_Token, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._signed(details), request)


class _StreamUnaryToken(_Token, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._signed(details), request_iterator)


class _StreamStreamToken(_Token, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._signed(details), request_iterator)


def identity_client_interceptor(signer: ServiceSigner | None, audience: str) -> list[_Token]:
    """Interceptors for a channel to `audience` that sign every call, of every arity: none
    when this service has no key (its calls are then refused)."""
    if signer is None:
        return []
    return [kind(signer, audience) for kind in (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken,
                                                _StreamStreamToken)]


class GrpcIdentity(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Every call but health checks must come from a service `MAY_CALL` lets use the called
    gRPC service (the capability is its full name, e.g. genline.ledger.v1.LedgerService)."""

    def __init__(self, verifier: ServiceVerifier) -> None:
        self.verifier = verifier

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        service = details.method.strip("/").split("/")[0]
        if handler is None or service in OPEN_GRPC_SERVICES:
            return handler
        authorization = dict(details.invocation_metadata or ()).get("authorization")
        try:
            self.verifier.authorize(authorization, service)
        except Unauthenticated as error:
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, detail=str(error))
        except Forbidden as error:
            return _refusing(handler, grpc.StatusCode.PERMISSION_DENIED, detail=str(error))
        return handler


def _refusing(handler: Any, code: grpc.StatusCode, *, detail: str) -> Any:
    """A handler of the same arity as `handler` that refuses the call with `code`."""

    async def refuse(_request: Any, context: Any) -> None:
        await context.abort(code, detail)

    async def refuse_stream(_request: Any, context: Any) -> AsyncIterator[None]:
        await context.abort(code, detail)
        yield  # never reached: makes this a stream handler

    codecs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)
