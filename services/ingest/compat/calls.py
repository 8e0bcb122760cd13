"""One OpenAI-compatible images call: the job it asks for, submitted like any job (screened,
held, generated, scored, delivered, receipted), waited for, and answered in OpenAI's shape."""

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.common.problems import Problem
from services.ingest.accounts import PromptGate, Submitter
from services.ingest.compat.images import ImagesResponse, images_response
from services.ingest.compat.models import ResponseFormat
from services.ingest.compat.outcomes import refusal, still_running
from services.ingest.compat.waiting import Pictures, Waiter
from services.ingest.jobs import JobAdmission, JobRequest

# The job's fields under the names the images API gives them.
PARAM_OF_FIELD = {"images": "n", "end_user": "user", "width": "size", "height": "size", "tier": "quality",
                  "reference_image": "image", "template": "model", "subject": "subject"}


def checked_job(body: dict[str, Any]) -> JobRequest:
    """The job's request, checked as POST /v1/jobs checks it; a field it refuses is named by its
    images-API parameter (400)."""
    try:
        return JobRequest.model_validate(body)
    except ValidationError as error:
        errors = [{"field": PARAM_OF_FIELD.get(str(e["loc"][0]), ".".join(str(p) for p in e["loc"])) if e["loc"]
                   else "body", "message": e["msg"], "code": e["type"]} for e in error.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(status=422, slug="validation-error", detail=detail, extra={"errors": errors}) from None


@dataclass(frozen=True)
class AnswerShape:
    """How the caller wants its answer: links or base64, and the quality it names."""

    response_format: ResponseFormat
    quality: str


@dataclass(frozen=True, kw_only=True)
class ImageCall:
    """What a call goes through: the job's intake, the prompt screen, the wait and the images."""

    intake: JobAdmission
    prompts: PromptGate
    waiter: Waiter
    pictures: Pictures

    async def answer(self, body: JobRequest, *, tenant_id: str, idempotency_key: str | None,
                     submitter: Submitter | None, asked: AnswerShape) -> ImagesResponse:
        """The job's images once it has delivered; its refusal, failure or a 504 naming it
        otherwise. Every answer names the job (Genline-Job-Id)."""
        await self.prompts.check(self.intake.runtime.pool, tenant_id, prompt=body.prompt)
        view = await self.intake.submit(body, tenant_id=tenant_id, idempotency_key=idempotency_key, submitter=submitter)
        view, waited_s = await self.waiter.final_view(view)
        if not view.final:
            raise still_running(view, waited_s, retry_attaches=idempotency_key is not None)
        refused = refusal(view)
        if refused is not None:
            raise refused
        return images_response(view, await self.pictures.data(view, asked.response_format), quality=asked.quality)
