"""`/v1/templates`: the template catalogue as a client sees it, priced by the ledger."""

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.contracts import Tier
from services.common.quality.profiles import template_profile
from services.common.templates import Template, load_catalogue
from services.ingest.deps import AccountReader, Settings
from services.ingest.ledger_calls import Ledger, LedgerClient, QuoteAsk

router = APIRouter(prefix="/v1", tags=["templates"], responses=problems.responses(503))
TIERS: tuple[Tier, ...] = ("stable", "fast", "low-cost")


class StageInfo(BaseModel):
    capability: str
    params: dict[str, Any] = {}
    provider: str | None = Field(None, description="the provider the stage is pinned to; null: the router picks")


class InputInfo(BaseModel):
    required: bool = Field(description="the template works on your photo (input_upload)")
    description: str | None = None
    checks: dict[str, dict[str, Any]] = Field({}, description="per scorer dimension, the bounds an input photo must keep")


class StyleInfo(BaseModel):
    name: str
    prompt: str = Field("", description="words added to a job's prompt for this style's images")
    params: dict[str, str] = Field({}, description="backdrop, wardrobe, light, framing")


class TemplateInfo(BaseModel):
    name: str
    description: str
    profile: str = Field(description="the scoring profile its images are judged with")
    input: InputInfo
    stages: list[StageInfo]
    prices: dict[str, int] = Field(description="credits per delivered image, by tier (those the price book has)")
    video: Literal["never", "optional", "required"] = Field(
        "never", description="whether its jobs ask for clips (`video` in POST /v1/jobs): never, may, must")
    second_prices: dict[str, dict[str, int]] = Field(
        {}, description="a video template's credits per delivered second of clip, by tier and resolution; each"
                        " delivered clip is charged its length rounded up to whole seconds, at most the seconds asked")
    price_book_version: str | None
    subject: Literal["person", "product"] | None = Field(None, description="the kind of subject (POST /v1/subjects)"
                                                                           " its jobs are of; null: none")
    styles: list[StyleInfo] = Field([], description="the styles its images are spread over (a job may name some)")


class TemplateList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": "2026-11-22", "templates": [{
            "name": "studio-headshot", "description": "the uploaded portrait cropped to the face, stylised and upscaled",
            "profile": "headshot",
            "input": {"required": True, "description": "a photo of the person the headshot is of",
                      "checks": {"faces": {"min": 1, "max": 1}}},
            "stages": [{"capability": "preprocess", "params": {"crop": "face"}, "provider": None},
                       {"capability": "stylize", "params": {"style": "studio"}, "provider": None},
                       {"capability": "upscale", "params": {"factor": 2}, "provider": None}],
            "prices": {"stable": 25, "fast": 20, "low-cost": 12}, "video": "never", "second_prices": {},
            "price_book_version": "2026-11-26"}, {
            "name": "text-to-video", "description": "a video clip (MP4) from a prompt, made by a text-to-video model",
            "profile": "video", "input": {"required": False, "description": None, "checks": {}},
            "stages": [{"capability": "generate", "params": {"output": "video"}, "provider": None}],
            "prices": {}, "video": "required",
            "second_prices": {"stable": {"480p": 6, "720p": 10, "1080p": 20}, "fast": {"480p": 5, "720p": 8, "1080p": 16},
                              "low-cost": {"480p": 3, "720p": 5, "1080p": 10}},
            "price_book_version": "2026-11-26"}]}]})

    version: str = Field(description="the catalogue's version")
    templates: list[TemplateInfo]


@dataclass
class Prices:
    """A template's prices as the ledger quotes them: per image by tier, per second of clip by
    tier and resolution (a video template's), and the price book's version."""

    per_image: dict[str, int] = field(default_factory=dict)
    per_second: dict[str, dict[str, int]] = field(default_factory=dict)
    version: str | None = None


async def template_prices(ledger: LedgerClient, tenant: str, *, name: str) -> Prices:
    """The template's prices in each tier the price book prices it in, from the ledger's quotes
    (a quote of a clip for a template that only makes clips)."""
    template = load_catalogue().templates[name]
    prices = Prices()
    clip_only = template.video == "required"
    for tier in TIERS:
        quote = QuoteAsk(tenant_id=tenant, template=name, tier=tier, video_duration_s=1, video_resolution="480p") if clip_only \
            else QuoteAsk(tenant_id=tenant, template=name, tier=tier)
        try:
            answer = await ledger.quote(quote)
        except problems.Problem as problem:
            if problem.status != 422:  # 422: no price for this tier; anything else is the ledger's trouble
                raise
            continue
        if answer is None:
            continue
        prices.version = answer.pricebook_version
        if not clip_only:
            prices.per_image[tier] = answer.unit_price
        if template.video != "never" and answer.second_prices:
            prices.per_second[tier] = dict(answer.second_prices)
    return prices


def template_info(name: str, template: Template, *, prices: Prices) -> TemplateInfo:
    checks = template.input.checks if template.input else {}
    return TemplateInfo(
        name=name, description=template.description, profile=template_profile(name),
        input=InputInfo(required=template.needs_input, description=template.input.description if template.input else None,
                        checks={d: c.model_dump(include={"min", "max"}, exclude_none=True) for d, c in checks.items()}),
        stages=[StageInfo(capability=s.capability, params=s.params, provider=s.provider) for s in template.pipeline],
        prices=prices.per_image, video=template.video, second_prices=prices.per_second,
        price_book_version=prices.version, subject=template.subject,
        styles=[StyleInfo(name=s.name, prompt=s.prompt, params=dict(s.params)) for s in template.styles])


@router.get("/templates", response_model=TemplateList)
async def list_templates(tenant: AccountReader, ledger: Ledger, settings: Settings) -> dict[str, Any]:
    """Every template: what it makes, the stages that make it, the photo it needs and the checks
    that photo must pass, its scoring profile, its price per delivered image by tier, a video
    template's price per delivered second of clip by tier and resolution, and a template of a
    subject's kind of subject and styles."""
    catalogue = load_catalogue()
    client = LedgerClient(ledger, settings.ledger_grpc_timeout_s)
    priced = await asyncio.gather(*(template_prices(client, tenant, name=name) for name in catalogue.templates))
    return {"version": catalogue.version,
            "templates": [template_info(name, template, prices=prices)
                          for (name, template), prices in zip(catalogue.templates.items(), priced)]}
