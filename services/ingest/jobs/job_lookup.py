"""A job as a route names it: its id parsed, and the answer for a job the tenant cannot see."""

from typing import NoReturn
from uuid import UUID

from services.common.db import Conn
from services.common.problems import Problem
from services.ingest.jobs import store


def parse_job_id(job_id: str) -> UUID:
    try:
        return UUID(job_id)
    except ValueError:
        raise Problem(status=404, slug="job-not-found", detail=f"no job {job_id!r}") from None


async def refuse_missing(conn: Conn, job_id: str, *, tenant: str) -> NoReturn:
    """410 for a job its tenant erased; 404 otherwise: another tenant's job is as unknown as
    a job that never existed."""
    if await store.was_erased(conn, parse_job_id(job_id), tenant_id=tenant):
        raise Problem(status=410, slug="job-erased", detail=f"job {job_id} and its data were deleted at its owner's request")
    raise Problem(status=404, slug="job-not-found", detail=f"no job {job_id!r}")
