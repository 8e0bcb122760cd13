"""`/v1/evaluations`: images the line did not make, judged by the scorer as a job's candidates
are (same profiles, tiers, early exit and reasons), charged per image judged, without any
generation or provider call. One evaluation answers at once; a batch (up to the plan's
`evaluation_batch_images`) runs in the background and tells its webhook_url when it ends."""

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from services.common import problems
from services.common.problems import Problem
from services.ingest.accounts import Submitter, evaluation_refusal, tenant_plan
from services.ingest.deps import (
    Caller,
    EvaluationRounds,
    JobsReader,
    JobsSubmitter,
    Objects,
    Plans,
    Runtime,
    Settings,
)
from services.ingest.evaluations import store as evaluation_store
from services.ingest.evaluations.judging import checked_profile
from services.ingest.evaluations.models import Evaluation, EvaluationBatchRequest, EvaluationRequest, JudgedBy
from services.ingest.evaluations.sources import Sources
from services.ingest.evaluations.store import NewEvaluation
from services.ingest.evaluations.work import Workshop
from services.ingest.inputs import Screening
from services.ingest.ledger_calls import Ledger, LedgerClient, LedgerStub, QuoteAsk
from services.ingest.settings import IngestSettings
from services.ingest.webhooks import check_webhook_url

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
RESPONSES = problems.responses(402, 404, 413, 422, 503)


def workshop_of(request: Request, sources: Sources) -> Workshop:
    return Workshop(sources, request.app.state.ledger_http)


@router.post("", response_model=Evaluation, responses=RESPONSES)
async def create_evaluation(body: EvaluationRequest, request: Request, caller: JobsSubmitter, runtime: Runtime,
                            settings: Settings, objects: Objects, gate: Screening, ledger: Ledger) -> Evaluation:
    """Judge up to four images now: each image's verdict per dimension, with the reason, the
    threshold and the tier, exactly as the scorer judges a job's candidates (the template's
    profile, or `profile`, with your `rules`); an image rejected by a cheap tier is not
    measured by the dearer ones. Images come by `upload_id`, `url` (public addresses only),
    `delivered` (an image of yours) or `b64`, screened like an upload; `references` (up to four
    photos of the person) are compared with each. Charged per image judged, at the price book's
    `evaluation_price_per_image`, once the verdicts are in (402, and no verdicts, without the
    credits). Nothing is generated and no provider is called. As a job is, an evaluation is
    refused before any image is judged (402) while the account owes credits
    (`account-in-debt`), or when the key's spend caps have no room left (`key-cap-reached`)."""
    profile = checked_profile(body, settings)
    tenant = await at_the_door(caller, body=body, images=len(body.images), ledger=ledger, settings=settings)
    workshop = workshop_of(request, Sources(runtime=runtime, settings=settings, objects=objects, gate=gate))
    row: dict[str, Any] = {"id": uuid.uuid4(), "tenant_id": tenant, "kind": "single", "request": stored_request(body)}
    outcomes = await workshop.judge(row, [{"n": n, "source": image.model_dump(mode="json", exclude_none=True)}
                                          for n, image in enumerate(body.images, 1)])
    async with runtime.pool.connection() as conn, conn.transaction():
        await evaluation_store.insert_evaluation(conn, NewEvaluation(
            id=row["id"], tenant_id=tenant, kind="single", status="running", request=stored_request(body),
            profile=profile, sources=[image.shown() for image in body.images]))
        await evaluation_store.record_images(conn, row["id"], outcomes=outcomes)
    await workshop.finish(row)
    shown = await workshop.shown(row["id"], tenant)
    assert shown is not None
    if shown.status == "failed":
        raise Problem(status=402, slug="insufficient-credits", detail=(shown.failure or {}).get("reason", "not enough credits"),
                      extra={"evaluation_id": str(shown.id)})
    return shown


async def at_the_door(caller: Caller, *, body: JudgedBy, images: int, ledger: LedgerStub, settings: IngestSettings) -> str:
    """The caller's tenant, once an evaluation of `images` judged as `body` says may be judged:
    402 while the account owes credits, or when the key's caps have no room for the images
    (each costs a credit at least)."""
    if ledger is not None:
        quote = QuoteAsk(tenant_id=caller.tenant_id, template=body.template, tier="stable", images=images)
        submitter = Submitter(caller.key_id, caller.caps) if caller.key_id is not None else None
        refused = await evaluation_refusal(LedgerClient(ledger, settings.ledger_grpc_timeout_s),
                                                      submitter, quote=quote)
        if refused is not None:
            raise refused
    return caller.tenant_id


def stored_request(body: EvaluationRequest) -> dict[str, Any]:
    """What is kept of the request: how to judge, not the images (kept one by one)."""
    return body.judged_by().model_dump(mode="json", exclude_unset=True)


@router.post("/batches", status_code=202, response_model=Evaluation, responses=RESPONSES | problems.responses(429))
async def create_evaluation_batch(body: EvaluationBatchRequest, request: Request, response: Response,
                                  caller: JobsSubmitter, runtime: Runtime, settings: Settings, objects: Objects,
                                  gate: Screening, plans: Plans, ledger: Ledger, rounds: EvaluationRounds) -> Evaluation:
    """Judge many images in the background (202): up to your plan's `evaluation_batch_images`,
    a few at a time, each as `POST /v1/evaluations` judges it; follow it at
    `GET /v1/evaluations/{id}`, and name a `webhook_url` to be told `evaluation.completed`
    (signed with the secret of GET /v1/webhooks/default/secret). Images given as `b64` are
    screened and stored now; an image that cannot be had is shown with its error and not
    charged. Charged once, per image judged, when the batch ends; refused at once (402) as
    `POST /v1/evaluations` is, for a debt or a key's caps."""
    checked_profile(body, settings)
    tenant = await at_the_door(caller, body=body, images=len(body.images), ledger=ledger, settings=settings)
    async with runtime.pool.connection() as conn:
        plan = plans.get(await tenant_plan(conn, tenant))
    if len(body.images) > plan.evaluation_batch_images:
        raise Problem(status=422, slug="batch-too-large", detail=f"plan {plan.name!r} allows {plan.evaluation_batch_images} images in an"
                      f" evaluation batch; this one has {len(body.images)}",
                      extra={"plan": plan.name, "limit": plan.evaluation_batch_images, "field": "images"})
    if body.webhook_url is not None:
        await check_webhook_url(body.webhook_url, settings)
    sources = Sources(runtime=runtime, settings=settings, objects=objects, gate=gate)
    for n, reference in enumerate(body.references):  # read when the batch runs: checked now
        await sources.named(tenant, reference, name=f"references[{n}]")
    await workshop_of(request, sources).subject_photos(tenant, body.judged_by())
    kept = [{"key": await sources.stored(tenant, image, name=f"images[{n}]")} if image.b64 is not None else
            await sources.named(tenant, image, name=f"images[{n}]") for n, image in enumerate(body.images)]
    evaluation_id = uuid.uuid4()
    async with runtime.pool.connection() as conn, conn.transaction():
        await evaluation_store.insert_evaluation(conn, NewEvaluation(
            id=evaluation_id, tenant_id=tenant, kind="batch", status="pending", request=stored_request(body),
            profile=checked_profile(body, settings), sources=kept, webhook_url=body.webhook_url))
    rounds.wake()
    response.headers["Location"] = f"/v1/evaluations/{evaluation_id}"
    shown = await workshop_of(request, sources).shown(evaluation_id, tenant)
    assert shown is not None
    return shown


@router.get("/{evaluation_id}", response_model=Evaluation, responses=problems.responses(404))
async def get_evaluation(evaluation_id: str, request: Request, tenant: JobsReader, runtime: Runtime,
                         settings: Settings, objects: Objects, gate: Screening) -> Evaluation:
    """An evaluation of yours, with every image's verdict so far."""
    try:
        parsed = uuid.UUID(evaluation_id)
    except ValueError:
        parsed = None
    shown = await workshop_of(request, Sources(runtime=runtime, settings=settings, objects=objects, gate=gate)).shown(parsed, tenant) \
        if parsed else None
    if shown is None:
        raise Problem(status=404, slug="evaluation-not-found", detail=f"no evaluation {evaluation_id!r}")
    return shown
