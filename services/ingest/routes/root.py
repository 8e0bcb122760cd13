"""`GET /`: where to go from the API's root: the documentation, the API's document, the
console and the keys receipts are verified with."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["meta"])


class Links(BaseModel):
    docs: str = Field(description="the documentation site: guides, concepts and this API's reference")
    api_reference: str = Field(description="this API's reference, rendered from its OpenAPI document")
    openapi: str = Field(description="the OpenAPI document")
    console: str = Field(description="the web console")
    signing_keys: str = Field(description="the public keys receipts are signed with")


NAME, DESCRIPTION = "Genline", "Ask for K good images; pay only for the ones delivered."
LINKS = {"docs": "/docs/", "api_reference": "/docs/reference/api/", "openapi": "/openapi.json",
         "console": "/console/", "signing_keys": "/.well-known/genline-keys.json"}


class Root(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": NAME, "description": DESCRIPTION,
                                                               "links": {**LINKS}}]})

    name: str
    description: str
    links: Links


@router.get("/", response_model=Root)
async def api_root() -> Root:
    """Where to start: the documentation, the API's reference and document, the console."""
    return Root(name=NAME, description=DESCRIPTION, links=Links(**LINKS))
