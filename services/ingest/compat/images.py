"""OpenAI's Images API in Genline's terms, without I/O: a generation or an edit request as the
job it asks for, and a final job as OpenAI's answer (`created`, `data`, `usage`…), with the
job, its images and its cost besides."""

import base64
import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.api import RequestModel, StorableText
from services.common.contracts import IdentityMode, Tier
from services.common.problems import Problem
from services.common.templates import load_catalogue
from services.ingest.compat.models import Alias, ResponseFormat
from services.ingest.jobs import JobView

Quality = Literal["auto", "high", "medium", "low", "standard", "hd"]
OutputFormat = Literal["png", "jpeg", "webp"]
# OpenAI's qualities as Genline's tiers, and back (a job's tier as the quality it answers with).
TIER_OF_QUALITY: dict[str, Tier] = {"high": "stable", "hd": "stable", "medium": "fast", "standard": "fast",
                                    "low": "low-cost"}
QUALITY_OF_TIER = {"stable": "high", "fast": "medium", "low-cost": "low"}
SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
SIDE_MIN, SIDE_MAX = 64, 2048
FORMAT_OF_MEDIA_TYPE = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


class ImageOptions(RequestModel):
    """What a generation and an edit both take: OpenAI's parameters, and Genline's own as
    extension fields (the `openai` package sends them with `extra_body`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "gpt-image-1", "prompt": "a red bicycle against a brick wall", "n": 2, "size": "1024x1024",
        "quality": "high", "response_format": "url", "user": "customer-42"}]})

    prompt: str = Field(min_length=1, max_length=2000)
    model: str | None = Field(None, min_length=1, max_length=128,
                              description="a template of GET /v1/templates, or a model alias the operator maps"
                                          " (gpt-image-1, dall-e-3…); the first alias when left out")
    n: int | None = Field(None, ge=1, le=100, description="images delivered (best of the candidates generated)")
    size: str | None = Field(None, max_length=16, description="WIDTHxHEIGHT (64 to 2048 each), or auto")
    quality: Quality | None = Field(None, description="high and hd: the stable tier; medium and standard: fast;"
                                                      " low: low-cost; auto: the model's")
    response_format: ResponseFormat | None = Field(None, description="url (a signed link) or b64_json")
    output_format: OutputFormat | None = Field(None, description="the delivered images are encoded so (as OpenAI's GPT"
                                                                 " image models encode them); the template's format"
                                                                 " when left out")
    output_compression: int | None = Field(None, ge=0, le=100, description="accepted; the template sets quality")
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = Field(None, description="accepted; prompts are always screened")
    style: Literal["vivid", "natural"] | None = Field(None, description="accepted and not used")
    user: Annotated[StorableText, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="your end user: the job's end_user")
    stream: bool | None = Field(None, description="not supported: false or left out")
    partial_images: int | None = Field(None, ge=0, le=3, description="accepted with stream only")
    # Genline's own, beyond OpenAI's parameters.
    candidates: int | None = Field(None, ge=1, le=1000, description="extension: candidates generated for the n"
                                                                     " delivered (the plan's default oversampling"
                                                                     " when left out)")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="extension: the job's seed")
    metadata: dict[str, str] | None = Field(None, description="extension: the job's labels (as POST /v1/jobs)")
    deadline_s: int | None = Field(None, ge=1, le=7 * 24 * 3600, description="extension: the job's deadline")
    subject: UUID | None = Field(None, strict=False, description="extension: the subject (POST /v1/subjects) the"
                                                                 " images are of; the model names a template for its"
                                                                 " kind (subject-headshots, subject-product)")
    identity: IdentityMode | None = Field(None, description="extension: how the subject's identity is carried")
    styles: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] | None = Field(
        None, min_length=1, max_length=20, description="extension: the template's styles to spread the images over")


class ImageGenerationRequest(ImageOptions):
    """`POST /v1/images/generations`, as OpenAI's Images API takes it."""


def parse_size(size: str | None) -> tuple[int, int] | None:
    if size is None or size == "auto":
        return None
    match = SIZE.match(size)
    width, height = (int(match[1]), int(match[2])) if match else (0, 0)
    if not (SIDE_MIN <= width <= SIDE_MAX and SIDE_MIN <= height <= SIDE_MAX):
        raise Problem(status=400, slug="invalid-size", detail=f"size {size!r} must be auto or WIDTHxHEIGHT, each side from {SIDE_MIN} to"
                      f" {SIDE_MAX} pixels", extra={"param": "size"})
    return width, height


def refuse_unsupported(options: ImageOptions, template: str) -> None:
    if options.stream:
        raise Problem(status=400, slug="unsupported-value", detail="streaming image generation is not supported; leave stream out",
                      extra={"param": "stream"})
    delivered = options.output_format or load_catalogue().delivery(template).format
    if options.background == "transparent" and delivered == "jpeg":
        raise Problem(status=400, slug="unsupported-value", detail="a transparent background needs output_format png or webp:"
                      " JPEG has no transparency", extra={"param": "output_format"})
    if options.background == "transparent" and load_catalogue().delivery(template).format != "png":
        raise Problem(status=400, slug="unsupported-value", detail="a transparent background needs a template that cuts out its subject"
                      " (model product-cutout, through /v1/images/edits)", extra={"param": "background"})


def job_request(options: ImageOptions, alias: Alias, *, template: str) -> dict[str, Any]:
    """The body of the job an images request asks for (POST /v1/jobs's JobRequest)."""
    refuse_unsupported(options, template)
    size = parse_size(options.size)
    tier = TIER_OF_QUALITY.get(options.quality or "auto") or alias.tier or "stable"
    body: dict[str, Any] = {"prompt": options.prompt, "template": template, "tier": tier, "images": options.n or 1,
                            "candidates": options.candidates, "seed": options.seed, "metadata": options.metadata,
                            "end_user": options.user, "deadline_s": options.deadline_s, "model": alias.model,
                            "subject": str(options.subject) if options.subject else None,
                            "identity": options.identity, "styles": options.styles,
                            "output_format": options.output_format}
    if size is not None:
        body["width"], body["height"] = size
    return {key: value for key, value in body.items() if value is not None}


class Cost(BaseModel):
    """Extension: what the call cost, as the job's billing says once the ledger settled it."""

    credits_charged: int | None = Field(None, description="credits charged for the images delivered")
    credits_reserved: int | None = None
    price_book_version: str | None = None
    billing_state: str


class ImageData(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesUsage(BaseModel):
    """OpenAI's usage (Genline counts no tokens: they are 0), with what Genline counts."""

    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    input_tokens_details: dict[str, int] = {"image_tokens": 0, "text_tokens": 0}
    output_tokens: int = 0
    total_tokens: int = 0
    images: int = Field(description="extension: images delivered")
    candidates: int = Field(description="extension: candidates generated and scored for them")


class ImagesResponse(BaseModel):
    """OpenAI's answer to an images request, with the job behind it (extension fields)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "created": 1795000000, "data": [{"url": "https://…/t-acme/2026/11/0b7e…/1.png?X-Amz-Signature=…"}],
        "background": "opaque", "output_format": "png", "quality": "high", "size": "1024x1024",
        "usage": {"input_tokens": 0, "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
                  "output_tokens": 0, "total_tokens": 0, "images": 1, "candidates": 2},
        "job_id": "0b7e6a52-8a8f-4a4e-9c47-3f0d2a1c9b11", "state": "succeeded",
        "cost": {"credits_charged": 10, "credits_reserved": 10, "price_book_version": "2026-11-27",
                 "billing_state": "settled"}}]})

    created: int
    data: list[ImageData]
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: ImagesUsage
    job_id: str = Field(description="extension: the job (GET /v1/jobs/{id}), also in the Genline-Job-Id header")
    state: str = Field(description="extension: succeeded, or partially_succeeded when fewer than n passed")
    cost: Cost


def images_response(view: JobView, data: list[ImageData], *, quality: str) -> ImagesResponse:
    """A final job as OpenAI answers: its delivered images (links or base64, as `data`), the
    size and format they have, and usage and cost besides."""
    first = view.outputs[0] if view.outputs else None
    billing = view.billing
    return ImagesResponse(
        created=int(view.created_at.timestamp()), data=data, background="opaque",
        output_format=FORMAT_OF_MEDIA_TYPE.get(first.media_type) if first else None,
        quality=quality,
        size=f"{first.width}x{first.height}" if first and first.width and first.height else None,
        usage=ImagesUsage(images=len(view.outputs), candidates=view.candidates), job_id=str(view.id), state=view.state,
        cost=Cost(credits_charged=billing.charged, credits_reserved=billing.reserved,
                  price_book_version=billing.price_book_version, billing_state=billing.state))


def answered_quality(options: ImageOptions, body: dict[str, Any]) -> str:
    """The quality the answer names: the one asked for, else the tier's."""
    return options.quality or QUALITY_OF_TIER[body["tier"]]


def as_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
