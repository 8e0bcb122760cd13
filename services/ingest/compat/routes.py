"""`/v1/images/generations` and `/v1/images/edits`: OpenAI's Images API, so the `openai`
package and LiteLLM call Genline unchanged (base URL and key aside); and
`/v1/idempotency-keys/{key}`, where a caller whose call timed out finds its job.

Each call is an ordinary job (best of N behind `n`, receipt, provenance, billing, events) that
the call waits for within GENLINE_OPENAI_WAIT_S; errors are OpenAI's (compat/errors.py)."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ValidationError

from services.common import problems
from services.common.problems import Problem
from services.ingest.accounts import PromptGate, PromptScreen, Submitter
from services.ingest.compat import forms
from services.ingest.compat import store as keys_bound
from services.ingest.compat.calls import AnswerShape, ImageCall, checked_job
from services.ingest.compat.images import (
    ImageGenerationRequest,
    ImageOptions,
    ImagesResponse,
    answered_quality,
    as_b64,
    job_request,
)
from services.ingest.compat.models import Alias, ModelBook
from services.ingest.compat.outcomes import JOB_ID_HEADER
from services.ingest.compat.waiting import Pictures, Waiter
from services.ingest.deps import (
    JobsReader,
    JobsSubmitter,
    Objects,
    Plans,
    Runtime,
    Settings,
)
from services.ingest.inputs import Screening
from services.ingest.jobs import JobAdmission, LogWatch, Router, Watch
from services.ingest.ledger_calls import Ledger

router = APIRouter(prefix="/v1/images", tags=["openai"])
keys_router = APIRouter(prefix="/v1/idempotency-keys", tags=["jobs"])
# What OpenAI's clients read from an images call besides the body: the job's id, always.
JOB_HEADER = {"headers": {JOB_ID_HEADER: {"description": "the job behind the call (GET /v1/jobs/{id})",
                                          "schema": {"type": "string", "format": "uuid"}}}}
RESPONSES = problems.responses(400, 401, 403, 404, 409, 422, 429, 500, 503) | {
    504: {"description": "the job is still running when the call's wait is over; the body and Genline-Job-Id"
                         " name it"}, 200: JOB_HEADER}
IdempotencyKey = Annotated[str | None, Header(max_length=255, description="a retry with the same key (the"
                                                                          " `openai` package's own retries"
                                                                          " included) waits on the same job")]
EDIT_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image", "prompt"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "the photo to edit (JPEG, PNG or WebP)"},
        "prompt": {"type": "string"}, "model": {"type": "string"}, "n": {"type": "integer"},
        "size": {"type": "string"}, "quality": {"type": "string"}, "response_format": {"type": "string"},
        "output_format": {"type": "string"}, "user": {"type": "string"}}}}}}}


async def get_models(request: Request) -> ModelBook:
    models: ModelBook = request.app.state.openai_models
    return models


Models = Annotated[ModelBook, Depends(get_models)]


def image_call(intake: JobAdmission, prompts: PromptGate, *, watch: LogWatch) -> ImageCall:
    settings = intake.settings
    return ImageCall(intake=intake, prompts=prompts, waiter=Waiter(intake.runtime, watch, settings.openai_wait_s),
                     pictures=Pictures(intake.objects, settings.link_ttl_s))


def named(answer: ImagesResponse, response: Response) -> ImagesResponse:
    """The answer, with its job named in the headers as every answer of these routes names it."""
    response.headers[JOB_ID_HEADER] = answer.job_id
    response.headers["Location"] = f"/v1/jobs/{answer.job_id}"
    return answer


def asked_of(options: ImageOptions, alias: Alias, *, body: dict[str, Any]) -> AnswerShape:
    return AnswerShape(options.response_format or alias.response_format, answered_quality(options, body))


@router.post("/generations", response_model=ImagesResponse, responses=RESPONSES)
async def create_image(body: ImageGenerationRequest, request: Request, response: Response, caller: JobsSubmitter,
                       runtime: Runtime, settings: Settings, objects: Objects, plans: Plans, gate: Screening,
                       ledger: Ledger, prompts: PromptScreen, routing: Router, models: Models, watch: Watch,
                       idempotency_key: IdempotencyKey = None) -> ImagesResponse:
    """Images from a prompt, as OpenAI's `images.generate` asks for them: `n` images delivered,
    the best of the candidates generated and scored behind them. The call waits for its job
    (GENLINE_OPENAI_WAIT_S) and answers with the job's id in `Genline-Job-Id`; a job still
    running then is answered 504 naming it. Send an `Idempotency-Key` so that a retry (the
    `openai` package's own after a timeout included) waits on the same job instead of
    submitting another, and so that `GET /v1/idempotency-keys/{key}` finds the job of a call
    that timed out. Usage and cost come with the images."""
    alias = models.resolve(body.model)
    job = job_request(body, alias, template=alias.template)
    intake = JobAdmission(runtime=runtime, settings=settings, objects=objects, plans=plans, gate=gate, ledger=ledger, router=routing)
    return named(await image_call(intake, prompts, watch=watch).answer(
        checked_job(job), tenant_id=caller.tenant_id, idempotency_key=idempotency_key,
        submitter=Submitter(caller.key_id, caller.caps), asked=asked_of(body, alias, body=job)), response)


@router.post("/edits", response_model=ImagesResponse, responses=RESPONSES | problems.responses(413),
             openapi_extra=EDIT_FORM)
async def edit_image(request: Request, response: Response, caller: JobsSubmitter, runtime: Runtime,
                     settings: Settings, objects: Objects, plans: Plans, gate: Screening, ledger: Ledger,
                     prompts: PromptScreen, routing: Router, models: Models, watch: Watch,
                     idempotency_key: IdempotencyKey = None) -> ImagesResponse:
    """Your photo edited as the prompt says, as OpenAI's `images.edit` sends it (multipart: the
    photo as `image`, the other parameters as fields). The photo is screened like an upload and
    checked against the template's input checks (422 with what to change); the model's edit
    template runs on it (`image-edit` for the GPT and DALL·E aliases; a template that starts
    from a photo, such as product-cutout, by its name). A `mask` is not supported (400)."""
    form = await forms.edit_form(request, settings.max_upload_bytes)
    if form.mask is not None:
        raise Problem(status=400, slug="unsupported-value", detail="masks are not supported: the prompt says what to change",
                      extra={"param": "mask"})
    if len(form.images) != 1:
        raise Problem(status=400, slug="invalid-image", detail=f"send exactly one photo as `image` ({len(form.images)} were sent)",
                      extra={"param": "image"})
    options = edit_options(form)
    alias = models.resolve(options.model)
    job = job_request(options, alias, template=models.edit_template_of(alias)) | {"reference_image": as_b64(form.images[0])}
    intake = JobAdmission(runtime=runtime, settings=settings, objects=objects, plans=plans, gate=gate, ledger=ledger, router=routing)
    return named(await image_call(intake, prompts, watch=watch).answer(
        checked_job(job), tenant_id=caller.tenant_id, idempotency_key=idempotency_key,
        submitter=Submitter(caller.key_id, caller.caps), asked=asked_of(options, alias, body=job)), response)


class EditOptions(ImageOptions):
    input_fidelity: str | None = None


def edit_options(form: forms.EditForm) -> EditOptions:
    try:
        return EditOptions.model_validate(form.options())
    except ValidationError as error:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"], "code": e["type"]}
                  for e in error.errors()]
        raise Problem(status=422, slug="validation-error", detail="; ".join(f"{e['field']}: {e['message']}" for e in errors),
                      extra={"errors": errors}) from None


class BoundKey(BaseModel):
    key: str
    job_id: UUID
    url: str
    expires_at: datetime


@keys_router.get("/{key}", response_model=BoundKey, responses=problems.responses(404) | {200: {"content": {
    "application/json": {"example": {"key": "order-42", "job_id": "0b7e6a52-8a8f-4a4e-9c47-3f0d2a1c9b11",
                                     "url": "/v1/jobs/0b7e6a52-8a8f-4a4e-9c47-3f0d2a1c9b11",
                                     "expires_at": "2026-11-27T10:00:00Z"}}}}})
async def get_idempotency_key(key: str, tenant: JobsReader, runtime: Runtime, settings: Settings) -> BoundKey:
    """The job an `Idempotency-Key` you sent is bound to (for 24 hours), whichever API you sent it
    to: a call that timed out before it was answered finds its job here."""
    async with runtime.pool.connection() as conn:
        bound = await keys_bound.job_of_key(conn, tenant, key=key, ttl_s=settings.idempotency_key_ttl_s)
    if bound is None:
        raise Problem(status=404, slug="idempotency-key-not-found", detail=f"no job is bound to Idempotency-Key {key!r}")
    return BoundKey(key=key, job_id=bound[0], url=f"/v1/jobs/{bound[0]}", expires_at=bound[1])

