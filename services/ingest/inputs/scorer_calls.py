"""What ingest asks of the scorer's internal API: measurements of an input photo (or of a
subject's photo, with what it shows), and calibration rows for images people judged. A scorer that does not answer is a 503 with
Retry-After, never a 500."""

from dataclasses import dataclass, field
from typing import Any

import httpx

from services.common.internal_calls import ServiceAuth, signer_of
from services.common.problems import Problem
from services.common.quality.calibration import Judged
from services.ingest.settings import IngestSettings

RETRY_AFTER_S = 5


@dataclass(frozen=True, kw_only=True)
class ScorerQuestion:
    """A POST to the scorer's internal API (a photo's bytes, or a JSON body), and the problem
    ingest answers when the scorer cannot: its type, and what could not be done now."""

    path: str
    problem_type: str
    cannot: str
    photo: bytes | None = field(default=None, repr=False)
    params: dict[str, str] | None = None
    json: Any = None

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": "application/octet-stream"} if self.photo is not None else {}


async def ask_scorer(settings: IngestSettings, question: ScorerQuestion) -> dict[str, Any]:
    """The scorer's answer to `question`, asked as ingest."""
    try:
        async with httpx.AsyncClient(base_url=settings.scorer_url, timeout=settings.scorer_timeout_s,
                                     auth=ServiceAuth(signer_of(settings), "scorer")) as client:
            response = await client.post(question.path, content=question.photo, params=question.params,
                                         json=question.json, headers=question.headers)
            response.raise_for_status()
    except httpx.HTTPError as error:
        raise Problem(status=503, slug=question.problem_type, detail=f"{question.cannot} now ({type(error).__name__}); try again"
                      " shortly", headers={"Retry-After": str(RETRY_AFTER_S)}, extra={"retry_after": RETRY_AFTER_S}) from None
    answer: dict[str, Any] = response.json()
    return answer


async def measure(settings: IngestSettings, photo: bytes, *, dimensions: list[str]) -> dict[str, float | None]:
    """The scorer's values of `dimensions` for `photo` (None where it cannot measure one)."""
    answer = await ask_scorer(settings, ScorerQuestion(
        path="/internal/v1/measurements", problem_type="input-check-unavailable", cannot="the input photo could not be checked",
        photo=photo, params={"dimensions": ",".join(dimensions)}))
    values: dict[str, float | None] = answer["values"]
    return values


async def measure_subject(settings: IngestSettings, photo: bytes, *, question: "SubjectQuestion") -> dict[str, Any]:
    """The scorer's values of the checks' dimensions for a subject's photo, and what the photo
    shows (`subject`: size, fingerprint, faces and embedding, or a product's foreground)."""
    return await ask_scorer(settings, ScorerQuestion(
        path="/internal/v1/measurements", problem_type="subject-screening-unavailable", cannot="the subject's photos could not be checked",
        photo=photo, params={"dimensions": ",".join(question.dimensions), "subject": question.kind}))


@dataclass(frozen=True)
class SubjectQuestion:
    """What is measured of a subject's photo: the kind of subject, and its checks' dimensions."""

    kind: str
    dimensions: tuple[str, ...]


async def calibrate(settings: IngestSettings, judged: list[Judged]) -> list[dict[str, Any]]:
    """The scorer's calibration rows for `judged`, as JSON."""
    answer = await ask_scorer(settings, ScorerQuestion(
        path="/internal/v1/calibration", problem_type="calibration-unavailable", cannot="the scorer could not calibrate",
        json={"images": [image.as_json() for image in judged]}))
    rows: list[dict[str, Any]] = answer["dimensions"]
    return rows
