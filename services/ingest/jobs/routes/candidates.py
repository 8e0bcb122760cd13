"""`/v1/jobs/{id}/candidates/{index}/image`: a candidate as the provider made it, passed or
not, so its owner can see what the scores judged (the console's gallery does). Candidates
live in the internal bucket, which has no public links; ingest reads the one asked for after
checking that the job is the caller's."""

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from services.common import problems
from services.common.problems import Problem
from services.common.storage import StorageError
from services.ingest.deps import JobsReader, Objects, Runtime
from services.ingest.jobs import store
from services.ingest.jobs.job_lookup import parse_job_id, refuse_missing

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
# A clip is served as what it is, so a <video> plays it.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm")
PNG_EXAMPLE = "(the PNG bytes)"
IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"description": "the candidate's image, as generated",
                        "content": {t: {"schema": {"type": "string", "format": "binary"},
                                        **({"example": PNG_EXAMPLE} if t == "image/png" else {})}
                                    for t in IMAGE_TYPES}}}
# A candidate never changes once stored, so a browser may keep it for the life of a link.
CACHE_CONTROL = "private, max-age=3600, immutable"


@router.get("/{job_id}/candidates/{index}/image", response_class=Response,
            responses=problems.responses(404, 410) | IMAGE_RESPONSE)
async def candidate_image(job_id: str, index: Annotated[int, Path(ge=0, le=10_000)], tenant: JobsReader,
                          runtime: Runtime, objects: Objects) -> Response:
    """Candidate `index` of the job (the `index` of its entry in `scores`), of any attempt,
    selected or rejected: an image, or a video job's clip (MP4 or WebM) as the provider made it. 404 for a candidate that was not scored (yet), 410 once retention
    has deleted it."""
    async with runtime.pool.connection() as conn:
        view = await store.read_view(conn, parse_job_id(job_id), tenant_id=tenant)
        if view is None:
            await refuse_missing(conn, job_id, tenant=tenant)
    score = next((s for s in view.scores if s.index == index), None)
    if score is None:
        raise Problem(status=404, slug="candidate-not-found", detail=f"job {job_id} has no scored candidate {index}")
    try:
        data = await objects.get_part(objects.internal_bucket, score)
    except StorageError as error:
        if error.status != 404:
            raise
        data = None
    # A delivered candidate that shares its attempt's object is blanked, not deleted, past
    # its retention (delivery's retention.py): its bytes no longer match its digest.
    if data is None or hashlib.sha256(data).hexdigest() != score.sha256:
        raise Problem(status=410, slug="candidate-deleted", detail=f"candidate {index} of job {job_id} is past its retention")
    media_type = score.media_type if score.media_type in IMAGE_TYPES else "application/octet-stream"
    return Response(data, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})
