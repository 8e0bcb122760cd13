"""The scorer's internal API: images the line did not make, judged as a job's candidates are.

Ingest's /v1/evaluations stores the tenant's images in the internal bucket and asks here for
their verdicts: the same profile (a template's, or one named, with the caller's rules and the
tenant's moderation ceiling), the same engine, tier by tier (an image rejected by a cheap tier
is not measured by the dearer ones), so an image gets the verdict it would get inside a job.
Reference photos (up to four, or up to four of a subject's accepted photos, opened with the
subject's key) are each compared with: an image passes when it passes against every one. No
provider is called. Internal: served on the scorer's own port."""

import asyncio
import math
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.data_keys import DataKeys
from services.common.quality.dimensions import DIMENSIONS, registered
from services.common.quality.profiles import ProfileError, job_profile, with_ceiling
from services.common.sealing import BrokenSeal, SubjectField, open_bytes
from services.common.storage import ObjectStore
from services.scorer.dimensions import ImageVerdict, Scorer, Scoring
from services.scorer.handlers import score_decodable
from services.scorer.settings import ScorerSettings

MAX_IMAGES, MAX_REFERENCES = 64, 4


class SubjectPhotos(BaseModel):
    """A subject of the tenant's as references: its accepted photos, sealed under its key."""

    id: UUID
    photo_keys: list[str] = Field(min_length=1, max_length=MAX_REFERENCES)


class EvaluationAsked(BaseModel):
    tenant_id: str = Field(min_length=1)
    image_keys: list[str] = Field(min_length=1, max_length=MAX_IMAGES)
    reference_keys: list[str] = Field([], max_length=MAX_REFERENCES)
    template: str = "generic"
    profile: str | None = None
    rules: dict[str, Any] | None = None
    prompt: str | None = None
    size: tuple[int, int] | None = None
    subject: SubjectPhotos | None = None

    def own(self) -> bool:
        """Every image and photo named is the tenant's."""
        mine, subject = f"{self.tenant_id}/", self.subject
        theirs = f"subjects/{self.tenant_id}/{subject.id}/" if subject else ""
        return all(key.startswith(mine) for key in self.image_keys + self.reference_keys) and (
            subject is None or all(key.startswith(theirs) for key in subject.photo_keys))


@dataclass(frozen=True)
class Bench:
    """What the route judges with: the store the images are read from, the service's settings,
    and the keys that open a subject's sealed photos."""

    objects: ObjectStore
    settings: ScorerSettings
    data_keys: DataKeys

    async def subject_photos(self, subject: SubjectPhotos) -> list[bytes]:
        key = await self.data_keys.subject_key(subject.id)
        if key is None:
            raise ProfileError(f"subject {subject.id} is erased")
        photos = []
        for object_key in subject.photo_keys:
            sealed = await self.objects.get(self.objects.internal_bucket, object_key)
            photos.append(open_bytes(key, SubjectField(subject.id, f"photo/{object_key.rsplit('/', 1)[-1]}"), sealed=sealed))
        return photos


def as_json(verdict: ImageVerdict, reference: int | None) -> dict[str, Any]:
    """A verdict as the evaluation shows it: each dimension with its tier, and where the walk stopped."""
    tiers = {name: registered(name).tier if name in DIMENSIONS else 1 for name in verdict.dimensions}
    dimensions = {name: {"value": None if r.value is None or math.isnan(r.value) else r.value,
                         "threshold": r.threshold, "passed": r.passed, "reason": r.reason, "tier": tiers[name],
                         "measured": r.value is not None and not r.skipped}
                  for name, r in verdict.dimensions.items()}
    measured_tiers = [tiers[name] for name, r in verdict.dimensions.items() if r.value is not None and not r.skipped]
    return {"passed": verdict.passed, "judged": verdict.judged, "score": verdict.score,
            "failed": list(verdict.failed), "not_measured": list(verdict.not_measured),
            "tier_reached": max(measured_tiers, default=0), "failed_against_reference": reference,
            "dimensions": dimensions}


def judged(scorer: Scorer, images: list[bytes], *, scorings: list[Scoring]) -> list[dict[str, Any]]:
    """Each image judged against each scoring (one a reference photo): the first that rejects it
    is its verdict, else the first's."""
    per_scoring = [score_decodable(scorer, images, scoring=scoring) for scoring in scorings]
    verdicts = []
    for index in range(len(images)):
        rejecting = next((n for n, verdicts_ in enumerate(per_scoring) if not verdicts_[index].passed), None)
        chosen = per_scoring[rejecting if rejecting is not None else 0][index]
        verdicts.append(as_json(chosen, rejecting if rejecting is not None and len(scorings) > 1 else None))
    return verdicts


async def scorings_of(asked: EvaluationAsked, bench: Bench) -> list[Scoring]:
    """One scoring per reference photo (the subject's accepted photos among them); one without."""
    settings, objects = bench.settings, bench.objects
    profile = with_ceiling(job_profile(asked.template, asked.profile, rules=asked.rules), "nsfw",
                           maximum=settings.nsfw_max_by_tenant.get(asked.tenant_id))
    base = Scoring(profile=profile, prompt=asked.prompt if settings.clip_model_dir else None,
                   requested_size=asked.size, tiered=True)
    references = [await objects.get(objects.internal_bucket, key) for key in asked.reference_keys]
    references += await bench.subject_photos(asked.subject) if asked.subject else []
    return [replace(base, reference=reference) for reference in references] or [base]


def route(scorer: Scorer, bench: Bench) -> Route:
    async def evaluations(request: Request) -> JSONResponse:
        try:
            asked = EvaluationAsked.model_validate_json(await request.body())
        except ValidationError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        if not asked.own():
            return JSONResponse({"error": "every image must be the tenant's"}, status_code=400)
        try:
            scorings = await scorings_of(asked, bench)
        except (ProfileError, BrokenSeal) as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        missing = scorer.missing_capabilities(scorings[0].profile)
        if missing:
            return JSONResponse({"error": f"profile {scorings[0].profile.name!r} requires {', '.join(missing)},"
                                          " which this scorer cannot compute", "unavailable": missing},
                                status_code=422)
        objects = bench.objects
        images = list(await asyncio.gather(*(objects.get(objects.internal_bucket, key) for key in asked.image_keys)))
        try:
            verdicts = await asyncio.to_thread(judged, scorer, images, scorings=scorings)
        except ValueError as error:  # a reference photo that cannot be decoded
            return JSONResponse({"error": str(error)}, status_code=422)
        return JSONResponse({"profile": scorings[0].profile.name, "verdicts": verdicts})

    return Route("/internal/v1/evaluations", evaluations, methods=["POST"])
