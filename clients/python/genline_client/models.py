"""The API's answers as pydantic models.

They accept fields this version does not know (`extra="allow"`), so a newer platform does
not break an older client; what is not declared here is still on the object.
"""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# The platform spells these once, in services/common/contracts.py; the client ships alone
# and keeps its own copy.
FINAL_STATES = frozenset({"rejected", "succeeded", "partially_succeeded", "failed", "canceled", "expired"})
SUCCESSFUL_STATES = frozenset({"succeeded", "partially_succeeded"})
# The order a job goes through its states; a final state comes last.
LIFECYCLE = ("submitted", "admitted", "generating", "scoring", "delivering")


class APIModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Failure(APIModel):
    code: str
    stage: str
    reason: str


class Billing(APIModel):
    state: str
    reserved: int | None = None
    charged: int | None = None
    released: int | None = None
    retry_tokens_used: int = 0
    price_book_version: str | None = None


class Output(APIModel):
    """A delivered image or clip: a link signed for a while, and the hash its content must
    have; its size and frames (more than one: an animated image or a video clip), and a
    thumbnail with its own link. A video clip (`media_type` video/mp4) also has its playing
    length (`duration_ms`), frame rate and codec, and its thumbnail is the clip's poster."""

    n: int
    key: str
    url: str
    expires_at: datetime
    sha256: str
    size_bytes: int
    media_type: str
    width: int | None = None
    height: int | None = None
    frames: int = 1
    duration_ms: int = Field(0, description="a clip's playing length as delivered; 0 for a still")
    fps: float = Field(0, description="a video clip's frame rate; 0 for a still")
    codec: str | None = Field(None, description="a video clip's codec (h264, vp9, av1); None for images")
    watermarked: bool = False
    thumbnail_url: str | None = None
    thumbnail_media_type: str | None = None

    @property
    def is_video(self) -> bool:
        return self.media_type.startswith("video/")

    @property
    def poster_url(self) -> str | None:
        """A clip's poster (its sharpest sampled frame): the thumbnail's link."""
        return self.thumbnail_url if self.is_video else None

    @property
    def duration_s(self) -> float:
        return self.duration_ms / 1000


class FirstFrame(APIModel):
    """An image you were delivered, as the first frame of a clip: job `job_id`'s image `n`."""

    job_id: UUID
    n: int = Field(1, ge=1)


class Video(APIModel):
    """What a video job asks for: clips of `duration_s` seconds (priced by the whole second,
    rounded up), in `aspect_ratio` ("16:9", "9:16", "1:1", "4:3", "3:4") at `resolution` (the
    short side: "480p", "720p", "1080p"), at `fps` frames a second where the model takes it
    (None: the model's own). The first frame is the job's `input_upload` (or
    `reference_image`), or `first_frame`, an image you were delivered; with neither, the
    clip is made from the prompt alone (text-to-video)."""

    duration_s: float = Field(gt=0)
    aspect_ratio: str = Field("16:9", pattern=r"^[1-9][0-9]*:[1-9][0-9]*$")
    resolution: str = Field("720p", pattern=r"^[1-9][0-9]*p$")
    fps: int | None = Field(None, ge=1)
    first_frame: FirstFrame | None = None


class Upload(APIModel):
    """A screened photo, stored upright and without metadata; a job names it by `id`
    (`input_upload`), e.g. the first frame of an image-to-video job."""

    id: UUID
    media_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    created_at: datetime
    url: str


class Candidate(APIModel):
    """A generated candidate with its scores; `failed` names the dimensions that rejected it
    and `not_measured` those the scorer did not measure (each dimension's reason says why).
    A candidate with `judged` false neither passed nor failed: the job had enough better ones."""

    index: int
    attempt: int = 1
    provider: str | None = None
    media_type: str | None = Field(None, description="the candidate's file: image/png …, video/mp4 for a clip")
    passed: bool
    score: float | None = None
    failed: list[str] = []
    not_measured: list[str] = []
    judged: bool = True
    dimensions: dict[str, dict[str, Any]] = {}

    @property
    def rejected(self) -> bool:
        return self.judged and not self.passed


class Job(APIModel):
    id: UUID
    state: str
    template: str
    prompt: str
    images: int
    candidates: int
    seed: int
    created_at: datetime
    updated_at: datetime
    timestamps: dict[str, datetime] = {}
    reasons: dict[str, str] = {}
    failure: Failure | None = None
    attempts: int = 0
    scores: list[Candidate] = []
    selected: list[int] = []
    outputs: list[Output] = []
    billing: Billing | None = None
    provider_cost_micro_usd: int = 0
    video: dict[str, Any] | None = Field(None, description="a video job's clips as asked; None for an image job")
    subject: dict[str, Any] | None = Field(None, description="the subject the job is of, and how its identity was"
                                                             " carried (mode, provider, model, weights hash)")
    styles: list[str] | None = Field(None, description="the styles its images are spread over")

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def history(self) -> list[tuple[str, datetime]]:
        """The states the job went through and when it entered each, in that order (states
        entered at the same instant, in the order of a job's course)."""
        return sorted(self.timestamps.items(), key=lambda item: (item[1], _course_rank(item[0])))


def _course_rank(state: str) -> int:
    return LIFECYCLE.index(state) if state in LIFECYCLE else len(LIFECYCLE)


class SubmittedJob(APIModel):
    """The answer to a submission: the job is accepted and moves on asynchronously."""

    id: UUID
    state: str
    created_at: datetime
    url: str


class JobSummary(APIModel):
    id: UUID
    state: str
    template: str
    images: int
    delivered: int
    created_at: datetime
    updated_at: datetime
    failure: Failure | None = None
    url: str


class JobPage(APIModel):
    data: list[JobSummary]
    next: str | None = Field(None, description="cursor of the next (older) page; None on the last page")


class Preview(APIModel):
    """A candidate that passed: its `index`, and `url`, its image, relative to the API's base
    URL and read with your API key (`client.jobs.preview(preview)` fetches it)."""

    index: int
    url: str


class Progress(APIModel):
    """How far a job has come, from a `progress` entry of its event log (`JobEvent.progress`).
    Entries come while the job generates and scores; `generated`, `scored` and `passing`
    never go down within a job, and a small job may finish without any.

    `candidates`: candidates planned so far (every attempt); `generated`: stored so far;
    `scored`: with a verdict (or left unjudged) so far; `passing`: passed so far;
    `images`: the images the job delivers; `needed`: how many more must pass;
    `eta_s`: seconds until the job is expected final (None: not known yet);
    `previews`: the candidates that passed since the previous progress entry."""

    candidates: int
    generated: int
    scored: int
    passing: int
    images: int
    needed: int
    eta_s: float | None = None
    previews: list[Preview] = []


class JobEvent(APIModel):
    """An entry of a job's event log: `seq` numbers a job's entries 1, 2, 3 … without gaps.
    On the stream of all a tenant's jobs, `job_id` says whose entry it is and `cursor`
    numbers all of the tenant's entries the same way."""

    seq: int
    type: str
    time: datetime | None = None
    payload: dict[str, Any] = {}
    job_id: UUID | None = None
    cursor: int | None = None

    @property
    def new_state(self) -> str | None:
        """The state the job entered, for a `state` entry; None for other entries."""
        return self.payload.get("state") if self.type == "state" else None

    @property
    def final(self) -> bool:
        return self.new_state in FINAL_STATES

    @property
    def progress(self) -> Progress | None:
        """How far the job has come, for a `progress` entry; None for other entries."""
        return Progress.model_validate(self.payload) if self.type == "progress" else None


class JobEvents(APIModel):
    """A page of a job's event log; `next` is the `after` of the next page, None at the end."""

    job_id: UUID
    state: str
    data: list[JobEvent]
    next: int | None = None


class PlanLimits(APIModel):
    name: str
    requests_per_s: float
    burst: int
    concurrent_jobs: int | None = None
    images_per_day: int | None = None
    priority: int = 0
    images_per_job: int | None = Field(None, description="the most images one job may ask for")
    candidates_per_job: int | None = Field(None, description="the most candidates one job may ask for")


class UsageLimit(APIModel):
    """One limit of the plan and where you stand against it (`limit` None: the plan sets none)."""

    name: str
    used: int
    limit: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None


class UsageDay(APIModel):
    """One UTC day: the jobs that ended, the images they delivered and the credits they were
    charged, summed from your signed receipts."""

    date: date
    jobs: int
    images: int
    credits: int


class Usage(APIModel):
    """Your plan, its limits and where you stand against each, counted as the limits count;
    `daily`, your last days oldest first (today last)."""

    tenant_id: str
    plan: PlanLimits
    requests_today: int
    images_today: int
    jobs_in_progress: int
    credits_held: int | None = None
    resets_at: datetime
    limits: list[UsageLimit]
    daily: list[UsageDay] = []


class Grant(APIModel):
    id: str
    source: str
    amount: int
    remaining: int
    expires_at: str | None = None


class Account(APIModel):
    """Your credits: `available` to hold for new jobs, `pending` held for jobs in progress, and
    `owed`, what a refund or a lost dispute left you owing: while it is above 0 new jobs are
    refused (`PaymentRequired`, `account-in-debt`) until credits bought pay it."""

    tenant_id: str
    available: int
    posted: int
    pending: int
    owed: int = 0
    retry_tokens: int = 0
    report_policy: str | None = None
    grants: list[Grant] = []

    @property
    def in_debt(self) -> bool:
        return self.owed > 0


class Checkout(APIModel):
    """A checkout opened for a credit pack: send the payer to `url`, the payment processor's
    page. The credits arrive once the processor says the payment succeeded."""

    session_id: str
    url: str
    pack: str
    credits: int
    amount_minor: int
    currency: str


class PhotoVerdict(APIModel):
    """One photo offered to a subject and its verdict: accepted, or refused with `reasons`."""

    n: int
    sha256: str
    accepted: bool
    reasons: list[str] = []
    identity_distance: float | None = None
    near_duplicate_of: int | None = None
    eyes: float | None = Field(None, description="a person's photo: the open eyes found in its face")
    source: str = ""


class WaivedCheck(APIModel):
    """A check a subject's candidates are not held to, and why."""

    dimension: str
    reason: str


class Subject(APIModel):
    """A person or a product your jobs may be of (`client.subjects`)."""

    id: UUID
    kind: str
    name: str
    state: str = Field(description="screening, ready, training, trained or failed")
    keep: bool = False
    photos_accepted: int = 0
    photos_refused: int = 0
    photo_set_sha256: str | None = None
    reason: str = ""
    identity: dict[str, Any] | None = None
    photos: list[PhotoVerdict] = []
    waived_checks: list[WaivedCheck] = Field([], description="checks its candidates will not be held to, and why")
    created_at: datetime
    updated_at: datetime


class SubjectPage(APIModel):
    data: list[Subject]
    next: str | None = None


class PhotosAdded(APIModel):
    subject: Subject
    added: list[PhotoVerdict]
