"""An evaluation's images judged by the scorer (its internal API, the engine a job's candidates
meet) and charged by the ledger (its internal API, at the price book's price per image, once
per evaluation). The profile is checked here first, as a job's is at submission."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from services.common.problems import Problem
from services.common.quality.profiles import ProfileError, job_profile, profile_names
from services.ingest.evaluations.models import Charge, JudgedBy
from services.ingest.inputs import ScorerQuestion, ask_scorer
from services.ingest.settings import IngestSettings

LEDGER_RETRY_AFTER_S = 2


def checked_profile(asked: JudgedBy, settings: IngestSettings) -> str:
    """The name of the profile the images are judged by; 422 as POST /v1/jobs answers an
    unknown profile, invalid rules or a dimension this platform cannot measure."""
    if asked.profile is not None and asked.profile not in profile_names():
        raise Problem(status=422, slug="unknown-profile", detail=f"unknown profile {asked.profile!r}; known: {profile_names()}")
    rules = asked.rules.model_dump(mode="json", exclude_unset=True) if asked.rules is not None else None
    try:
        profile = job_profile(asked.template, asked.profile, rules=rules)
    except ProfileError as error:
        raise Problem(status=422, slug="invalid-quality-rules", detail=str(error)) from None
    capabilities = frozenset({"clip_model"}) if settings.clip_model_dir else frozenset()
    missing = profile.missing_capabilities(capabilities)
    if missing:
        raise Problem(status=422, slug="dimension-unavailable", detail=f"profile {profile.name!r} with these rules requires"
                      f" {', '.join(missing)}, which this platform cannot measure", extra={"unavailable": missing})
    return profile.name


@dataclass(frozen=True, kw_only=True)
class JudgingRequest:
    """What the scorer is asked about some of an evaluation's images (by their internal keys)."""

    tenant_id: str
    asked: JudgedBy
    image_keys: list[str]
    reference_keys: list[str]
    subject_photo_keys: list[str] | None = None

    def body(self) -> dict[str, Any]:
        asked = self.asked
        size = [int(side) for side in asked.size.split("x")] if asked.size else None
        return {"tenant_id": self.tenant_id, "image_keys": self.image_keys, "reference_keys": self.reference_keys,
                "template": asked.template, "profile": asked.profile,
                "rules": asked.rules.model_dump(mode="json", exclude_unset=True) if asked.rules else None,
                "prompt": asked.prompt, "size": size,
                "subject": {"id": str(asked.subject), "photo_keys": self.subject_photo_keys}
                if asked.subject is not None and self.subject_photo_keys else None}


async def judged(settings: IngestSettings, judgement: JudgingRequest) -> list[dict[str, Any]]:
    """The scorer's verdicts, one per image, in order."""
    answer = await ask_scorer(settings, ScorerQuestion(path="/internal/v1/evaluations", problem_type="evaluation-unavailable",
                                                       cannot="the images could not be judged", json=judgement.body()))
    verdicts: list[dict[str, Any]] = answer["verdicts"]
    return verdicts


@dataclass(frozen=True)
class Bill:
    """An evaluation to charge: whose, which, and how many images were judged."""

    tenant_id: str
    evaluation_id: UUID
    images: int


async def charged(ledger: httpx.AsyncClient, bill: Bill) -> Charge:
    """The charge, made once (a retry answers the first); 402 when the credits are not there."""
    try:
        response = await ledger.post(f"/internal/v1/evaluations/{bill.evaluation_id}/charge",
                                     json={"tenant_id": bill.tenant_id, "images": bill.images})
    except httpx.HTTPError:
        response = None
    if response is not None and response.status_code == 402:
        problem = response.json()
        raise Problem(status=402, slug="insufficient-credits", detail=problem.get("detail", "not enough credits"),
                      extra={k: problem[k] for k in ("required", "available") if k in problem})
    if response is None or response.status_code != 201:
        raise Problem(status=503, slug="ledger-unavailable", detail="the ledger could not charge the evaluation; try again shortly",
                      headers={"Retry-After": str(LEDGER_RETRY_AFTER_S)}, extra={"retry_after": LEDGER_RETRY_AFTER_S})
    event = response.json()
    return Charge(credits=event["amount"], unit_price=event["unit_price"], price_book_version=event["pricebook_version"])
