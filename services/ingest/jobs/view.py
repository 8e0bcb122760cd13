"""The job read model, without I/O: a job's view (JobView) as clients read it and the read
model stores it, with the parts that are models of their own (why it failed, its billing and
training line, its subject, what each clip was asked to be, its regenerations, what each
stage cost, its receipt, what its reported images earned), and a log entry before it is
numbered. How events move a view is jobs/domain.py's; what the log
tells, jobs/job_log.py's; the store reads and writes these."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.common.contracts import (
    FINAL_STATES,
    AspectRatio,
    CandidateScore,
    DeliveredImage,
    Event,
    IdentityMode,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    IdentityUse,
    JobSpec,
    ProviderCall,
    Resolution,
    SealedText,
    SubjectRef,
    VideoSpec,
)
from services.common.sealing import ERASED


class Failure(BaseModel):
    code: str
    stage: str
    reason: str


class TrainingLine(BaseModel):
    """The order's line for training its subject's identity, held apart from its images: charged
    when the order trained it (its weights copied and checked), released when it reused one,
    went by reference, or its training failed or was stopped."""

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
    refused_outputs: int = Field(0, description="outputs refused before scoring (damaged, blank, not what was asked):"
                                                " in the cost, never scored")


def refused_outputs(calls: list[ProviderCall]) -> list[dict[str, object]]:
    """The calls whose outputs were refused before scoring: which provider and stage, how many,
    what they cost, and why."""
    return [{"provider": c.provider, "stage": c.stage, "outputs": c.refused_outputs, "cost_micro_usd": c.cost_micro_usd,
             "reason": c.detail} for c in calls if c.refused_outputs]


def refusal_note(calls: list[ProviderCall]) -> str:
    """What a job's reason adds for outputs refused before scoring ('' for none)."""
    refused = [c for c in calls if c.refused_outputs]
    if not refused:
        return ""
    count = sum(c.refused_outputs for c in refused)
    return f"; {count} output{'s' if count > 1 else ''} refused before scoring ({refused[0].detail})"


def stage_costs(attempt: int, calls: list[ProviderCall]) -> list[StageCost]:
    grouped: dict[tuple[int, str, str], list[ProviderCall]] = {}
    for call in calls:
        grouped.setdefault((call.stage_index, call.stage, call.provider), []).append(call)
    return [StageCost(attempt=attempt, stage_index=index, stage=stage, provider=provider, calls=len(group),
                      candidates=sum(c.candidates for c in group),
                      expected_cost_micro_usd=sum(c.expected_cost_micro_usd for c in group),
                      cost_micro_usd=sum(c.cost_micro_usd for c in group),
                      expected_latency_ms=max(c.expected_latency_ms for c in group),
                      latency_ms=max(c.latency_ms for c in group),
                      refused_outputs=sum(c.refused_outputs for c in group))
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


# The job's states in the order the API has always listed them; the final ones are
# contracts.FINAL_STATES.
State = Literal[
    "submitted", "admitted", "rejected", "generating", "scoring", "delivering",
    "succeeded", "partially_succeeded", "failed", "canceled", "expired",
]

_ORDER = ["submitted", "admitted", "generating", "scoring", "delivering"]


def rank(state: str) -> int:
    return len(_ORDER) if state in FINAL_STATES else _ORDER.index(state)


class Progress(BaseModel):
    """Where a large job stands while it is generated and scored (CandidatesChecked)."""

    candidates: int = Field(description="candidates planned so far, every attempt")
    generated: int = Field(description="candidates stored so far")
    scored: int = Field(description="candidates scored so far")
    passing: int = Field(description="candidates that pass so far")
    needed: int = Field(description="passing images still missing")
    eta_s: float | None = Field(None, description="seconds until the job is expected to be scored; None: unknown")


# A job's progress is announced (JobProgressed, `job.progress` webhooks) at most this often.
PROGRESS_ANNOUNCED_EVERY_S = 5.0
# A view announced with more scores than this (JobFinished, webhooks) carries only the selected
# candidates' scores, so the event stays small whatever the job's size; GET /v1/jobs/{id} has all.
ANNOUNCED_SCORES_MAX = 100


class JobView(BaseModel):
    id: UUID
    tenant_id: str
    state: State
    template: str
    template_version: str | None = Field(None, description="the template catalogue's version at submission")
    prompt: str
    images: int
    candidates: int  # N: what the router generated, every attempt counted (its plan until it reports)
    generated: dict[int, int] = {}  # candidates generated per attempt
    seed: int
    profile: str | None = None
    scoring_profile: str | None = Field(None, description="the profile the job is scored with: its own, else its"
                                                          " template's")
    profile_version: str | None = Field(None, description="a digest of that profile's checks with the job's rules")
    quality: dict[str, Any] | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    model_version: str | None = None
    deadline_s: int | None = None
    min_images: int | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    metadata: dict[str, str] | None = Field(None, description="your labels, as submitted")
    video: Clips | None = Field(None, description="a video job's clips as asked; its outputs are clips (video/mp4)"
                                                  " with duration_ms, fps, codec and frames, the poster as thumbnail")
    end_user: str | None = Field(None, description="your customer the job is for, as submitted")
    subject: JobSubject | None = Field(None, description="the person or product the job is of, and how its identity"
                                                         " was carried")
    styles: list[str] | None = Field(None, description="the styles its images are spread over, each an equal share")
    created_at: datetime
    updated_at: datetime
    timestamps: dict[str, datetime]
    reasons: dict[str, str] = {}  # why the job entered each state of `timestamps`
    cancel_requested_at: datetime | None = None
    cancel_requested_as: Literal["canceled", "expired"] | None = None  # how the job ends if nobody answers
    failure: Failure | None = None
    attempts: int = 0
    regenerations: list[Regeneration] = []
    scores: list[CandidateScore] = []
    selected: list[int] = []
    progress: Progress | None = Field(None, description="a large job's progress while it is generated and scored")
    outputs: list[DeliveredImage] = []
    billing: Billing = Billing()
    provider_cost_micro_usd: int = 0
    stages: list[StageCost] = Field([], description="cost and latency per attempt, stage and provider; they add up to"
                                                    " provider_cost_micro_usd")
    reports: list[ReportOutcome] = []
    receipt: ReceiptRef | None = Field(None, description="the signed receipt, once the job is final and settled")
    # The prompt as events carry it, sealed with the job's data key (None for jobs submitted
    # before prompts were sealed): JobFinished announces the view with it.
    sealed_prompt: SealedText | None = Field(None, exclude=True)
    # The final state reached, until the view holds what it implies (then it is `state`);
    # never shown to clients, who would otherwise see the final state early.
    reached: State | None = Field(None, exclude=True)
    # When the job's progress was last announced (JobProgressed), and how many times.
    progress_announced_at: datetime | None = Field(None, exclude=True)
    progress_announcements: int = Field(0, exclude=True)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def stored_json(self) -> str:
        """The view as the read model keeps it: what clients see, and what is held back. A
        sealed prompt is kept sealed only (`prompt` empty): whoever reads the table (an
        auditor, a backup) sees no prompt without the job's data key; `with_prompt` opens it
        for the tenant."""
        sealed = self.sealed_prompt.model_dump() if self.sealed_prompt else None
        announced_at = self.progress_announced_at.isoformat() if self.progress_announced_at else None
        return json.dumps(self.model_dump(mode="json") | {
            "prompt": "" if self.prompt_sealed else self.prompt,
            "reached": self.reached, "sealed_prompt": sealed, "progress_announced_at": announced_at,
            "progress_announcements": self.progress_announcements})

    @property
    def prompt_sealed(self) -> bool:
        """The prompt is kept sealed (jobs submitted before prompts were sealed keep theirs)."""
        return self.sealed_prompt is not None and self.sealed_prompt.ciphertext is not None

    def announced(self) -> dict[str, Any]:
        """The view as JobFinished carries it: what clients see, the prompt sealed; a large
        job's scores cut to its selected candidates' (`scores_omitted` says how many are left out)."""
        view = self.model_dump(mode="json") | {
            "prompt": (self.sealed_prompt or SealedText(clear=self.prompt)).model_dump()}
        if len(self.scores) > ANNOUNCED_SCORES_MAX:
            selected = set(self.selected)
            view["scores"] = [score for score in view["scores"] if score["index"] in selected]
            view["scores_omitted"] = len(self.scores) - len(view["scores"])
        return view


def submitted_view(spec: JobSpec, prompt: str | None = None) -> JobView:
    """The new job's view; `prompt` is the spec's sealed prompt opened (None: the clear text
    of a spec from before prompts were sealed)."""
    at = spec.submitted_at
    prompt = prompt if prompt is not None else spec.prompt.clear or ""
    sealed = spec.prompt if spec.prompt.ciphertext is not None else None
    return JobView(id=spec.job_id, tenant_id=spec.tenant_id, state="submitted", template=spec.template,
                   template_version=spec.template_version, prompt=prompt, sealed_prompt=sealed,
                   images=spec.images, candidates=spec.candidates, seed=spec.seed, profile=spec.profile,
                   scoring_profile=spec.profile_name, profile_version=spec.profile_version,
                   quality=spec.quality_rules, width=spec.width, height=spec.height,
                   model=spec.model, model_version=spec.model_version, deadline_s=spec.deadline_s,
                   min_images=spec.min_images, webhook_url=spec.webhook_url, webhook_events=spec.webhook_events,
                   metadata=spec.metadata, end_user=spec.end_user, video=Clips.of(spec.video),
                   subject=JobSubject.of(spec.subject, spec.identity),
                   styles=[style.name for style in spec.styles] if spec.styles else None,
                   created_at=at, updated_at=at, timestamps={"submitted": at},
                   reasons={"submitted": "submitted by the client"})


def erased(view: JobView, at: datetime) -> JobView:
    """What is kept of an erased job (its id answers 410): everything but its prompt."""
    return view.model_copy(update={"prompt": ERASED, "sealed_prompt": None, "updated_at": at})


def with_receipt(view: JobView, sha256: str) -> JobView:
    return view.model_copy(update={"receipt": ReceiptRef(sha256=sha256, url=f"/v1/jobs/{view.id}/receipt")})


class NewEntry(BaseModel):
    """An entry of a job's log before it is numbered."""

    type: str
    time: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Change:
    """What an event (None: a request of the service's own) did to a job, and when."""

    before: JobView
    after: JobView
    event: Event | None
    at: datetime


@dataclass(frozen=True)
class Period:
    """A span of time, [since, until)."""

    since: datetime
    until: datetime
