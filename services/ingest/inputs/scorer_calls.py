"""What ingest asks of the scorer's internal API: measurements of an input photo, and
calibration rows for images people judged. A scorer that does not answer is a 503 with
Retry-After, never a 500."""

from typing import Any

import httpx

from services.common.internal_calls import ServiceAuth, signer_of
from services.common.problems import Problem
from services.common.quality.calibration import Judged
from services.ingest.settings import IngestSettings

RETRY_AFTER_S = 5


async def ask_scorer(settings: IngestSettings, path: str, unavailable: tuple[str, str],
                     **request: Any) -> dict[str, Any]:
    """POST `request` to the scorer's `path`, as ingest; `unavailable` is the problem's type
    and what it says could not be done now."""
    try:
        async with httpx.AsyncClient(base_url=settings.scorer_url, timeout=settings.scorer_timeout_s,
                                     auth=ServiceAuth(signer_of(settings), "scorer")) as client:
            response = await client.post(path, **request)
            response.raise_for_status()
    except httpx.HTTPError as error:
        problem_type, what = unavailable
        raise Problem(503, problem_type, f"{what} now ({type(error).__name__}); try again shortly",
                      {"Retry-After": str(RETRY_AFTER_S)}, extra={"retry_after": RETRY_AFTER_S}) from None
    answer: dict[str, Any] = response.json()
    return answer


async def measure(settings: IngestSettings, photo: bytes, dimensions: list[str]) -> dict[str, float | None]:
    """The scorer's values of `dimensions` for `photo` (None where it cannot measure one)."""
    answer = await ask_scorer(settings, "/internal/v1/measurements",
                              ("input-check-unavailable", "the input photo could not be checked"),
                              content=photo, params={"dimensions": ",".join(dimensions)},
                              headers={"content-type": "application/octet-stream"})
    values: dict[str, float | None] = answer["values"]
    return values


async def calibrate(settings: IngestSettings, judged: list[Judged]) -> list[dict[str, Any]]:
    """The scorer's calibration rows for `judged`, as JSON."""
    answer = await ask_scorer(settings, "/internal/v1/calibration",
                              ("calibration-unavailable", "the scorer could not calibrate"),
                              json={"images": [image.as_json() for image in judged]})
    rows: list[dict[str, Any]] = answer["dimensions"]
    return rows
