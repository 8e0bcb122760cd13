"""The one interface every image provider adapter implements, and its values and errors.

An adapter turns a `GenerationRequest` (candidates `start_index … start_index+count-1`
of one attempt of one job) into `GeneratedImage`s, or raises `ProviderError` with a kind
the engine acts on: `rate_limited` lowers that provider's concurrency, `timeout`,
`server_error` and `unavailable` count against its circuit breaker, `bad_request` is the
request's fault and counts against nothing.

A request names the stage it is for (`capability`, `generate` unless a template's pipeline
says otherwise) and its parameters; a stage after generation gets each candidate's image
to work on in `inputs` (by index), or one image for every index in `input`.

Seeds: candidate `i` of a job is generated with seed `seed + i` wherever the provider
takes a seed, so a candidate is the same whichever batch it is generated in.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ErrorKind = Literal["rate_limited", "server_error", "timeout", "bad_request", "unavailable"]
# Errors that say something about the provider's health, not about the request.
HEALTH_ERRORS: frozenset[ErrorKind] = frozenset({"server_error", "timeout", "unavailable"})


@dataclass(frozen=True, slots=True)
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
    capability: str = "generate"
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[int, bytes] = field(default_factory=dict)
    input: bytes | None = None

    def input_for(self, index: int) -> bytes | None:
        return self.inputs.get(index, self.input)

    @property
    def indices(self) -> range:
        return range(self.start_index, self.start_index + self.count)

    def seed_for(self, index: int) -> int:
        return self.seed + index

    @property
    def idempotency_key(self) -> str:
        """Names exactly these candidates, so a provider or proxy can spot a repeat."""
        return f"{self.job_id}:{self.attempt}:{self.start_index}:{self.count}"


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    index: int
    data: bytes
    media_type: str
    seed: int
    cost_micro_usd: int
    latency_s: float


class ProviderError(Exception):
    def __init__(self, kind: ErrorKind, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ErrorKind = kind
        self.retry_after_s = retry_after_s

    @property
    def counts_against_health(self) -> bool:
        return self.kind in HEALTH_ERRORS


class Provider(Protocol):
    name: str

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]: ...
