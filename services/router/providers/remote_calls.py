"""A hosted provider's call and what its job gives back: the call (request, model, input,
size expected, where it is written down), how a request becomes one (an image, a clip, a
stage's image), and a finished job's output.

Pure: nothing here talks to a provider; `remote.py` runs the calls.
"""

from dataclasses import dataclass
from typing import Any

from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.entry_parts import HostedStage, ModelPin
from services.router.providers.journal import RemoteJobKey
from services.router.providers.model_calls import clip_input, model_input
from services.router.providers.payloads import data_uri, stage_input
from services.router.providers.registry import ProviderConfig


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One image a finished job made: where to fetch it, or its bytes, and its seed if reported."""

    url: str | None = None
    data: bytes | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteOutput:
    images: tuple[OutputImage, ...]
    compute_s: float | None = None
    # What the provider says the job cost, where it says.
    cost_micro_usd: int | None = None
    # Images the provider made and bills but did not return (its safety filter dropped them).
    dropped: int = 0
    # What the job's token usage bills beside the price per image (OpenAI's image models).
    usage_micro_usd: int | None = None

    @property
    def billed_images(self) -> int:
        return len(self.images) + self.dropped


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteCall:
    """One call to make: the request, the model and its input, the size expected back."""

    request: GenerationRequest
    pin: ModelPin
    payload: dict[str, Any]
    size: tuple[int, int] | None
    steps: int | None
    key: RemoteJobKey
    deadline_s: float
    # The job's handle when the API lets the client name it before submitting.
    named: dict[str, Any] | None = None
    # A clip's call: the seconds the model is asked for (billed as such); None: images.
    clip_seconds: float | None = None

    @property
    def is_stage(self) -> bool:
        return self.request.capability != "generate"


# A finished job's output and its checked images (bytes, media type, reported seed).
Fetched = tuple[RemoteOutput, list[tuple[bytes, str, int | None]]]


def call_key(config: ProviderConfig, request: GenerationRequest) -> RemoteJobKey:
    """Where the call's remote job is written down: the same call after a restart finds it."""
    return RemoteJobKey(job_id=request.job_id, attempt=request.attempt, capability=request.capability, provider=config.name, start_index=request.start_index,
                        count=request.count)


def call_deadline_s(config: ProviderConfig, request: GenerationRequest) -> float:
    return min(request.timeout_s, config.timeouts.overall_s)


def clip_call(config: ProviderConfig, request: GenerationRequest) -> RemoteCall:
    """One clip: from text, or from the candidate's image as the model's first frame."""
    pin = config.model_for(request.model, request.model_version) or config.models[0]
    assert request.video is not None
    from_image = request.clip_source == "image"
    if not config.can_make_clip(pin, request.video, from_image=from_image):
        raise ProviderError(kind="bad_request", message=f"{config.name}: {pin.name} cannot make this clip:"
                                           f" {config.clip_inputs_for(pin).why_not(request.video, from_image)}")
    first = request.input_for(request.start_index) if from_image else None
    if from_image and first is None:
        raise ProviderError(kind="bad_request", message=f"candidate {request.start_index} has no first frame to animate")
    made = clip_input(config.inputs_for(pin), request, first_frame=data_uri(first) if first is not None else None)
    return RemoteCall(request=request, pin=pin, payload=made.payload, size=made.size, steps=None, key=call_key(config, request),
                deadline_s=call_deadline_s(config, request), clip_seconds=made.seconds)


def generate_call(config: ProviderConfig, request: GenerationRequest) -> RemoteCall:
    """Images from a prompt, with the model's input in its plain form (an adapter may wrap it)."""
    pin = config.model_for(request.model, request.model_version)
    if pin is None:
        raise ProviderError(kind="bad_request", message=f"{config.name} has no model {request.model} {request.model_version}")
    inputs = config.inputs_for(pin)
    if not inputs.can_make(request.width, request.height):
        raise ProviderError(kind="bad_request", message=f"{config.name}: {pin.name} cannot make {request.width}×"
                                           f"{request.height}")
    made = model_input(inputs, request)
    return RemoteCall(request=request, pin=pin, payload=made.payload, size=made.size, steps=made.steps, key=call_key(config, request),
                deadline_s=call_deadline_s(config, request))


def stage_call(config: ProviderConfig, request: GenerationRequest, *, stage: HostedStage) -> RemoteCall:
    return RemoteCall(request=request, pin=config.stage_model(stage), payload=stage_input(request, stage), size=None, steps=None,
                key=call_key(config, request), deadline_s=call_deadline_s(config, request))
