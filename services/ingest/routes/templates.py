"""`/v1/templates`: the template catalogue as a client sees it, priced by the ledger."""

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.contracts import Tier
from services.common.quality.profiles import template_profile
from services.common.templates import Template, load_catalogue
from services.ingest.deps import AccountReader, Settings
from services.ingest.ledger_calls import Ledger, call_ledger, pb

router = APIRouter(prefix="/v1", tags=["templates"], responses=problems.responses(503))
TIERS: tuple[Tier, ...] = ("stable", "fast", "low-cost")


class StageInfo(BaseModel):
    capability: str
    params: dict = {}
    provider: str | None = Field(None, description="the provider the stage is pinned to; null: the router picks")


class InputInfo(BaseModel):
    required: bool = Field(description="the template works on your photo (input_upload)")
    description: str | None = None
    checks: dict[str, dict] = Field({}, description="per scorer dimension, the bounds an input photo must keep")


class TemplateInfo(BaseModel):
    name: str
    description: str
    profile: str = Field(description="the scoring profile its images are judged with")
    input: InputInfo
    stages: list[StageInfo]
    prices: dict[str, int] = Field(description="credits per delivered image, by tier (those the price book has)")
    price_book_version: str | None


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
            "prices": {"stable": 25, "fast": 20, "low-cost": 12}, "price_book_version": "2026-11-01"}]}]})

    version: str = Field(description="the catalogue's version")
    templates: list[TemplateInfo]


async def unit_prices(ledger, tenant: str, template: str, timeout_s: float) -> tuple[dict[str, int], str | None]:
    """Credits per image in each tier the price book prices the template in, from the ledger's quotes."""
    prices, version = {}, None
    for tier in TIERS:
        try:
            answer = await call_ledger(ledger.Quote, pb.QuoteRequest(tenant_id=tenant, template=template, tier=tier,
                                                                      images=1), timeout_s)
        except problems.Problem as problem:
            if problem.status != 422:  # 422: no price for this tier; anything else is the ledger's trouble
                raise
            continue
        if answer is not None:
            prices[tier], version = answer.unit_price, answer.pricebook_version
    return prices, version


def template_info(name: str, template: Template, prices: dict[str, int], version: str | None) -> TemplateInfo:
    checks = template.input.checks if template.input else {}
    return TemplateInfo(
        name=name, description=template.description, profile=template_profile(name),
        input=InputInfo(required=template.needs_input, description=template.input.description if template.input else None,
                        checks={d: c.model_dump(include={"min", "max"}, exclude_none=True) for d, c in checks.items()}),
        stages=[StageInfo(capability=s.capability, params=s.params, provider=s.provider) for s in template.pipeline],
        prices=prices, price_book_version=version)


@router.get("/templates", response_model=TemplateList)
async def list_templates(tenant: AccountReader, ledger: Ledger, settings: Settings):
    """Every template: what it makes, the stages that make it, the photo it needs and the checks
    that photo must pass, its scoring profile, and its price per delivered image by tier."""
    catalogue = load_catalogue()
    priced = await asyncio.gather(*(unit_prices(ledger, tenant, name, settings.ledger_grpc_timeout_s)
                                    for name in catalogue.templates))
    return {"version": catalogue.version,
            "templates": [template_info(name, template, *price)
                          for (name, template), price in zip(catalogue.templates.items(), priced)]}
