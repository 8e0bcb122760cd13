"""How a job's end answers an OpenAI-compatible call, without I/O: delivered images are the
answer; any other end is the error OpenAI would give for it, naming the job, so the caller
can look at it (`GET /v1/jobs/{id}`)."""

from services.common.problems import Problem
from services.ingest.jobs import JobView

JOB_ID_HEADER = "Genline-Job-Id"
# A rejection by the ledger, as the problem POST /v1/jobs would have answered.
REJECTIONS = {"insufficient_credits": (402, "insufficient-credits"), "key_cap_reached": (402, "key-cap-reached"),
              "account_in_debt": (402, "account-in-debt"), "unknown_account": (402, "insufficient-credits")}


def job_headers(view: JobView) -> dict[str, str]:
    return {JOB_ID_HEADER: str(view.id)}


def refusal(view: JobView) -> Problem | None:
    """None when the job delivered; else the problem its end is answered with."""
    if view.state in ("succeeded", "partially_succeeded") and view.outputs:
        return None
    failure = view.failure
    reason = failure.reason if failure else f"the job ended {view.state}"
    extra = {"job_id": str(view.id), "state": view.state}
    if view.state == "rejected" and failure is not None:
        status, slug = REJECTIONS.get(failure.code, (400, "job-rejected"))
        return Problem(status=status, slug=slug, detail=f"job {view.id} was rejected: {reason}", headers=job_headers(view), extra=extra)
    if view.state == "canceled":
        return Problem(status=409, slug="job-canceled", detail=f"job {view.id} was canceled: {reason}", headers=job_headers(view), extra=extra)
    return Problem(status=500, slug=f"job-{view.state.replace('_', '-')}", detail=f"job {view.id} ended {view.state}: {reason}; nothing"
                   " was charged for what was not delivered", headers=job_headers(view), extra=extra)


def still_running(view: JobView, waited_s: float, *, retry_attaches: bool) -> Problem:
    """The answer when the job outlives the call's wait: 504 naming the job. A retry is safe, and
    waits on, when the call carried an Idempotency-Key (it attaches to the same job); without
    one it would submit another job, so the client is told not to retry."""
    headers = job_headers(view) | {"x-should-retry": "true" if retry_attaches else "false"}
    return Problem(status=504, slug="job-still-running", detail=f"job {view.id} is still {view.state} after {waited_s:.0f} s; follow it"
                   f" at /v1/jobs/{view.id}, or call again with the same Idempotency-Key to wait on it",
                   headers=headers, extra={"job_id": str(view.id), "state": view.state})
