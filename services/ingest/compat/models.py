"""What the OpenAI-compatible API's `model` names: a template of the catalogue, or an alias
the operator maps onto one (models.yaml, or the file GENLINE_OPENAI_MODELS_PATH names)."""

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.contracts import Tier
from services.common.problems import Problem
from services.common.templates import load_catalogue

ResponseFormat = Literal["url", "b64_json"]


class Alias(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str
    edit_template: str | None = None
    tier: Tier | None = None
    model: str | None = Field(None, description="a model to pin: only the providers that serve it are used")
    response_format: ResponseFormat = "url"


class ModelBook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    edit_template: str
    aliases: dict[str, Alias] = {}

    @model_validator(mode="after")
    def templates_exist(self) -> "ModelBook":
        known = load_catalogue().templates
        named = [self.edit_template] + [t for a in self.aliases.values() for t in (a.template, a.edit_template) if t]
        unknown = sorted({t for t in named if t not in known})
        if unknown:
            raise ValueError(f"the model aliases name templates the catalogue does not have: {unknown}")
        return self

    def resolve(self, model: str | None) -> Alias:
        """The alias `model` names, a template named directly as one, or the first alias when
        the request names none (OpenAI's own default is its first image model); 404
        `model_not_found` otherwise, as OpenAI answers an unknown model."""
        if model is None:
            return next(iter(self.aliases.values()), Alias(template="generic"))
        if model in self.aliases:
            return self.aliases[model]
        if model in load_catalogue().templates:
            template = load_catalogue().templates[model]
            return Alias(template=model, edit_template=model if template.needs_input else None)
        raise Problem(status=404, slug="model-not-found", detail=f"The model '{model}' does not exist: name a template of GET"
                      f" /v1/templates or one of {sorted(self.aliases)}", extra={"param": "model"})

    def edit_template_of(self, alias: Alias) -> str:
        return alias.edit_template or self.edit_template


def load_models(path: str | Path | None = None) -> ModelBook:
    text = Path(path).read_text() if path else (resources.files("services.ingest.compat") / "models.yaml").read_text()
    return ModelBook.model_validate(yaml.safe_load(text))
