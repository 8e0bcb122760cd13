"""The parts of a job's view that are models of their own: why it failed, its billing, what
each clip was asked to be, its regenerations, what each stage cost, its receipt, and what its
reported images earned. The view itself is services/ingest/domain.py's."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.common.contracts import (
    AspectRatio,
    IdentityMode,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    IdentityUse,
    ProviderCall,
    Resolution,
    SubjectRef,
    VideoSpec,
)


class Failure(BaseModel):
    code: str
    stage: str
    reason: str


class TrainingLine(BaseModel):
    """The order's line for training its subject's identity, held apart from its images: charged
    when the order trained it, released when it reused one or its training failed through no
    fault of yours."""

    state: Literal["reserved", "charged", "released"] = "reserved"
    reserved: int
    charged: int | None = None
    released: int | None = None
    reason: str = ""


class Billing(BaseModel):
    state: Literal["pending", "reserved", "settled", "rejected"] = "pending"
    reserved: int | None = None
    charged: int | None = None
    released: int | None = None
    retry_tokens_used: int = 0
    price_book_version: str | None = None
    revenue_micro_usd: int | None = Field(None, description="what the charged credits are worth, once settled")
    seconds_charged: int | None = Field(None, description="a video job's delivered seconds charged, once settled"
                                                          " (each clip's length rounded up, at most the seconds asked)")
    training: TrainingLine | None = Field(None, description="a job of a subject: the line for training its identity,"
                                                            " when one was held")


class JobSubject(BaseModel):
    """The subject a job is of, and how its identity was carried into the candidates."""

    id: UUID
    kind: str
    name: str
    photo_set_sha256: str
    identity_asked: IdentityMode = Field(description="as the job asked: auto, lora or reference")
    identity: IdentityUse | None = Field(None, description="how the router carried it: trained weights (lora, with"
                                                           " the provider, trainer and weights' hash) or reference")
    training: Literal["training", "trained", "failed"] | None = Field(None, description="this job's training of"
                                                                                         " the identity, if it trained")
    training_reason: str = ""

    @classmethod
    def of(cls, subject: SubjectRef | None, asked: IdentityMode) -> "JobSubject | None":
        if subject is None:
            return None
        return cls(id=subject.subject_id, kind=subject.kind, name=subject.name,
                   photo_set_sha256=subject.photo_set_sha256, identity_asked=asked)

    def with_identity(self, event: IdentityPlanned | IdentityTrained | IdentityTrainingFailed) -> "JobSubject":
        """Once the router said how it carries the identity, trained it, or failed to: a trained
        identity is this job's `lora` from then on."""
        match event:
            case IdentityPlanned():
                return self.model_copy(update={"identity": event.use,
                                               "training": "training" if event.trains else self.training})
            case IdentityTrained():
                use = IdentityUse(subject_id=event.subject_id, mode="lora", identity_id=event.identity_id,
                                  provider=event.provider, model=event.model, weights_sha256=event.weights_sha256)
                return self.model_copy(update={"identity": use, "training": "trained"})
            case IdentityTrainingFailed():
                return self.model_copy(update={"training": "failed",
                                               "training_reason": f"{event.failure_code}: {event.reason}"})


class Clips(BaseModel):
    """What a video job asked of each clip."""

    duration_s: float
    aspect_ratio: AspectRatio
    resolution: Resolution
    fps: int | None = Field(None, description="null: the model's own rate")

    @classmethod
    def of(cls, video: VideoSpec | None) -> "Clips | None":
        if video is None:
            return None
        return cls(duration_s=video.duration_s, aspect_ratio=video.aspect_ratio, resolution=video.resolution,
                   fps=video.fps)


class Regeneration(BaseModel):
    """An attempt whose candidates fell short: how many passed, how many more are needed, why."""

    attempt: int
    passed: int
    needed: int
    reason: str


class StageCost(BaseModel):
    """What one stage of one attempt cost on one provider: the calls it made there, what they
    were expected to cost and take, and what they did. Calls of a stage run side by side,
    so its latency is its longest call's; its cost is the sum of theirs."""

    attempt: int
    stage_index: int
    stage: str
    provider: str
    calls: int
    candidates: int
    expected_cost_micro_usd: int
    cost_micro_usd: int
    expected_latency_ms: int
    latency_ms: int


def stage_costs(attempt: int, calls: list[ProviderCall]) -> list[StageCost]:
    grouped: dict[tuple[int, str, str], list[ProviderCall]] = {}
    for call in calls:
        grouped.setdefault((call.stage_index, call.stage, call.provider), []).append(call)
    return [StageCost(attempt=attempt, stage_index=index, stage=stage, provider=provider, calls=len(group),
                      candidates=sum(c.candidates for c in group),
                      expected_cost_micro_usd=sum(c.expected_cost_micro_usd for c in group),
                      cost_micro_usd=sum(c.cost_micro_usd for c in group),
                      expected_latency_ms=max(c.expected_latency_ms for c in group),
                      latency_ms=max(c.latency_ms for c in group))
            for (index, stage, provider), group in sorted(grouped.items())]


class ReceiptRef(BaseModel):
    """The job's signed receipt: its hash, and where to get it."""

    sha256: str = Field(description="SHA-256 of the receipt's RFC 8785 canonical JSON")
    url: str


class ReportOutcome(BaseModel):
    n: int
    outcome: Literal["refunded", "retry_token", "declined"]
    credits: int = 0
    reason: str
