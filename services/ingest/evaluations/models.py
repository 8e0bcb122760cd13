"""Evaluations as the API takes and shows them: images (an upload, a URL, an image you were
delivered, or base64), what to judge them by (a template or a profile, your rules, reference
photos, the prompt they were made for), and each image's verdict per dimension. Without I/O."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.api import RequestModel
from services.common.quality.profiles import QualityRules
from services.common.templates import load_catalogue
from services.ingest.inputs import MAX_REFERENCE_BASE64

MAX_REFERENCES = 4
# An image (or reference photo) names where it comes from once: one of these.
SOURCES = ("upload_id", "url", "delivered", "b64")
EVALUATION_EXAMPLE: dict[str, Any] = {"images": [{"url": "https://images.example.com/mug.png"}], "template": "product",
                      "prompt": "a ceramic mug on a wooden table", "rules": {"thresholds": {"sharpness": {"min": 60}}}}


class Delivered(RequestModel):
    """An image you were delivered: its job and its number."""

    job_id: UUID = Field(strict=False)
    n: int = Field(ge=1)


class ImageSource(RequestModel):
    """One image: exactly one of `upload_id` (POST /v1/uploads), `url` (http(s), public addresses
    only), `delivered` (an image of yours) or `b64` (base64 JPEG, PNG or WebP)."""

    upload_id: UUID | None = Field(None, strict=False)
    url: str | None = Field(None, min_length=1, max_length=2000)
    delivered: Delivered | None = None
    b64: str | None = Field(None, min_length=1, max_length=MAX_REFERENCE_BASE64)

    @model_validator(mode="after")
    def exactly_one(self) -> "ImageSource":
        given = [name for name in SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(SOURCES)} (got {len(given)})")
        return self

    def shown(self) -> dict[str, Any]:
        """How the image is named in the answer (base64 is not repeated)."""
        return {"b64": True} if self.b64 is not None else self.model_dump(mode="json", exclude_none=True)


class JudgedBy(RequestModel):
    """What images are judged by: a template's profile or one named, rules, references, the prompt and size."""

    template: str = Field("generic", max_length=64, description="judge as this template's jobs are judged")
    profile: str | None = Field(None, max_length=64, description="a scoring profile instead of the template's")
    rules: QualityRules | None = Field(None, description="quality rules on top of the profile, as a job's `quality`")
    references: list[ImageSource] = Field([], max_length=MAX_REFERENCES,
                                          description="photos of the person the images must show (identity, skin"
                                                      " tone): an image passes when it passes against each")
    subject: UUID | None = Field(None, strict=False, description="a subject of yours (POST /v1/subjects) the images"
                                                                 " must show: up to four of its accepted photos are"
                                                                 " references, opened from their seal by the scorer")
    prompt: str | None = Field(None, max_length=2000, description="what the images were made for (prompt alignment,"
                                                                  " where a CLIP model is configured)")
    size: str | None = Field(None, pattern=r"^\d{2,5}x\d{2,5}$", description="the size asked, WIDTHxHEIGHT")

    @model_validator(mode="after")
    def known_template(self) -> "JudgedBy":
        if self.template not in load_catalogue().templates:
            raise ValueError(f"unknown template {self.template!r}; see GET /v1/templates")
        return self

    def judged_by(self) -> "JudgedBy":
        return JudgedBy.model_validate(self.model_dump(include=set(JudgedBy.model_fields)))


class EvaluationRequest(JudgedBy):
    model_config = ConfigDict(json_schema_extra={"examples": [EVALUATION_EXAMPLE]})

    images: list[ImageSource] = Field(min_length=1, max_length=4, description="at most 4 here; more in a batch")


class EvaluationBatchRequest(EvaluationRequest):
    images: list[ImageSource] = Field(min_length=1, max_length=10_000,
                                      description="up to your plan's evaluation_batch_images")
    webhook_url: str | None = Field(None, min_length=1, max_length=2000,
                                    description="told `evaluation.completed` when the batch ends, signed like a job's"
                                                " webhook_url (GET /v1/webhooks/default/secret)")


class DimensionVerdict(BaseModel):
    value: float | None
    threshold: float
    passed: bool
    reason: str
    tier: int = Field(description="1: every image; 2: the use case's; 3: rules and plugins")
    measured: bool = Field(description="false: not measured, the image's verdict was reached before its tier")


class ImageVerdict(BaseModel):
    n: int
    source: dict[str, Any]
    passed: bool | None = Field(description="null: the image could not be judged (see error)")
    score: float | None = None
    failed: list[str] = []
    not_measured: list[str] = []
    tier_reached: int | None = Field(None, description="the last tier measured: a rejection stops the walk early")
    failed_against_reference: int | None = Field(None, description="the reference photo it failed against")
    dimensions: dict[str, DimensionVerdict] = {}
    error: dict[str, Any] | None = Field(None, description="why the image could not be judged (fetch, decode…)")


class Charge(BaseModel):
    credits: int
    unit_price: int
    price_book_version: str


class Evaluation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "5d0f2f8e-0a47-4d7e-8f51-2b8c9a3e1f60", "object": "evaluation", "kind": "single",
        "status": "completed", "profile": "product", "images_total": 1, "images_done": 1, "passed": 1, "failed": 0,
        "created_at": "2026-11-26T10:00:00Z", "completed_at": "2026-11-26T10:00:01Z",
        "charge": {"credits": 1, "unit_price": 1, "price_book_version": "2026-11-27"},
        "images": [{"n": 1, "source": {"url": "https://images.example.com/mug.png"}, "passed": False, "score": 0.41,
                    "failed": ["sharpness"], "tier_reached": 1, "dimensions": {"sharpness": {
                        "value": 12.5, "threshold": 60, "passed": False, "tier": 1, "measured": True,
                        "reason": "sharpness 12.5 is below the minimum 60"}}}]}]})

    id: UUID
    object: Literal["evaluation"] = "evaluation"
    kind: Literal["single", "batch"]
    status: Literal["pending", "running", "completed", "failed"]
    profile: str | None
    images_total: int
    images_done: int
    passed: int
    failed: int
    created_at: datetime
    completed_at: datetime | None
    charge: Charge | None = Field(None, description="credits charged (per image judged), once the evaluation ended")
    failure: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    images: list[ImageVerdict]
