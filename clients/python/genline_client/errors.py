"""What can go wrong, as exceptions a program can branch on.

The API answers errors as RFC 9457 problem details; each HTTP status maps to one class,
and every field of the problem (`type`, `title`, `detail`, `instance`, `request_id`,
`errors`, and any member particular to its type) is kept on the exception.
"""

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx


class GenlineError(Exception):
    """Every error this client raises."""


class ConfigurationError(GenlineError):
    """No API key, or no usable API URL."""


class APIConnectionError(GenlineError):
    """The API could not be reached, even after retries."""


class WaitTimeout(GenlineError, TimeoutError):
    """The job was not final within the time given to `wait`."""


class ChecksumMismatch(GenlineError):
    """A downloaded image is not the one the job delivered (its sha256 differs)."""


class APIError(GenlineError):
    """The API answered with an error status."""

    def __init__(self, status: int, problem: dict, response: httpx.Response | None = None) -> None:
        self.status = status
        self.problem = problem
        self.type: str = problem.get("type", "about:blank")
        self.title: str = problem.get("title", httpx.codes.get_reason_phrase(status))
        self.detail: str | None = problem.get("detail")
        self.instance: str | None = problem.get("instance")
        self.request_id: str | None = problem.get("request_id")
        self.errors: list[dict] = problem.get("errors") or []
        self.response = response
        super().__init__(f"{status} {self.title}: {self.detail}" if self.detail else f"{status} {self.title}")


class BadRequest(APIError):
    pass


class Unauthorized(APIError):
    """The API key is missing, malformed or not valid."""


class PaymentRequired(APIError):
    """Money stops the job: an API key's spend cap (`cap`, `cap_credits`) has no room for it."""


class PermissionDenied(APIError):
    """The key is valid but may not do this (its scopes)."""


class NotFound(APIError):
    """No such object, or one that belongs to another tenant."""


class Conflict(APIError):
    """The object's state forbids this, e.g. cancelling a final job."""


class PayloadTooLarge(APIError):
    pass


class ValidationError(APIError):
    """The request was refused; `errors` names each invalid field."""


class RateLimited(APIError):
    """Too many requests; `retry_after` is how many seconds to wait, when the API said."""

    def __init__(self, status: int, problem: dict, response: httpx.Response | None = None) -> None:
        super().__init__(status, problem, response)
        self.retry_after: float | None = retry_after(response) if response is not None else None
        if self.retry_after is None and problem.get("retry_after") is not None:
            self.retry_after = float(problem["retry_after"])


class ServerError(APIError):
    """The platform failed (5xx); the request may be retried."""


class ServiceUnavailable(ServerError):
    pass


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 402: PaymentRequired, 403: PermissionDenied, 404: NotFound, 409: Conflict,
              413: PayloadTooLarge, 422: ValidationError, 429: RateLimited, 503: ServiceUnavailable}


def error_class(status: int) -> type[APIError]:
    return _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)


def problem_of(response: httpx.Response) -> dict:
    """The problem in the body; an answer that is not one (a proxy's HTML page, an S3 XML
    error) becomes a problem with the status and an excerpt of the body as its detail."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and "title" in body:
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # the OpenAI-compatible routes' shape
        error = body["error"]
        return {"type": f"/problems/{str(error.get('code') or error.get('type')).replace('_', '-')}",
                "title": response.reason_phrase or str(response.status_code), "status": response.status_code,
                "detail": error.get("message"), "param": error.get("param")}
    excerpt = response.text[:300].strip() if response.content else ""
    return {"type": "about:blank", "title": response.reason_phrase or str(response.status_code),
            "status": response.status_code, "detail": excerpt or None}


def raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    status = response.status_code
    raise error_class(status)(status, problem_of(response), response)


# The services parse Retry-After in services/common/http_headers.py; this copy exists only
# because the client ships alone and must not import the services.
def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
