"""The template catalogue (`templates.yaml`): what each template asks of its input photo.

A template's input checks name the scorer's dimensions, with bounds and the sentences a
person reads when a photo falls outside them. Services read the catalogue; the scorer
measures the dimensions (its internal API), ingest judges and explains.
"""

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CATALOGUE = Path(__file__).with_name("templates.yaml")
FROZEN = ConfigDict(extra="forbid", frozen=True)


class InputCheck(BaseModel):
    """One dimension an input photo must keep within [min, max], and what to say when it does not."""

    model_config = FROZEN

    min: float | None = None
    max: float | None = None
    below: str | None = None
    above: str | None = None
    needs: str | None = Field(None, description="a check that must pass for this one to mean anything")

    @model_validator(mode="after")
    def bounds_have_sentences(self) -> "InputCheck":
        if self.min is None and self.max is None:
            raise ValueError("an input check needs min, max or both")
        if (self.min is not None and not self.below) or (self.max is not None and not self.above):
            raise ValueError("each bound needs its sentence: min with below, max with above")
        return self


class TemplateInput(BaseModel):
    model_config = FROZEN

    description: str
    checks: dict[str, InputCheck] = {}


class Template(BaseModel):
    model_config = FROZEN

    input: TemplateInput | None = None


class Catalogue(BaseModel):
    model_config = FROZEN

    version: str
    templates: dict[str, Template]

    @model_validator(mode="after")
    def needs_name_a_check(self) -> "Catalogue":
        for name, template in self.templates.items():
            checks = template.input.checks if template.input else {}
            for dimension, check in checks.items():
                if check.needs is not None and check.needs not in checks:
                    raise ValueError(f"template {name}: {dimension} needs {check.needs!r}, which it does not check")
        return self

    def input_checks(self, template: str) -> dict[str, InputCheck]:
        found = self.templates.get(template)
        return dict(found.input.checks) if found and found.input else {}


@lru_cache(maxsize=4)
def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
