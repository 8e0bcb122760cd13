"""Errors as RFC 9457 problem details (`application/problem+json`), never a bare 500."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 413: "Content too large", 415: "Unsupported media type",
          422: "Unprocessable content", 429: "Too many requests", 500: "Internal server error",
          503: "Service unavailable"}


class Problem(Exception):
    def __init__(self, status: int, slug: str, detail: str, headers: dict[str, str] | None = None, **extra) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.headers, self.extra = status, slug, detail, headers, extra


def problem_response(request: Request, status: int, slug: str, detail: str,
                     headers: dict[str, str] | None = None, **extra) -> JSONResponse:
    body = {"type": f"/problems/{slug}", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, "instance": request.url.path} | extra
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return problem_response(request, exc.status, exc.slug, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": _field(e["loc"]), "message": e["msg"], "code": e["type"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, 422, "validation-error", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        slug = TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        return problem_response(request, exc.status_code, slug, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "internal-error", "an unexpected error occurred; it has been logged")
