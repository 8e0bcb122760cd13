"""The one interface every image provider adapter implements, and its values and errors.

An adapter turns a `GenerationRequest` (candidates `start_index … start_index+count-1`
of one attempt of one job) into `GeneratedImage`s, or raises `ProviderError` with a kind
the engine acts on (the table in docs/guides/providers.md lists, per adapter, which answer gives
which kind):

* `rate_limited` lowers that provider's concurrency and waits out its hint;
* `credentials` (401/403) and `unavailable` (402, quota, unreachable) open its breaker at
  once: no call can succeed until an operator acts, and the open breaker alerts;
* `server_error`, `timeout` and `bad_output` (an image that does not decode, has the wrong
  size or is blank: the provider's defect) count against its breaker;
* `bad_request` is the request's fault (invalid input, refused content) and counts
  against nothing.

An output host that answers 401, 403, 404 or 410 says the output expired or is gone (signed
URLs and outputs the provider deletes after a while), never that the key is wrong: that is
`server_error` with `output_gone` set, and the adapter asks the job for a fresh URL where
the API can give one. What a failed call was billed all the same (a job that ran, whose
images expired or were all refused) is in `billed_micro_usd`.

A request names the stage it is for (`capability`, `generate` unless a template's pipeline
says otherwise) and its parameters; a stage after generation gets each candidate's image
to work on in `inputs` (by index), or one image for every index in `input`.

A request with `video` set asks for clips of that shape (MP4): from text on `generate`, from
the candidate's image (`inputs`, or `input`) on `animate`; each `GeneratedImage` is then one
clip, its `data` the file and its `media_type` video/mp4 (or video/webm).

Seeds: a batch is sent one seed, `seed + start_index` (so a candidate is the same whichever
provider runs its batch); each image records the seed its provider reports, or None.

An order across styles gives each candidate its style (`styles`, by index): its words are added
to the prompt and its parameters to the request's (`prompt_for`, `params_for`); a hosted model
makes one style per call (`style_runs`). An order of a subject carries its identity
(`identity`: LoRA weights or reference photos, identity_inputs.py) in every call.
"""

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from services.common import targets
from services.common.contracts import StyleSpec, VideoSpec
from services.common.templates import Capability
from services.common.turns import Turn
from services.router.providers.identity_inputs import IdentityInput

if TYPE_CHECKING:
    import httpx

    from services.router.clock import Clock
    from services.router.providers.copies import OutputCopies
    from services.router.providers.journal import RemoteJobJournal
    from services.router.providers.webhooks import WebhookInbox

ErrorKind = Literal["rate_limited", "server_error", "timeout", "bad_request", "unavailable", "credentials",
                    "bad_output"]
# Errors that say something about the provider's health, not about the request.
# The turn of the job a provider call is made for (its tenant, plan share and priority), set by
# the router around the call: a provider that queues work of its own on this machine (the local
# provider's painting workers) takes it in this turn, not first come first served.
CALL_TURN: ContextVar[Turn | None] = ContextVar("call_turn", default=None)

HEALTH_ERRORS: frozenset[ErrorKind] = frozenset({"server_error", "timeout", "unavailable", "credentials",
                                                 "bad_output"})
# Errors no retry can cure until an operator acts (a key, a balance): the breaker opens at once.
OPERATOR_ERRORS: frozenset[ErrorKind] = frozenset({"unavailable", "credentials"})


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    job_id: str
    attempt: int
    prompt: str
    seed: int
    count: int
    width: int
    height: int
    model: str
    model_version: str
    start_index: int = 0
    timeout_s: float = 120.0
    capability: Capability = "generate"
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[int, bytes] = field(default_factory=dict)
    input: bytes | None = None
    video: VideoSpec | None = None
    styles: Mapping[int, StyleSpec] = field(default_factory=dict)
    identity: IdentityInput | None = None

    def prompt_for(self, index: int) -> str:
        """The prompt of candidate `index`: the job's, with its style's words after it."""
        style = self.styles.get(index)
        return f"{self.prompt}, {style.prompt}" if style is not None and style.prompt else self.prompt

    def params_for(self, index: int) -> Mapping[str, Any]:
        """The request's parameters with candidate `index`'s style's (backdrop, wardrobe, light, framing)."""
        style = self.styles.get(index)
        return {**self.params, **style.params} if style is not None and style.params else self.params

    def style_runs(self) -> list["GenerationRequest"]:
        """The request cut into runs of neighbouring candidates of one style (itself when it has one)."""
        names = [style.name if (style := self.styles.get(index)) else None for index in self.indices]
        runs, first = [], 0
        for offset in range(1, len(names) + 1):
            if offset == len(names) or names[offset] != names[first]:
                runs.append(replace(self, start_index=self.start_index + first, count=offset - first))
                first = offset
        return runs

    @property
    def clip_source(self) -> Literal["text", "image"] | None:
        """What a clip is made from: text (generate), an image (any later stage); None: images."""
        if self.video is None:
            return None
        return "text" if self.capability == "generate" else "image"

    def input_for(self, index: int) -> bytes | None:
        return self.inputs.get(index, self.input)

    @property
    def indices(self) -> range:
        return range(self.start_index, self.start_index + self.count)

    @property
    def batch_seed(self) -> int:
        """The one seed a batch is sent: the first candidate's."""
        return self.seed + self.start_index

    def seed_for(self, index: int) -> int:
        """The seed of candidate `index` where a provider takes one seed per image (the local painter)."""
        return self.seed + index

    @property
    def call_key(self) -> str:
        """Names exactly these candidates of this attempt and stage."""
        return f"{self.job_id}:{self.attempt}:{self.capability}:{self.start_index}:{self.count}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedImage:
    index: int
    data: bytes
    media_type: str
    # As the provider reports it; None where it reports none.
    seed: int | None
    cost_micro_usd: int
    latency_s: float


# Compared and hashed as the exception it is (by identity), and shown as `kind: message`.
@dataclass(eq=False, repr=False, kw_only=True)
class ProviderError(Exception):
    """A call that failed: its kind, and what the engine and the flow read from it."""

    kind: ErrorKind
    message: str
    retry_after_s: float | None = None
    # The remote job ended on its own (failed, canceled, moderated): nothing to cancel.
    terminal: bool = False
    # The network failed, not the provider's answer: a poll may simply be tried again.
    transient: bool = False
    # An output's host no longer serves it (expired, deleted): the job may give a fresh URL.
    output_gone: bool = False
    # What the provider bills for the call although it failed (the work was done).
    billed_micro_usd: int = 0

    def __post_init__(self) -> None:
        super().__init__(f"{self.kind}: {self.message}")

    @property
    def counts_against_health(self) -> bool:
        return self.kind in HEALTH_ERRORS

    @property
    def needs_an_operator(self) -> bool:
        return self.kind in OPERATOR_ERRORS and not self.transient


@dataclass(kw_only=True)
class ProviderContext:
    """What adapters share in one router: the HTTP client, the clock, where remote jobs are
    written down and their outputs copied, the callbacks inbox, and whether the router is
    handing its work over."""

    client: "httpx.AsyncClient | None" = None
    clock: "Clock | None" = None
    journal: "RemoteJobJournal | None" = None
    webhooks: "WebhookInbox | None" = None
    # Where fetched outputs are copied, so a resumed call needs no URL that may have expired.
    copies: "OutputCopies | None" = None
    # Secrets by name, for those an adapter needs besides its API key (a webhook signing secret).
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Where outputs on a host other than the provider's own may be fetched from (a provider names
    # its output URLs): public addresses, and the networks opened for provider hosts alone.
    outputs: targets.Guard = field(default_factory=lambda: targets.Guard(purpose=targets.Purpose.PROVIDER_HOSTS))
    # Set while the router stops: remote jobs in flight are left running (written down, with
    # their provider-side deadline) for the next router to resume, not canceled.
    handing_over: bool = False


class Provider(Protocol):
    name: str

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]: ...
