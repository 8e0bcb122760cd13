"""Errors as RFC 9457 problem details (`application/problem+json`), never a bare 500, and
the schema that declares them in the OpenAPI documents."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.common import telemetry
from services.common.db import database_away

log = logging.getLogger(__name__)
# What a client is told to wait when the database is away (a restart or failover takes seconds).
DATABASE_RETRY_AFTER_S = 2
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 402: "Payment required", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 410: "Gone", 413: "Content too large", 415: "Unsupported media type",
          422: "Unprocessable content", 429: "Too many requests", 500: "Internal server error",
          503: "Service unavailable"}


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. `quality.thresholds.sharpness.min`")
    message: str
    code: str = Field(description="machine-readable kind of error, e.g. `int_type`, `unstorable_text`")


class ProblemDetails(BaseModel):
    """An RFC 9457 problem. Members other than those listed may appear for a specific `type`
    (for example `unavailable`, the dimensions a deployment cannot measure)."""

    model_config = ConfigDict(title="Problem", extra="allow", json_schema_extra={"examples": [{
        "type": "/problems/validation-error", "title": "Unprocessable content", "status": 422,
        "detail": "images: Input should be less than or equal to 16", "instance": "/v1/jobs",
        "request_id": "7f0c2a9e5b4d4e0f9a1b2c3d4e5f6a7b",
        "errors": [{"field": "images", "message": "Input should be less than or equal to 16",
                    "code": "less_than_equal"}]}]})

    type: str = Field(description="identifies the kind of problem; stable, for programs to branch on")
    title: str
    status: int
    detail: str = Field(description="what went wrong with this request, for people")
    instance: str = Field(description="the path of the request that failed")
    request_id: str | None = Field(None, description="the request's `X-Request-ID`, also in the server's logs")
    errors: list[FieldError] | None = Field(None, description="every invalid field (validation errors only)")
    retry_after: int | None = Field(None, description="seconds to wait before retrying (also `Retry-After`)")


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: the statuses it answers with a problem. The document
    builder (services.common.api) gives each the Problem schema under `application/problem+json`."""
    return {status: {"description": TITLES[status]} for status in statuses}


def shown(status: int, description: str, *bodies: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a status whose problems the document shows by example, one per `type`
    (their members beyond the Problem schema's with them)."""
    examples = {body["type"].rsplit("/", 1)[-1]: {"value": {"title": TITLES[status], "status": status} | body}
                for body in bodies}
    return {status: {"description": description, "content": {MEDIA_TYPE: {"examples": examples}}}}


@dataclass(eq=False, kw_only=True)  # an exception is itself, not equal to another with the same fields
class Problem(Exception):
    """An error answered as a problem document: `slug` names its type (`/problems/<slug>`),
    `headers` go with the answer, and `extra` are the members this problem adds."""

    status: int
    slug: str
    detail: str
    headers: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)


@dataclass(frozen=True)
class ShapedError:
    """An error as another API's shape answers it: its status, body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ErrorShape:
    """The errors of the paths under `prefixes` answered in another API's shape, which its
    clients read (an OpenAI-compatible API's `{"error": {...}}`): `render` turns a problem
    into it, and `schema` (named `name`) declares it in the OpenAPI document."""

    name: str
    prefixes: tuple[str, ...]
    render: Callable[[Problem], ShapedError]
    schema: dict[str, Any]

    def covers(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes)


def answer_errors_as(app: FastAPI, shape: ErrorShape) -> None:
    """Errors on the shape's paths are answered in that shape, whatever raised them."""
    app.state.error_shapes = (*error_shapes(app), shape)


def error_shapes(app: FastAPI) -> tuple[ErrorShape, ...]:
    shapes: tuple[ErrorShape, ...] = getattr(app.state, "error_shapes", ())
    return shapes


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    # A response made before the app (the ops port's refusal) has no app to ask for shapes.
    app = request.scope.get("app")
    shape = next((s for s in error_shapes(app) if s.covers(request.url.path)), None) if app else None
    if shape is not None:
        return shaped_response(shape.render(problem))
    status, headers = problem.status, problem.headers
    body = {"type": f"/problems/{problem.slug}", "title": TITLES.get(status, "Error"), "status": status,
            "detail": problem.detail, "instance": request.url.path,
            "request_id": telemetry.request_id.get()} | problem.extra
    # An unhandled error is answered outside the request-id middleware, so the id is set here too.
    if rid := telemetry.request_id.get():
        headers = (headers or {}) | {telemetry.REQUEST_ID_HEADER: rid}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def shaped_response(rendered: ShapedError) -> JSONResponse:
    headers = rendered.headers
    if rid := telemetry.request_id.get():
        headers = headers | {telemetry.REQUEST_ID_HEADER: rid}
    return JSONResponse(rendered.body, status_code=rendered.status, headers=headers)


def _field(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


def allowed_methods(request: Request) -> str:
    """Starlette's 405 names the methods of the first route on the path; a path served by
    several routes (GET and POST /v1/jobs) allows all of theirs."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e["loc"]), "message": e["msg"], "code": e["type"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, Problem(status=422, slug="validation-error", detail=detail, extra={"errors": errors}))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = (headers or {}) | {"Allow": allowed_methods(request)}
        return problem_response(request, Problem(status=exc.status_code, slug=slug, detail=str(exc.detail), headers=headers))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_away(exc):  # every operation declares this 503 (services.common.api)
            log.warning("the database is away on %s %s: %s", request.method, request.url.path, exc)
            return problem_response(request, Problem(status=503, slug="database-unavailable",
                                                     detail="the service's database does not answer; try again shortly",
                                                     headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
                                                     extra={"retry_after": DATABASE_RETRY_AFTER_S}))
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(request, Problem(status=500, slug="internal-error",
                                                 detail="an unexpected error occurred; it has been logged"))
