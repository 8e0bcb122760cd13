"""The template catalogue (`templates.yaml`): what each template asks of its input photo,
the stages that make its images, the profile they are scored with, and how its outputs
are delivered.

A template's input checks name the scorer's dimensions, with bounds and the sentences a
person reads when a photo falls outside them. Services read the catalogue; the scorer
measures the dimensions (its internal API), ingest judges and explains. Its stages are an
ordered list of capabilities the router runs one after the other, each on the output of
the one before; a template without stages generates, as every template did before stages.
Its `delivery` says the output format and quality, a watermark and the thumbnail;
delivery applies it. Its `video` says whether a job may ask for clips (MP4) and must. Its
`subject` says which kind of subject (a person, a product) its jobs may be of, and its `styles`
the styles an order's images are spread over; the catalogue's `subjects` the checks every
photo of a subject passes.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from PIL import ImageColor
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


Capability = Literal["preprocess", "remove_background", "generate", "stylize", "upscale", "animate", "postprocess"]
CAPABILITIES: tuple[str, ...] = get_args(Capability)


class Stage(BaseModel):
    """One step of a template: a capability, its parameters, and optionally the provider it must run on."""

    model_config = FROZEN

    capability: Capability
    params: dict[str, Any] = {}
    provider: str | None = Field(None, description="pin this stage to one provider of the router's registry")


GENERATE_ONLY = (Stage(capability="generate"),)


class Watermark(BaseModel):
    """Text drawn over every delivered image (each frame of a clip), `opacity` 0 to 1."""

    model_config = FROZEN

    text: str = Field(min_length=1, max_length=100)
    opacity: float = Field(0.5, gt=0, le=1)
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"] = "bottom-right"


class Thumbnail(BaseModel):
    """A small copy stored beside each delivered image, its longer side at most `max_side`."""

    model_config = FROZEN

    max_side: int = Field(256, ge=16, le=1024)
    format: Literal["webp", "jpeg", "png"] = "webp"


class ClipDelivery(BaseModel):
    """How a video clip is delivered: an MP4 with its index first, its stream copied unless
    something here (or the template's watermark) needs the frames re-encoded."""

    model_config = FROZEN

    codec: Literal["h264", "vp9", "av1"] | None = Field(
        None, description="re-encode into this codec; None keeps a clip's own (H.264, VP9 or AV1) and re-encodes"
                          " to H.264 where something needs the frames")
    fps: float | None = Field(None, gt=0, le=120, description="deliver at this frame rate, frames blended between")
    max_side: int | None = Field(None, ge=64, le=4096, description="scale a larger clip down, its longer side to this")
    max_kbps: int | None = Field(None, ge=100, description="re-encode a clip whose bitrate is past this cap")
    quality: int = Field(23, ge=0, le=63, description="the encoder's CRF when re-encoding (lower is better)")


class Delivery(BaseModel):
    """How a template's outputs are delivered. `original` keeps the candidate's format; an
    image already in the asked format and without a watermark is delivered byte for byte.
    PNG and WebP keep transparency; JPEG has none, so transparent pixels become white."""

    model_config = FROZEN

    format: Literal["original", "jpeg", "webp", "png", "mp4"] = "original"
    quality: int = Field(90, ge=1, le=100, description="JPEG and WebP encoder quality")
    watermark: Watermark | None = None
    thumbnail: Thumbnail = Thumbnail()
    clip: ClipDelivery = Field(ClipDelivery(), description="video clips only; their thumbnail is a poster frame")


class Style(BaseModel):
    """One style of a template's order across styles: words added to the job's prompt and the
    generation parameters it sets (`backdrop`: a CSS colour name or #rrggbb; `wardrobe`: a
    colour; `light`: soft, window, studio, dramatic or golden; `framing`: close, shoulders or
    waist). Candidate i of a job is made in style i modulo the job's styles."""

    model_config = FROZEN

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    prompt: str = Field("", max_length=300)
    params: dict[str, str] = {}

    @model_validator(mode="after")
    def params_are_known(self) -> "Style":
        unknown = set(self.params) - set(STYLE_PARAMS)
        if unknown:
            raise ValueError(f"style {self.name}: unknown params {sorted(unknown)}; known: {', '.join(STYLE_PARAMS)}")
        for name, allowed in STYLE_PARAMS.items():
            value = self.params.get(name)
            if value is None:
                continue
            if allowed and value not in allowed:
                raise ValueError(f"style {self.name}: {name} must be one of {', '.join(allowed)}")
            if not allowed:
                try:
                    ImageColor.getrgb(value)
                except ValueError:
                    raise ValueError(f"style {self.name}: {name} {value!r} is no colour (a CSS name or #rrggbb)") from None
        return self


# A style's parameters, and the values each may take (empty: any colour).
STYLE_PARAMS: dict[str, tuple[str, ...]] = {
    "backdrop": (), "wardrobe": (), "light": ("soft", "window", "studio", "dramatic", "golden"),
    "framing": ("close", "shoulders", "waist"),
}
SubjectKind = Literal["person", "product"]


class Template(BaseModel):
    model_config = FROZEN

    description: str = ""
    input: TemplateInput | None = None
    delivery: Delivery = Delivery()
    # An empty list is the generate-only pipeline every template had before stages.
    stages: tuple[Stage, ...] = ()
    profile: str | None = Field(None, description="the scoring profile; None: the one named like the template")
    score_all: bool = Field(False, description="measure every dimension of every candidate, not tier by tier")
    video: Literal["never", "optional", "required"] = Field(
        "never", description="whether a job of the template asks for clips (its request's `video`): never, may, must")
    subject: SubjectKind | None = Field(None, description="the kind of subject (POST /v1/subjects) a job of the"
                                                           " template is of: a job may name one; None: never")
    styles: tuple[Style, ...] = Field((), description="the styles a job's images are spread over; empty: one")

    @model_validator(mode="after")
    def style_names_differ(self) -> "Template":
        names = [style.name for style in self.styles]
        if len(set(names)) != len(names):
            raise ValueError(f"style names must differ: {names}")
        return self

    @property
    def pipeline(self) -> tuple[Stage, ...]:
        return self.stages or GENERATE_ONLY

    @property
    def needs_input(self) -> bool:
        """The first stage works on the job's input photo instead of generating."""
        return self.pipeline[0].capability != "generate"

    @model_validator(mode="after")
    def generate_comes_first(self) -> "Template":
        later = [s.capability for s in self.pipeline[1:] if s.capability == "generate"]
        if later:
            raise ValueError("generate can only be the first stage: later stages work on an image")
        return self


class Catalogue(BaseModel):
    model_config = FROZEN

    version: str
    templates: dict[str, Template]
    # What every photo of a subject must pass, by the subject's kind, besides the subject's own
    # checks (one person in all of a person's photos, no near-duplicates, a product found).
    subjects: dict[str, TemplateInput] = {}

    @model_validator(mode="after")
    def subjects_are_kinds(self) -> "Catalogue":
        unknown = set(self.subjects) - set(get_args(SubjectKind))
        if unknown:
            raise ValueError(f"subjects: {sorted(unknown)} are no kind of subject (person, product)")
        return self

    @model_validator(mode="after")
    def needs_name_a_check(self) -> "Catalogue":
        for name, template in self.templates.items():
            checks = template.input.checks if template.input else {}
            for dimension, check in checks.items():
                if check.needs is not None and check.needs not in checks:
                    raise ValueError(f"template {name}: {dimension} needs {check.needs!r}, which it does not check")
        return self

    def pipeline(self, template: str) -> tuple[Stage, ...]:
        found = self.templates.get(template)
        return found.pipeline if found else GENERATE_ONLY

    def delivery(self, template: str | None) -> Delivery:
        """The template's delivery; an unknown template (or none) gets the defaults."""
        found = self.templates.get(template) if template else None
        return found.delivery if found else Delivery()

    def video_templates(self) -> list[str]:
        """The templates whose jobs may ask for clips."""
        return [name for name, template in self.templates.items() if template.video != "never"]

    def input_checks(self, template: str) -> dict[str, InputCheck]:
        found = self.templates.get(template)
        return dict(found.input.checks) if found and found.input else {}

    def subject_checks(self, kind: str) -> dict[str, InputCheck]:
        found = self.subjects.get(kind)
        return dict(found.checks) if found else {}


@lru_cache(maxsize=4)
def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
