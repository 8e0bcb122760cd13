"""The scorer's internal API: measure one photo with named dimensions, judge nothing.

Ingest asks it to check an input photo against its template (services/ingest/inputs/guidance.py)
with the very code that scores candidates, so a threshold means the same on both sides. The
photo is measured at the size it is used at (at most 1,024 pixels a side:
`likeness.working_copy`); with `subject=person|product`, the answer's `subject` says what it
shows besides (services/scorer/subject_photos.py: faces and the face's embedding, or the
product's foreground; size and fingerprint).
Internal: served on the scorer's own port, which only the cluster reaches.
"""

import asyncio
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.quality.profiles import profile_of_dimensions
from services.scorer.dimensions import Scorer, Scoring, UndecodableImage
from services.scorer.dimensions.likeness import working_copy
from services.scorer.subject_photos import UnreadablePhoto, measured_subject

MAX_PHOTO_BYTES = 32 * 1024 * 1024
SUBJECT_KINDS = ("person", "product")


def measured_values(scorer: Scorer, photo: bytes, *, dimensions: tuple[str, ...]) -> dict[str, float | None]:
    """Each dimension's value for `photo`; None where it was not measured (no model, no input)."""
    verdict = scorer.score([photo], Scoring(profile=profile_of_dimensions(dimensions)))[0]
    return {name: _finite(verdict.dimensions[name].value) for name in dimensions}


def measured(scorer: Scorer, photo: bytes, *, dimensions: tuple[str, ...],
             subject: str | None) -> tuple[dict[str, float | None], dict[str, Any] | None]:
    """The dimensions' values, and for a subject's photo what it shows: both read from its
    working copy (the size it is used at), made once. A job's input photo is measured the
    same way: at its own size a phone's 12-megapixel photo read as blurred to the sharpness
    check of a headshot's reference or a video's first frame."""
    working = working_copy(photo)
    values = measured_values(scorer, working, dimensions=dimensions)
    return values, None if subject is None else measured_subject(photo, subject, working=working)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def route(scorer: Scorer) -> Route:
    async def measurements(request: Request) -> JSONResponse:
        names = tuple(n for n in request.query_params.get("dimensions", "").split(",") if n)
        subject = request.query_params.get("subject")
        photo = await request.body()
        if not names or len(photo) > MAX_PHOTO_BYTES or subject not in (None, *SUBJECT_KINDS):
            return JSONResponse({"error": "name dimensions (a subject: person or product) and send at most 32 MiB"},
                                status_code=400)
        try:
            values, shown = await asyncio.to_thread(measured, scorer, photo, dimensions=names, subject=subject)
        except (UndecodableImage, UnreadablePhoto) as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        except ValueError as error:  # an unknown dimension
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse({"values": values} | ({"subject": shown} if shown is not None else {}))

    return Route("/internal/v1/measurements", measurements, methods=["POST"])
