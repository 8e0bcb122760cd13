"""A batch's line as the job it asks for (at bulk priority, under its own idempotency key),
and a recorded line as the line of the output or error file OpenAI's Batch API gives:
`{id, custom_id, response: {status_code, request_id, body}, error}`. Without I/O."""

import json
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from services.common.problems import Problem
from services.ingest.batches.store import DELIVERED
from services.ingest.compat import (
    AnswerShape,
    ImageGenerationRequest,
    ImagesResponse,
    ModelBook,
    answered_quality,
    checked_job,
    job_request,
    refusal,
    render_error,
)
from services.ingest.jobs import JobRequest, JobView

# Why a line's job did not end before its batch did.
UNFINISHED = {"expired": ("batch_expired", "the batch expired before this request's job ended; it was canceled"),
              "cancelled": ("batch_cancelled", "the batch was cancelled before this request's job ended")}


def line_key(batch_id: UUID, line: int) -> str:
    """The line's Idempotency-Key: submitted again after a restart, it finds its first job."""
    return f"batch:{batch_id}:{line}"


def line_job(body: dict[str, Any], endpoint: str, *, models: ModelBook) -> tuple[JobRequest, AnswerShape | None]:
    """The job a line asks for, at bulk priority; an images line's answer as it asks for it."""
    if endpoint == "/v1/jobs":
        return checked_job(body | {"priority": "bulk"}), None
    try:
        options = ImageGenerationRequest.model_validate(body)
    except ValidationError as error:
        errors_ = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"], "code": e["type"]}
                   for e in error.errors()]
        raise Problem(status=422, slug="validation-error", detail="; ".join(f"{e['field']}: {e['message']}" for e in errors_),
                      extra={"errors": errors_}) from None
    alias = models.resolve(options.model)
    job = job_request(options, alias, template=alias.template)
    asked = AnswerShape(options.response_format or alias.response_format, answered_quality(options, job))
    return checked_job(job | {"priority": "bulk"}), asked


def refused_body(problem: Problem) -> tuple[int, dict[str, Any]]:
    rendered = render_error(problem)
    return rendered.status, rendered.body


def result_line(row: dict[str, Any], response: dict[str, Any] | None, *, error: dict[str, str] | None) -> bytes:
    line = {"id": f"batch_req_{row['line']}", "custom_id": row["custom_id"], "response": response, "error": error}
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def delivered(row: dict[str, Any]) -> JobView | None:
    """The line's job, when it delivered."""
    view = JobView.model_validate(row["view"]) if row.get("view") else None
    return view if view is not None and view.state in DELIVERED and view.outputs else None


def error_line(row: dict[str, Any], batch_status: str) -> bytes:
    """The error file's line of a line refused, or whose job ended without images or did not end."""
    if row["job_id"] is None:
        return result_line(row, {"status_code": row["status_code"], "request_id": None, "body": row["error"]}, error=None)
    view = JobView.model_validate(row["view"]) if row.get("view") else None
    if view is None:
        return result_line(row, None, error={"code": "job_erased", "message": f"job {row['job_id']} was erased"})
    if not view.final:
        code, message = UNFINISHED.get(batch_status, ("batch_unfinished", "the job has not ended"))
        return result_line(row, None, error={"code": code, "message": message})
    problem = refusal(view)
    assert problem is not None
    status, body = refused_body(problem)
    return result_line(row, {"status_code": status, "request_id": str(view.id), "body": body}, error=None)


def never_run_line(line: int, raw: bytes, *, batch_status: str) -> bytes:
    """The error file's line of an input line its batch ended (cancelled, or expired) before
    submitting: no response, and the error that says why it never ran."""
    code, message = UNFINISHED[batch_status]
    custom_id = json.loads(raw).get("custom_id")
    return result_line({"line": line, "custom_id": custom_id}, None,
                       error={"code": code, "message": message.replace("this request's job ended", "this request ran")})


def output_line(row: dict[str, Any], body: ImagesResponse | JobView) -> bytes:
    return result_line(row, {"status_code": 200, "request_id": str(row["job_id"]),
                             "body": body.model_dump(mode="json")}, error=None)
