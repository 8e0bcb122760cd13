"""Errors of the OpenAI-compatible API in OpenAI's shape, `{"error": {"message", "type",
"param", "code"}}`, with the statuses the `openai` package reads as its exceptions: 400
BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 422
UnprocessableEntityError, 429 RateLimitError, 5xx InternalServerError.

Every problem the service raises on these paths (a key refused, a plan's rate, a request the
schema refuses, the database away) is rendered here, so the rest of ingest raises its problems
as it always does. Without I/O."""

from typing import Any

from pydantic import BaseModel, Field

from services.common.problems import ErrorShape, Problem, ShapedError

# The paths answered in this shape: the images API, and the files and batches the `openai`
# package sends its batches through.
PREFIXES = ("/v1/images", "/v1/files", "/v1/batches")
# Problems whose status the `openai` package has no exception for are answered with the one
# OpenAI itself uses: a body too large or of the wrong type is a bad request; out of credits is
# OpenAI's `insufficient_quota`, a 429 that no retry can cure.
STATUS = {413: 400, 415: 400, 402: 429, 410: 404}
# The `type` OpenAI gives each status; `invalid_request_error` for the rest of the 4xx.
TYPES = {401: "invalid_request_error", 429: "rate_limit_error", 504: "timeout"}
# Problems with a code of OpenAI's own; the others' code is their slug in snake case.
CODES = {"invalid-api-key": "invalid_api_key", "missing-api-key": "missing_api_key",
         "rate-limited": "rate_limit_exceeded", "prompt-refused": "moderation_blocked",
         "insufficient-credits": "insufficient_quota", "key-cap-reached": "insufficient_quota"}
# Problems a retry cannot cure although their status is one the `openai` package retries:
# answered with `x-should-retry: false`, which the package obeys.
FINAL = {"insufficient-credits", "key-cap-reached", "account-in-debt", "daily-images-limit", "job-canceled"}


class OpenAIError(BaseModel):
    message: str = Field(description="what went wrong, for people")
    type: str = Field(description="the kind of error: invalid_request_error, insufficient_quota, rate_limit_error,"
                                  " server_error, timeout")
    param: str | None = Field(None, description="the request parameter at fault, when one is")
    code: str | None = Field(None, description="machine-readable reason, e.g. invalid_api_key, model_not_found,"
                                               " rate_limit_exceeded, insufficient_quota, moderation_blocked")


class OpenAIErrorResponse(BaseModel):
    """An error of the OpenAI-compatible API, as OpenAI's own API answers it."""

    error: OpenAIError


def error_type(status: int, code: str) -> str:
    if code == "insufficient_quota":
        return "insufficient_quota"
    if status >= 500 and status != 504:
        return "server_error"
    return TYPES.get(status, "invalid_request_error")


def validation_param(problem: Problem) -> str | None:
    """The parameter at fault, named as the client sent it (`limit`, not `query.limit`)."""
    errors: list[dict[str, Any]] = problem.extra.get("errors") or []
    if not errors:
        return None
    field = str(errors[0]["field"])
    return field.split(".", 1)[1] if field.startswith(("query.", "path.", "header.")) else field


def validation_code(problem: Problem) -> str:
    errors: list[dict[str, Any]] = problem.extra.get("errors") or []
    kind = str(errors[0]["code"]) if errors else "invalid_value"
    return "unknown_parameter" if kind == "extra_forbidden" else kind


def render(problem: Problem) -> ShapedError:
    """A problem as OpenAI answers an error, with the headers it came with (Retry-After, the
    job's id) and whether a retry may help."""
    if problem.slug == "validation-error":
        status, code, param = 400, validation_code(problem), validation_param(problem)
    else:
        status = 400 if problem.slug == "prompt-refused" else STATUS.get(problem.status, problem.status)
        code = CODES.get(problem.slug, problem.slug.replace("-", "_"))
        param = problem.extra.get("param") or problem.extra.get("field")
    error = OpenAIError(message=problem.detail, type=error_type(status, code), param=param, code=code)
    headers = dict(problem.headers or {})
    if problem.slug in FINAL:
        headers["x-should-retry"] = "false"
    return ShapedError(status, {"error": error.model_dump()}, headers)


SHAPE = ErrorShape(name="OpenAIErrorResponse", prefixes=PREFIXES, render=render,
                   schema=OpenAIErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"))
