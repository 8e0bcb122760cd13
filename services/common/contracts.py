"""Event contracts: the one place where Genline's events are defined.

Every event is a frozen pydantic model whose CloudEvents type carries its version
(`genline.job.submitted.v1`). Services publish to the topic of their own service and key
every job event by job id, so one job's events stay in order. Money is always an integer:
credits for users, micro-USD for provider costs.

A payload change that old readers cannot read gets a new version and an upcaster in
`UPCASTERS`, so readers only ever see the newest shape. A member added to a shape has a
default, so events written before it read as they are; while the previous release still
runs, writers leave it out for its consumers (services/common/bus/writing.py), and readers
keep and pass on members they do not know (`Contract`).

A tenant's content (the prompt) never travels in clear: it is `SealedText`, encrypted with
the job's own data key (`services.common.sealing`), so destroying that key erases every copy
of it on the topics, in the journals and in backups.
"""

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

PUBLISHERS = ("ingest", "ledger", "router", "scorer", "delivery")
DEFAULT_NAMESPACE = "genline"
# The publishers whose topics each service's consumer group reads.
SUBSCRIPTIONS = {"ingest": ("ledger", "router", "scorer", "delivery"),
                 "ledger": ("ingest", "router", "scorer", "delivery"),
                 "router": ("ledger", "scorer", "ingest"),
                 "scorer": ("router", "ingest"),
                 "delivery": ("scorer", "ingest", "ledger")}


def readers_of(publisher: str) -> tuple[str, ...]:
    """The services whose consumer groups read `publisher`'s topic."""
    return tuple(reader for reader, publishers in SUBSCRIPTIONS.items() if publisher in publishers)


def consumer_group(namespace: str, schema: str) -> str:
    """A service's consumer group, named after its namespace and its schema: `genline-ledger`."""
    return f"{namespace}-{schema}"


def topic_of(publisher: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """`genline.ledger.v1`; another namespace lets several environments share one cluster."""
    return f"{namespace}.{publisher}.v1"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    topics = [topic_of(p, namespace) for p in PUBLISHERS]
    return [*topics, *(dead_letter_topic(t) for t in topics)]


TOPICS = {p: topic_of(p) for p in PUBLISHERS}
ALL_TOPICS = all_topics()


class Contract(BaseModel):
    """A shape events carry. A member it does not know (one a later release added) is kept
    and written again wherever the shape is passed on, never refused nor dropped, so a
    consumer of this release reads what the next one writes (DESIGN.md §15). Code that makes
    a contract is held to its fields by mypy (pydantic's plugin, `init_forbid_extra`)."""

    model_config = ConfigDict(frozen=True, extra="allow")


# Every event contract by its type name, filled as each class is defined (Event): a new
# contract is known to the bus, and to the consumers' exhaustiveness tests, without a list.
EVENT_TYPES: "dict[str, type[Event]]" = {}


class Event(Contract):
    """Base of every event; `event_type` and `publisher` are set by each subclass, which is
    then registered in EVENT_TYPES (a base such as JobEvent names no type and is not)."""

    event_type: ClassVar[str]
    publisher: ClassVar[str]
    # True for a type any service publishes on its own topic (AuditRecorded): on every topic.
    on_every_topic: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" in vars(cls):
            registered = EVENT_TYPES.setdefault(cls.event_type, cls)
            if registered is not cls:
                raise TypeError(f"{cls.__name__} names {cls.event_type!r}, already {registered.__name__}'s")

    @classmethod
    def topic(cls, namespace: str = DEFAULT_NAMESPACE) -> str:
        return topic_of(cls.publisher, namespace)


class JobEvent(Event):
    job_id: UUID
    tenant_id: str


# ---- shared shapes -------------------------------------------------------------------


class SealedText(Contract):
    """A tenant's text as events carry it: AES-256-GCM under the job's data key, which ingest
    keeps and an erasure destroys (`services.common.sealing` seals and opens it). Events
    published before contents were sealed are upcast with their text in `clear`."""

    ciphertext: str | None = Field(None, description="base64 of nonce, ciphertext and tag; None only in old events")
    clear: str | None = Field(None, description="the text of an event published before sealing; '' once erased")

    @classmethod
    def read(cls, value: "str | dict[str, Any] | SealedText") -> "SealedText":
        """The one place old payloads' clear text is upcast: a plain string (an event, a stored
        spec or a job view from before sealing) reads as `clear`."""
        return cls(clear=value) if isinstance(value, str) else cls.model_validate(value)


Tier = Literal["stable", "fast", "low-cost"]
# A job's place among its own tenant's jobs, first served first: a person waiting on the
# result (interactive) ahead of a batch the tenant queued (bulk).
JobPriority = Literal["interactive", "bulk"]
JOB_PRIORITIES: tuple[str, ...] = get_args(JobPriority)
# The states a job ends in, in the order a reader lists them; the one place they are spelled
# (the client package keeps its own copy, since it ships alone).
FinalState = Literal["rejected", "succeeded", "partially_succeeded", "failed", "canceled", "expired"]
FINAL_STATES: tuple[str, ...] = get_args(FinalState)
# The failure code of a job whose deadline passed before enough images passed scoring:
# ingest shows such a job `expired`, and it costs nothing.
DEADLINE_EXCEEDED = "deadline_exceeded"


class KeySpendCaps(Contract):
    """The credits one API key may spend (held by open reservations plus charged) per UTC day
    and per UTC month; None: no cap. The ledger enforces them in the hold's transaction."""

    daily: int | None = Field(None, ge=0)
    monthly: int | None = Field(None, ge=0)


# The shapes a clip may be asked in, and its resolution tiers (the short side, in pixels).
AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4"]
ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
Resolution = Literal["480p", "720p", "1080p"]
RESOLUTIONS: dict[str, int] = {"480p": 480, "720p": 720, "1080p": 1080}


class VideoSpec(Contract):
    """A job whose outputs are clips (MP4): how long, what shape, and where the first frame
    comes from. The router asks a video model for it, the scorer checks the file against it,
    the ledger prices it by the delivered second."""

    duration_s: float = Field(gt=0, le=60, description="each clip's length in seconds")
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    fps: int | None = Field(None, ge=1, le=60, description="frames per second where the model takes it;"
                                                           " None: the model's own")
    first_frame_key: str | None = Field(None, description="the still the clip starts from, in the internal"
                                                          " bucket: an upload, or an image the tenant was"
                                                          " delivered; None: text-to-video, or the"
                                                          " template's own generated still")

    def size(self) -> tuple[int, int]:
        """Width and height the clip is asked at: the tier is the short side, both even."""
        across, down = (int(part) for part in self.aspect_ratio.split(":"))
        short = RESOLUTIONS[self.resolution]
        if across >= down:
            return _even(short * across / down), short
        return short, _even(short * down / across)

    def billed_seconds(self) -> int:
        """The seconds one clip is priced at: whole seconds, rounded up."""
        return max(1, -int(-self.duration_s // 1))


def _even(value: float) -> int:
    return int(round(value / 2)) * 2


# ---- subjects, identities and styles (DESIGN.md §13) --------------------------------

SubjectKind = Literal["person", "product"]
SUBJECT_KINDS: tuple[str, ...] = get_args(SubjectKind)
# A subject's life: photos being added and screened, enough accepted photos to order with,
# an identity being trained from them, trained, a training that failed (reference
# generation still works), and erased (photos, embeddings and weights gone).
SubjectState = Literal["screening", "ready", "training", "trained", "failed", "erased"]
SUBJECT_STATES: tuple[str, ...] = get_args(SubjectState)
# How an order carries its subject's identity into every candidate: a LoRA trained from the
# subject's photos (`lora`), each generation conditioned on the photos (`reference`), or the
# router's choice by expected cost per passing image (`auto`).
IdentityMode = Literal["auto", "lora", "reference"]
IDENTITY_MODES: tuple[str, ...] = get_args(IdentityMode)


class SubjectPhoto(Contract):
    """One accepted photo of a subject in the internal bucket, sealed (AES-256-GCM) with the
    subject's own data key, which ingest keeps like a job's (`DataKeys.key(subject_id)`):
    erasing the subject destroys the key, and every copy of the photo is unreadable at once."""

    key: str = Field(description="the sealed object in the internal bucket")
    sha256: str = Field(description="of the photo's clear bytes: what it is bound to when sealed")
    media_type: str
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class SubjectRef(Contract):
    """The subject an order is of, as ingest resolved it at submission: enough for the router
    to train or condition on its photos and for the scorer to judge candidates against it,
    without reading ingest's tables. Its photos and its embeddings are sealed."""

    subject_id: UUID
    kind: SubjectKind
    name: str = Field(description="the tenant's name for it (not personal data: a label)")
    photos: list[SubjectPhoto] = Field(min_length=1)
    photo_set_sha256: str = Field(description="a digest of the accepted photos' hashes, sorted: an identity"
                                              " is trained from one photo set, and reused while it stays")
    centroid: SealedText | None = Field(None, description="a person's mean face embedding over its photos"
                                                          " (base64 of float32s), sealed with the subject's"
                                                          " key as field `centroid`; None for a product")
    trigger_word: str = Field(description="the token a trained LoRA is prompted with for this subject")


class StyleSpec(Contract):
    """One style of an order across styles (a template's `styles`): what it adds to the
    prompt and which generation parameters it sets (backdrop, wardrobe, light, framing)."""

    name: str
    prompt: str = Field("", description="words added to the job's prompt for this style's candidates")
    params: dict[str, Any] = {}


class IdentityUse(Contract):
    """How an attempt carried a subject's identity: with LoRA weights trained from its photos
    (which provider and model trained them, the weights' hash) or by reference to its photos."""

    subject_id: UUID
    mode: Literal["lora", "reference"]
    identity_id: UUID | None = Field(None, description="the trained identity (lora); None for reference")
    provider: str = Field("", description="lora: the provider that trained it")
    model: str = Field("", description="lora: the trainer; reference: the model conditioned on the photos")
    weights_sha256: str | None = None


# The formats a job may ask its images delivered in, over its template's (OpenAI's output_format).
ImageFormat = Literal["png", "jpeg", "webp"]


class JobSpec(Contract):
    """What the client asked for, carried along so no service needs another's tables."""

    job_id: UUID
    tenant_id: str
    template: str
    tier: Tier = "stable"
    use_retry_tokens: bool = Field(False, description="spend retry tokens before credits")
    prompt: SealedText = Field(description="sealed with the job's data key; only the router and scorer open it")
    images: int = Field(ge=1, description="K: images the client wants delivered")
    candidates: int = Field(ge=1, description="N: candidates to generate, N >= K")
    candidates_fixed: bool = Field(False, description="the client chose N; otherwise the router sizes it")
    seed: int
    submitted_at: datetime
    profile: str | None = Field(None, description="scoring profile; None means the template's own")
    quality_rules: dict[str, Any] | None = Field(None, description="custom rules (Tier 3), checked by the scorer")
    reference_key: str | None = Field(None, description="reference photo in the internal bucket")
    width: int | None = Field(None, ge=64, le=4096, description="requested size; None means the router's default")
    height: int | None = Field(None, ge=64, le=4096)
    model: str | None = Field(None, description="pinned model; None lets the router choose")
    model_version: str | None = Field(None, description="pinned version; only providers serving it are used")
    deadline_s: int | None = Field(None, ge=1, description="seconds after submission; None means no deadline")
    min_images: int | None = Field(None, ge=1, description="at the deadline, deliver if this many passed; None: images")
    webhook_url: str | None = Field(None, description="where delivery sends this job's webhooks, besides the tenant's endpoints")
    webhook_events: list[str] | None = Field(None, description="the WEBHOOK_EVENTS sent to webhook_url; None: all")
    priority: int = Field(0, ge=0, description="the tenant's plan's queue priority, a larger share; set by ingest")
    job_priority: JobPriority = Field("interactive", description="among the tenant's own jobs: interactive ahead of bulk")
    template_version: str | None = Field(None, description="the template catalogue's version at submission")
    profile_name: str | None = Field(None, description="the scoring profile in force, resolved at submission")
    profile_version: str | None = Field(None, description="a digest of that profile's checks with the job's rules")
    api_key_id: UUID | None = Field(None, description="the API key that submitted the job; its spend is counted")
    key_caps: KeySpendCaps | None = Field(None, description="that key's spend caps in force at submission")
    metadata: dict[str, str] | None = Field(None, description="the tenant's own labels, bounded at submission")
    end_user: str | None = Field(None, description="the tenant's customer the job is for, for attribution")
    video: VideoSpec | None = Field(None, description="the job's outputs are clips (MP4) of this shape;"
                                                      " None: images")
    subject: SubjectRef | None = Field(None, description="the person or product every candidate must show")
    identity: IdentityMode = Field("auto", description="how the subject's identity is carried (with `subject`)")
    styles: list[StyleSpec] | None = Field(None, description="the styles the order's images are spread over, each"
                                                             " an equal share of `images`; None: one style")
    output_format: ImageFormat | None = Field(None, description="deliver the images in this format; None: the"
                                                                " template's")

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_sealed(cls, value: Any) -> Any:
        return SealedText.read(value) if isinstance(value, str) else value


class CandidateStep(Contract):
    """One stage of a template's pipeline as one candidate went through it."""

    stage: str = Field(description="the stage's capability: preprocess, generate, stylize, upscale, …")
    provider: str
    cost_micro_usd: int
    latency_ms: int


class CandidateRef(Contract):
    """A generated image in the internal bucket; images never travel on Kafka. A clip (an
    animated WebP) has more than one frame."""

    index: int = Field(description="unique within the job, across all its attempts")
    key: str
    offset: int | None = Field(None, ge=0, description="where the candidate's `size_bytes` start in the object `key`"
                                                       " names, which holds its attempt's candidates one after"
                                                       " another; None: the object is this candidate alone")
    media_type: str
    size_bytes: int
    sha256: str
    width: int
    height: int
    provider: str = Field(description="the provider of the last stage, whose output this is")
    cost_micro_usd: int = Field(description="every stage of this candidate together")
    frames: int = Field(1, ge=1)
    duration_ms: int = Field(0, ge=0, description="a clip's length; 0 for a still")
    fps: float = Field(0, ge=0, description="a video clip's frame rate, read from the file; 0 for a still")
    codec: str = Field("", description="a video clip's codec as the file names it (h264, vp9, av1); '' for"
                                       " images")
    steps: list[CandidateStep] = Field([], description="the stages it went through, in order; empty: generated")
    model: str = Field("", description="the model that generated it, as the provider registry pins it")
    model_version: str = Field("", description="that model's pinned version")
    style: str | None = Field(None, description="the style (of the job's `styles`) it was generated in")


class DimensionScore(Contract):
    value: float | None = Field(description="None when the dimension could not be measured")
    threshold: float
    passed: bool
    reason: str


class CandidateScore(Contract):
    """One candidate's scores. A candidate without a verdict (`judged` false) neither passed
    nor failed: the scorer stopped measuring before its last tier, since the job had K
    passing candidates that it could not outrank (`not_measured` names what was left)."""

    index: int
    attempt: int = 1
    provider: str = ""
    key: str
    offset: int | None = Field(None, ge=0, description="where the candidate's `size_bytes` start in the object `key`"
                                                       " names, which holds its attempt's candidates one after"
                                                       " another; None: the object is this candidate alone")
    sha256: str
    size_bytes: int
    media_type: str
    passed: bool
    score: float
    dimensions: dict[str, DimensionScore]
    failed: list[str] = Field([], description="the dimensions that keep this candidate from shipping")
    not_measured: list[str] = Field(
        [], description="dimensions not measured, each with its reason: the candidate was rejected at an earlier tier,"
                        " or the job had enough better candidates; never a pass")
    judged: bool = Field(True, description="false: no verdict, neither passed nor failed; measuring stopped once the"
                                           " job had enough passing candidates that this one could not outrank")
    model: str = Field("", description="the model that generated it, and its pinned version")
    model_version: str = ""
    style: str | None = Field(None, description="the style it was generated in, for a job across styles")
    fingerprint: str | None = Field(None, description="its perceptual hash (services.common.quality.fingerprints):"
                                                      " near-duplicates are never selected together")


class ManifestClaims(Contract):
    """What a delivered file's signed C2PA manifest claims beyond its job, number and mark id:
    kept with the output, so that `POST /v1/verify` recovers them for a copy whose manifest was
    stripped (found by its watermark)."""

    digital_source_type: str
    software_agent: str
    created_at: str = Field(description="when the manifest says the file was created, RFC 3339")
    provider: str
    model: str = ""
    model_version: str = ""
    template: str | None = None
    soft_binding: str | None = Field(None, description="the watermark algorithm the manifest declares as its soft"
                                                       " binding (c2pa.soft-binding); None: the file carries none")


class DeliveredImage(Contract):
    """A published image: `sha256`, `size_bytes` and `media_type` describe the delivered
    bytes (after the template's format and watermark), and its thumbnail lies beside it."""

    n: int
    key: str
    url: str
    expires_at: datetime
    sha256: str
    size_bytes: int
    media_type: str
    width: int | None = Field(None, description="pixels; None for images delivered before sizes were recorded")
    height: int | None = None
    frames: int = Field(1, ge=1, description="more than 1: an animated clip")
    duration_ms: int = Field(0, ge=0, description="a clip's length as delivered; 0 for a still")
    fps: float = Field(0, ge=0, description="a video clip's frame rate; 0 for a still")
    codec: str | None = Field(None, description="a video clip's codec (h264, vp9, av1); None for images")
    watermarked: bool = False
    thumbnail_key: str | None = Field(None, description="the thumbnail beside the image in the public bucket")
    thumbnail_url: str | None = Field(None, description="the thumbnail's link, expiring with `url`")
    thumbnail_media_type: str | None = None
    manifest_label: str | None = Field(None, description="the label of the image's signed C2PA manifest")
    watermark_id: str | None = Field(None, description="the 48-bit id (hex) its invisible watermark carries")
    claims: ManifestClaims | None = Field(None, description="what the file's C2PA manifest claims (provider, model,"
                                                            " creation time, soft binding); None before they were kept")


# ---- ingest --------------------------------------------------------------------------


class JobSubmitted(JobEvent):
    """Published by ingest when a client submits a job; the ledger reserves credits for it."""

    # v2: the prompt is sealed.
    event_type = "genline.job.submitted.v2"
    publisher = "ingest"
    job: JobSpec


class OutputReported(JobEvent):
    """Published by ingest when a client reports a delivered image as bad; the ledger refunds
    it or issues a retry token, by the tenant's setting, if the report is within the window."""

    event_type = "genline.job.output_reported.v1"
    publisher = "ingest"
    n: int
    reason: str
    reported_at: datetime


class JobCancelRequested(JobEvent):
    """Published by ingest when a client cancels a job (or the sweeper gives up on a job
    stuck past its deadline, `final_state` expired). The router stops generating, the
    scorer drops the job; delivery answers with JobCanceled unless it had already
    published the images, in which case the job stays delivered and charged."""

    event_type = "genline.job.cancel_requested.v1"
    publisher = "ingest"
    reason: str
    final_state: Literal["canceled", "expired"] = "canceled"
    requested_at: datetime


class JobClosed(JobEvent):
    """Published by ingest's sweeper when it asked a job to end (canceled by the client, or
    stuck in a state past that state's deadline) and delivery did not answer in time: the
    job ends here as `final_state`, uncharged. Later events of the job change nothing."""

    event_type = "genline.job.closed.v1"
    publisher = "ingest"
    final_state: Literal["canceled", "expired"]
    stuck_in: str = Field(description="the state the job was in")
    reason: str


class JobFinished(JobEvent):
    """Published by ingest when its read model first shows a job final, with everything that
    state implies, in the transaction that issues the job's signed receipt; delivery sends
    the job's webhooks (`job.<state>`) with `view`, the job as `GET /v1/jobs/{id}` shows it
    (its prompt sealed, as a SealedText), to the tenant's endpoints and the job's own
    `webhook_url`."""

    # v2: the view's prompt is sealed, and the receipt's hash is named.
    event_type = "genline.job.finished.v2"
    publisher = "ingest"
    state: FinalState
    view: dict[str, Any]
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    receipt_sha256: str | None = Field(None, description="the SHA-256 of the job's receipt (its canonical JSON);"
                                                         " None for jobs finished before receipts")


# The webhook event types a tenant can subscribe to: one per final state, sent unless a
# subscription leaves it out, and `job.progress`, sent only where a subscription names it.
FinalWebhookEvent = Literal["job.succeeded", "job.partially_succeeded", "job.failed", "job.canceled", "job.expired",
                            "job.rejected"]
WebhookEvent = Literal[FinalWebhookEvent, "job.progress"]
FINAL_WEBHOOK_EVENTS: tuple[str, ...] = get_args(FinalWebhookEvent)
WEBHOOK_EVENTS: tuple[str, ...] = (*FINAL_WEBHOOK_EVENTS, "job.progress")
PROGRESS_WEBHOOK_EVENT = "job.progress"


class JobProgressed(JobEvent):
    """Published by ingest, at most every few seconds a job, while a large job is generated and
    scored (after a CandidatesChecked): delivery sends `job.progress` webhooks with `progress`,
    as the job's `progress` log entry shows it, to the endpoints and the job's `webhook_url`
    that subscribed to `job.progress` by name."""

    event_type = "genline.job.progressed.v1"
    publisher = "ingest"
    progress: dict[str, Any]
    seq: int = Field(ge=0, description="the job's count of progress announcements: one webhook id each")
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
# The alerts a tenant's endpoints can subscribe to besides, each sent once per crossing.
AlertEvent = Literal["account.balance_low", "account.grant_expiring", "account.key_cap_reached",
                     "billing.topup_failed"]
ALERT_EVENTS: tuple[str, ...] = get_args(AlertEvent)
# A subject's moments a tenant's endpoints can subscribe to (SubjectChanged).
SubjectWebhookEvent = Literal["subject.ready", "subject.trained", "subject.failed"]
SUBJECT_WEBHOOK_EVENTS: tuple[str, ...] = get_args(SubjectWebhookEvent)
EndpointEvent = Literal[WebhookEvent, AlertEvent, SubjectWebhookEvent]
ENDPOINT_EVENTS: tuple[str, ...] = WEBHOOK_EVENTS + ALERT_EVENTS + SUBJECT_WEBHOOK_EVENTS
# What a new endpoint is sent when it names nothing: everything but `job.progress`.
DEFAULT_ENDPOINT_EVENTS: tuple[str, ...] = FINAL_WEBHOOK_EVENTS + ALERT_EVENTS + SUBJECT_WEBHOOK_EVENTS


class JobErased(JobEvent):
    """Published by ingest when a client deletes a final job (`DELETE /v1/jobs/{id}`). Every
    service erases what it keeps of the job's content, once however often it arrives:
    delivery its images in both buckets (and `reference_key`, the reference photo no other
    job of the tenant uses), every service the prompt in its tables and outbox. The billing
    record stays."""

    event_type = "genline.job.erased.v1"
    publisher = "ingest"
    requested_at: datetime
    reference_key: str | None = Field(None, description="the reference photo to delete, when no other job uses it")


class RetentionSet(Event):
    """Published by ingest when an operator sets how long a tenant's images are kept: outputs
    in the public bucket and delivered candidates in the internal one, in days (None: for
    ever). Delivery's sweeper deletes what is older; rejected candidates are kept at least
    the platform's audit period."""

    event_type = "genline.tenant.retention_set.v1"
    publisher = "ingest"
    tenant_id: str
    outputs_days: int | None = Field(None, ge=1)
    candidates_days: int | None = Field(None, ge=1)
    subjects_days: int | None = Field(None, ge=1, description="a subject's photos, embeddings and identities, counted"
                                                          " from its last order (ingest's sweeper erases it);"
                                                          " None: the platform's default")
    set_at: datetime


class SubjectChanged(Event):
    """Published by ingest when a subject's state changes (photos screened into `ready`, an
    identity `training`, `trained` or `failed` as the router reported it, `erased`): delivery
    sends `subject.<state>` webhooks for ready, trained and failed with `view` (the subject as
    `GET /v1/subjects/{id}` shows it: never its photos); the router, on `erased`, deletes the
    identities trained from it, in its bucket and at the providers whose API can. Events of a
    subject carry no job id and may arrive out of order: `seq` rises with each change, and a
    reader keeps the highest."""

    event_type = "genline.subject.changed.v1"
    publisher = "ingest"
    tenant_id: str
    subject_id: UUID
    kind: SubjectKind
    state: SubjectState
    seq: int = Field(ge=0, description="the subject's count of changes: one webhook id each")
    photo_set_sha256: str | None = Field(None, description="the accepted photos' digest when the state was reached")
    reason: str = ""
    view: dict[str, Any] = {}
    changed_at: datetime


# ---- audit ---------------------------------------------------------------------------


class AuditRecorded(Event):
    """Published by whichever service performs an admin or account action (a grant, a
    policy, key, plan, webhook-endpoint or retention change, a job's erasure), on its own
    topic, in the same transaction as the change. The ledger keeps the trail (`audit_log`)
    and lists it to operators; `genline replay audit` rebuilds it from the topics."""

    event_type = "genline.audit.recorded.v1"
    publisher = "ledger"  # the default; `service` names the one that published it
    on_every_topic = True
    service: Literal["ingest", "ledger", "router", "scorer", "delivery"]
    actor: str = Field(description="`operator:<token name>`, `key:<api key id>` or `system:<service>`")
    action: str = Field(description="what was done, `<thing>.<verb>`: credits.grant, report_policy.set, job.erase")
    target: str = Field(description="what it was done to, `<kind>:<id>`: tenant:acme, job:<uuid>")
    tenant_id: str | None = Field(None, description="the tenant concerned, when there is one")
    details: dict[str, Any] = {}
    at: datetime

    def topic(self, namespace: str = DEFAULT_NAMESPACE) -> str:  # type: ignore[override]
        """The topic of the service that performed the action, not a shared one."""
        return topic_of(self.service, namespace)


# ---- ledger --------------------------------------------------------------------------


class CreditsReserved(JobEvent):
    """Published by the ledger when credits for a job are held; the job is admitted and the
    router may start generating."""

    # v2: the job's prompt is sealed.
    event_type = "genline.credits.reserved.v2"
    publisher = "ledger"
    job: JobSpec
    transfer_id: UUID
    amount: int
    unit_price: int
    tokens_held: int = 0
    pricebook_version: str = ""
    max_provider_spend_micro_usd: int = Field(0, description="the router stops generating at this spend")
    training_credits: int = Field(0, ge=0, description="held besides `amount` for training the subject's identity;"
                                                   " charged only if this order trained it (IdentityTrained)")
    spent_on: date | None = Field(None, description="the UTC day the hold counts on in its API key's spend (the"
                                                    " day and the month it starts); None before it was told")


class ReservationRejected(JobEvent):
    """Published by the ledger when a job cannot be admitted (e.g. too few credits)."""

    event_type = "genline.credits.reservation_rejected.v1"
    publisher = "ledger"
    reason_code: Literal["insufficient_credits", "unknown_account", "unknown_template", "unknown_tier", "job_closed",
                         "account_in_debt", "key_cap_reached"]
    reason: str
    required: int
    available: int


class ReservationSettled(JobEvent):
    """Published by the ledger when a job's reservation is closed: the delivered images are
    charged and the rest released. Exactly one per reservation."""

    event_type = "genline.credits.reservation_settled.v1"
    publisher = "ledger"
    transfer_id: UUID
    reserved: int
    charged: int
    released: int
    delivered_images: int
    outcome: Literal["charged", "voided", "expired", "canceled"] = "charged"
    tokens_used: int = 0
    tokens_returned: int = 0
    provider_cost_micro_usd: int = 0
    revenue_micro_usd: int = 0
    delivered_seconds: int = Field(0, description="a video job's delivered seconds charged (each clip's length"
                                                  " rounded up, at most the seconds asked; retry tokens aside)")


class TrainingSettled(JobEvent):
    """Published by the ledger when an order's training line (`CreditsReserved.training_credits`)
    is settled: charged when this order trained the subject's identity (IdentityTrained: its
    weights copied and checked), released when the order reused an identity (IdentityPlanned
    without training), when its training failed or was stopped (IdentityTrainingFailed), and
    when the order ended with neither. Exactly one per training line; at most one charge per
    tenant, subject and identity."""

    event_type = "genline.credits.training_settled.v1"
    publisher = "ledger"
    subject_id: UUID
    identity_id: UUID | None = Field(None, description="the identity trained (charged), where one was")
    held: int = Field(ge=0)
    charged: int = Field(ge=0)
    released: int = Field(ge=0)
    outcome: Literal["charged", "released"]
    reason: str


class CreditsGranted(Event):
    """Published by the ledger when credits are added to a tenant's account."""

    event_type = "genline.credits.granted.v1"
    publisher = "ledger"
    tenant_id: str
    amount: int
    reason: str
    available_after: int
    grant_id: UUID | None = None
    source: str = "admin"
    expires_at: datetime | None = None
    payment_id: str | None = None


class CreditsExpired(Event):
    """Published by the ledger when the unused part of a grant expires (or rolls over into a
    new grant, announced by its own CreditsGranted)."""

    event_type = "genline.credits.expired.v1"
    publisher = "ledger"
    tenant_id: str
    grant_id: UUID
    amount: int
    available_after: int


class EvaluationCharged(Event):
    """Published by the ledger when it charges a tenant for an evaluation (images scored on
    their own, POST /v1/evaluations): `images` at `unit_price` each, once per evaluation."""

    event_type = "genline.evaluation.charged.v1"
    publisher = "ledger"
    tenant_id: str
    evaluation_id: UUID
    images: int
    unit_price: int
    amount: int
    pricebook_version: str
    available_after: int
    charged_at: datetime


class CreditsReclaimed(Event):
    """Published by the ledger when a payment processor takes money back (a refund, a
    dispute) and the ledger takes back its credits: `amount` leaves the balance, and what the
    balance could not cover is owed (`owed_change`, negative when a debt is paid or forgiven).
    While a tenant owes credits, new jobs are refused."""

    event_type = "genline.credits.reclaimed.v1"
    publisher = "ledger"
    tenant_id: str
    amount: int
    owed_change: int
    cause: Literal["refund", "dispute_held", "dispute_lost", "dispute_won", "debt_paid"]
    payment_id: str | None = None
    available_after: int
    owed_after: int


class AutoTopUpFailed(Event):
    """Published by the ledger when an auto top-up's off-session charge fails (declined, or
    the bank asks the cardholder to authenticate), so the tenant can be told: when it is tried
    again (`next_try_at`, as the card networks allow), or `paused` when it is not (a decline
    that may not be retried, or the retries spent)."""

    event_type = "genline.billing.topup_failed.v1"
    publisher = "ledger"
    tenant_id: str
    attempt_id: UUID
    credits: int
    failure_code: str
    failure_message: str
    paused: bool
    next_try_at: datetime | None = None


class CreditsRefunded(JobEvent):
    """Published by the ledger when a reported image is refunded as a new grant."""

    event_type = "genline.credits.refunded.v1"
    publisher = "ledger"
    n: int
    amount: int
    reason: str
    grant_id: UUID


class RetryTokenIssued(JobEvent):
    """Published by the ledger when a reported image earns a free regeneration."""

    event_type = "genline.credits.retry_token_issued.v1"
    publisher = "ledger"
    n: int
    reason: str
    tokens_after: int


class ReportDeclined(JobEvent):
    """Published by the ledger when a report cannot be honoured (outside the window, not a
    delivered image, or reported before)."""

    event_type = "genline.credits.report_declined.v1"
    publisher = "ledger"
    n: int
    reason: str


# ---- router --------------------------------------------------------------------------


class ProviderCall(Contract):
    """One call to one provider within an attempt, with what was expected and what happened."""

    provider: str
    model: str = ""
    model_version: str = ""
    outcome: Literal["ok", "error", "timeout", "rate_limited", "circuit_open", "cancelled"]
    candidates: int = 0
    expected_cost_micro_usd: int = 0
    cost_micro_usd: int = 0
    expected_latency_ms: int = 0
    latency_ms: int = 0
    detail: str = ""
    stage: str = Field("generate", description="the template stage the call was for")
    stage_index: int = Field(0, ge=0, description="that stage's place in the template's pipeline")
    refused_outputs: int = Field(0, ge=0, description="outputs the provider made that the router refused before"
                                                      " scoring (damaged, blank, not what was asked): billed all the"
                                                      " same (in cost_micro_usd), never scored; `detail` says why")


class QualityStatus(Contract):
    """One provider's quality breaker for one template, inside `ProviderStatus`."""

    state: str
    reason: str
    pass_rate: float | None
    verdicts: int


class ProviderStatus(Contract):
    """One provider as the router sees it now: the router reports it (its gRPC ListProviders
    carries these fields) and ingest's operator view `/admin/v1/providers` shows it."""

    name: str
    adapter: str
    state: str
    healthy: bool
    price_micro_usd: int
    pass_rates: dict[str, float]
    prior_pass_rate: float
    in_flight: int
    concurrency_limit: int
    max_concurrency: int
    latency_estimate_s: float
    calls: int
    failures: int
    quality: dict[str, QualityStatus] = {}


class AttemptStarted(JobEvent):
    """Published by the router when it claims a generation attempt and starts calling
    providers, so clients see the job `generating` while it happens. A claim taken over
    after a router died publishes it again for the same attempt; readers apply it once."""

    event_type = "genline.attempt.started.v1"
    publisher = "router"
    attempt: int
    images_needed: int = Field(description="passing images this attempt is to make up")
    started_at: datetime


class CandidatesGenerated(JobEvent):
    """Published by the router when a generation attempt has stored its candidates.

    `final` says the router will generate nothing more for this job (cost cap reached,
    attempts exhausted, or no provider left), so the scorer must decide with what it has. An
    attempt after the first that produced nothing is still published, with no candidates,
    `final` set and the reason in `stop_reason`."""

    # v2: candidates carry their frames, duration and pipeline steps, calls their stage.
    # v3: the job's prompt is sealed.
    event_type = "genline.candidates.generated.v3"
    publisher = "router"
    attempt: int
    images: int
    started_at: datetime
    candidates: list[CandidateRef]
    cost_micro_usd: int
    spent_micro_usd: int = Field(0, description="the job's provider spend so far, this attempt included")
    budget_micro_usd: int = Field(0, description="the job's provider-spend cap; 0 means none")
    final: bool = False
    stop_reason: str | None = None
    calls: list[ProviderCall] = []
    job: JobSpec | None = Field(None, description="what the client asked for: the scorer's profile, rules and prompt")


class CandidatesStored(JobEvent):
    """Published by the router while a large attempt runs, each time calls have stored a chunk
    of its candidates (`candidates`): the scorer scores them at once, so scoring streams
    behind generation and holds one chunk at a time. Chunks are announced only while the
    router holds the attempt's claim; a run taken over after a router died announces its own
    chunks again, and the scorer scores an index once. The attempt's CandidatesGenerated still
    lists every candidate and closes it."""

    event_type = "genline.candidates.stored.v1"
    publisher = "router"
    attempt: int
    images: int
    candidates: list[CandidateRef] = Field(description="this chunk's candidates")
    planned: int = Field(ge=0, description="candidates the attempt is to generate")
    stored: int = Field(ge=0, description="candidates of the attempt stored so far, this chunk included")
    candidates_before: int = Field(0, ge=0, description="candidates of the job's earlier attempts")
    eta_s: float | None = Field(None, ge=0, description="the router's estimate of seconds until the attempt is"
                                                        " generated; None when it has none")
    job: JobSpec


class GenerationFailed(JobEvent):
    """Published by the router when no provider could generate the job's candidates."""

    event_type = "genline.generation.failed.v1"
    publisher = "router"
    attempt: int
    failure_code: str
    reason: str


class IdentityPlanned(JobEvent):
    """Published by the router once per order with a subject, before its first candidate: how
    the subject's identity will be carried (`use`), and whether this order trains it
    (`trains`; an order that finds the identity trained or in training reuses it). Ingest
    shows the subject `training` when this order trains; the ledger releases the order's
    training line when it does not."""

    event_type = "genline.identity.planned.v1"
    publisher = "router"
    use: IdentityUse
    trains: bool
    expected_cost_micro_usd: int = Field(0, ge=0, description="the training's expected cost at the provider")
    planned_at: datetime


class IdentityTrained(JobEvent):
    """Published by the router when a training it started for this order finished and its
    weights were copied into the internal bucket (providers delete outputs): later orders of
    the same subject and photo set reuse it. The ledger charges the order's training line
    (once per subject and identity); ingest shows the subject `trained`."""

    event_type = "genline.identity.trained.v1"
    publisher = "router"
    subject_id: UUID
    identity_id: UUID
    photo_set_sha256: str
    provider: str
    model: str
    weights_key: str = Field(description="the weights in the internal bucket")
    weights_sha256: str
    weights_size_bytes: int = Field(ge=0)
    trigger_word: str
    cost_micro_usd: int = Field(ge=0, description="what the provider billed for the training")
    trained_at: datetime


class IdentityTrainingFailed(JobEvent):
    """Published by the router when a training it started for this order failed or was
    canceled. `tenant_fault` is true only when the tenant stopped it (canceled the order, erased
    the subject), false for the platform's and the provider's failures; the ledger releases the
    training line either way (only weights trained are charged). The order goes on as planning
    chooses (by reference where a model takes the photos), or fails."""

    event_type = "genline.identity.training_failed.v1"
    publisher = "router"
    subject_id: UUID
    identity_id: UUID
    failure_code: str
    reason: str
    tenant_fault: bool = False
    failed_at: datetime


# ---- scorer --------------------------------------------------------------------------


class CandidatesChecked(JobEvent):
    """Published by the scorer when it has scored a chunk of a running attempt
    (CandidatesStored): the chunk's scores, and where the job stands, for the job's progress.
    The job's outcome is decided only once the attempt is closed (CandidatesGenerated)."""

    event_type = "genline.candidates.checked.v1"
    publisher = "scorer"
    attempt: int
    images: int
    scores: list[CandidateScore] = Field(description="this chunk's scores, published here for the first time")
    candidates: int = Field(ge=0, description="candidates planned for the job so far, every attempt")
    generated: int = Field(ge=0, description="candidates of the job stored so far")
    scored: int = Field(ge=0, description="candidates of the job scored so far")
    passing: int = Field(ge=0, description="candidates of the job that pass so far")
    eta_s: float | None = Field(None, ge=0, description="seconds until the job is expected to be scored; None: unknown")


class CandidatesScored(JobEvent):
    """Published by the scorer with the selection to deliver; fewer than `images` selected
    means a partial delivery. `scores` are the scores no CandidatesChecked of the job carried
    (every score of the job, for a job scored in one go), so an event stays small whatever the
    job's size; `selected_scores` are the selected candidates' scores, best first."""

    # v4: scores published in CandidatesChecked are not repeated; the selected ones are named.
    event_type = "genline.candidates.scored.v4"
    publisher = "scorer"
    attempt: int
    images: int
    scores: list[CandidateScore]
    selected: list[int] = Field(description="candidate indices to deliver, best first")
    selected_scores: list[CandidateScore] = Field([], description="the selected candidates' scores, best first")
    template: str | None = Field(None, description="the job's template: how delivery post-processes the images")
    output_format: ImageFormat | None = Field(None, description="the format the job asked its images in, over the"
                                                                " template's")


class RegenerationRequested(JobEvent):
    """Published by the scorer when fewer than K candidates of the job pass and the router has
    not said the attempt was final; the router generates for the shortfall. `scores` are
    this attempt's candidates that no CandidatesChecked carried, so the router learns each
    outcome once."""

    event_type = "genline.regeneration.requested.v2"
    publisher = "scorer"
    attempt: int = Field(description="the attempt that fell short; the next one is attempt + 1")
    images: int
    passed: int = Field(description="candidates of the job that pass so far, every attempt counted")
    needed: int = Field(ge=1, description="images still missing")
    reason: str
    scores: list[CandidateScore]
    needed_by_style: dict[str, int] | None = Field(None, description="for a job across styles, the images each"
                                                                     " style still misses")


class ScoringFailed(JobEvent):
    """Published by the scorer when no candidate can be delivered; the job fails at no charge."""

    event_type = "genline.scoring.failed.v2"
    publisher = "scorer"
    attempt: int
    failure_code: str
    reason: str
    scores: list[CandidateScore]


# ---- delivery ------------------------------------------------------------------------


class JobDelivered(JobEvent):
    """Published by delivery when the selected images are public, post-processed as the
    template says, with their thumbnails, and links are signed; the ledger charges for
    `len(images)`."""

    event_type = "genline.job.delivered.v2"
    publisher = "delivery"
    requested: int
    images: list[DeliveredImage]


class DeliveryFailed(JobEvent):
    """Published by delivery when the selected images could not be published after bounded
    retries; the job fails at stage delivery and costs nothing."""

    event_type = "genline.delivery.failed.v1"
    publisher = "delivery"
    failure_code: str
    reason: str


class JobCanceled(JobEvent):
    """Published by delivery in answer to JobCancelRequested when it had published nothing of
    the job: the job ends `final_state` (canceled or expired) and nothing is charged. Delivery
    publishes exactly one of JobDelivered, DeliveryFailed and JobCanceled per job."""

    event_type = "genline.job.canceled.v1"
    publisher = "delivery"
    final_state: Literal["canceled", "expired"] = "canceled"
    reason: str


class WebhookSent(JobEvent):
    """Published by delivery when a webhook about a job was answered with a 2xx (`delivered`)
    or will not be sent again (`failed`: the retries are spent, or the endpoint answered 410)."""

    event_type = "genline.webhook.sent.v1"
    publisher = "delivery"
    webhook_id: str
    event: str = Field(description="the webhook's event type, e.g. job.succeeded")
    endpoint_id: UUID | None = Field(description="None for the job's own webhook_url")
    outcome: Literal["delivered", "failed"]
    attempts: int
    status_code: int | None


class AccountAlerted(Event):
    """Published by the ledger when a tenant crosses a line it is to be told of before its
    money runs out: its available credits fell below its threshold, a grant with credits left
    expires within its notice, an API key reached its spend cap, an automatic top-up failed.
    Once per crossing: `alert_id` names the crossing (a balance that rises above the threshold
    and falls again is a new one). Delivery sends it to the tenant's endpoints subscribed to
    `alert`, as a Standard Webhook whose data is `details`."""

    event_type = "genline.account.alerted.v1"
    publisher = "ledger"
    tenant_id: str
    alert_id: str
    alert: AlertEvent
    raised_at: datetime
    details: dict[str, Any] = Field(default_factory=dict, description="what was crossed: the threshold and"
                                                                      " balance, the grant, the key and its cap")


def upcast_candidates_generated_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A v1 attempt generated stills in one stage: what v2 adds has its defaults (one frame,
    no steps, calls of the generate stage), so the payload reads as it is."""
    return data


def upcast_spec_prompt_sealed(data: dict[str, Any]) -> dict[str, Any]:
    """Before v2 (v3 for CandidatesGenerated) a JobSpec carried its prompt in clear; JobSpec
    reads that string as a SealedText with `clear` set (SealedText.read), and nothing else
    changed, so the payload reads as it is."""
    return data


def upcast_job_finished_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1's view showed the prompt in clear, and no receipt was issued."""
    view = data["view"]
    if "prompt" in view:
        view = view | {"prompt": SealedText.read(view["prompt"]).model_dump()}
    return data | {"view": view, "receipt_sha256": None}


def upcast_candidates_scored_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 did not name the template; delivery then uses the default delivery."""
    return data | {"template": None}


def upcast_scores_without_tiers(data: dict[str, Any]) -> dict[str, Any]:
    """Scores before tiers measured every dimension of every candidate: each was judged and
    nothing left unmeasured, as the defaults of `judged` and `not_measured` say."""
    return data


def upcast_candidates_scored_v3_v4(data: dict[str, Any]) -> dict[str, Any]:
    """v3 carried every score of the job: the selected ones are among them."""
    by_index = {score["index"]: score for score in data.get("scores", [])}
    return data | {"selected_scores": [by_index[i] for i in data.get("selected", []) if i in by_index]}


def upcast_job_delivered_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 images had no size, frames, watermark or thumbnail: one frame, none of the rest."""
    return data | {"images": [image | {"frames": 1, "watermarked": False} for image in data.get("images", [])]}


# (old type name) -> (new type name, payload converter).
UPCASTERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "genline.job.submitted.v1": ("genline.job.submitted.v2", upcast_spec_prompt_sealed),
    "genline.job.finished.v1": ("genline.job.finished.v2", upcast_job_finished_v1_v2),
    "genline.credits.reserved.v1": ("genline.credits.reserved.v2", upcast_spec_prompt_sealed),
    "genline.candidates.generated.v1": ("genline.candidates.generated.v2", upcast_candidates_generated_v1_v2),
    "genline.candidates.generated.v2": ("genline.candidates.generated.v3", upcast_spec_prompt_sealed),
    "genline.candidates.scored.v1": ("genline.candidates.scored.v2", upcast_candidates_scored_v1_v2),
    "genline.candidates.scored.v2": ("genline.candidates.scored.v3", upcast_scores_without_tiers),
    "genline.candidates.scored.v3": ("genline.candidates.scored.v4", upcast_candidates_scored_v3_v4),
    "genline.regeneration.requested.v1": ("genline.regeneration.requested.v2", upcast_scores_without_tiers),
    "genline.scoring.failed.v1": ("genline.scoring.failed.v2", upcast_scores_without_tiers),
    "genline.job.delivered.v1": ("genline.job.delivered.v2", upcast_job_delivered_v1_v2),
}


class UnknownEventType(ValueError):
    pass


def event_class(event_type: str) -> "type[Event] | None":
    """The model a type's payloads are read as (an old version's, after its upcasts), or None
    for a type these contracts do not know."""
    while event_type in UPCASTERS:
        event_type = UPCASTERS[event_type][0]
    return EVENT_TYPES.get(event_type)


def parse_event(event_type: str, data: dict[str, Any]) -> Event:
    """Build the newest model for a payload, upcasting old versions first."""
    while event_type in UPCASTERS:
        event_type, upcast = UPCASTERS[event_type]
        data = upcast(data)
    try:
        model = EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}") from None
    return model.model_validate(data)
