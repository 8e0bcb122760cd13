"""A request turned into what one call sends a model: an image model's input (prompt, size,
count, seed, steps, the params it takes) or a video model's for one clip (length, rate,
shape, first and last frames), read through the model's `ModelInputs` (`inputs.py`). Pure.
"""

from dataclasses import dataclass
from typing import Any

from services.router.providers.base import GenerationRequest
from services.router.providers.identity_inputs import lora_fields, prompted, reference_fields
from services.router.providers.inputs import ModelInputs


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What one call sends the model, and the size its images must come back at."""

    payload: dict[str, Any]
    size: tuple[int, int]
    steps: int | None


def model_input(inputs: ModelInputs, request: GenerationRequest) -> ModelCall:
    """The model's input for the request's candidates, of one style (its first candidate's)."""
    first = request.start_index
    params = request.params_for(first)
    size_fields, size = inputs.size.plan(request.width, request.height)
    payload: dict[str, Any] = {inputs.prompt_field: request.prompt_for(first), **size_fields}
    if inputs.count:
        payload[inputs.count.field] = request.count
    if inputs.seed:
        payload[inputs.seed.field] = request.batch_seed % (inputs.seed.max + 1)
    negative = params.get("negative_prompt")
    if inputs.negative_prompt and negative:
        payload[inputs.negative_prompt.field] = negative
    steps = _steps(inputs, request)
    if inputs.steps and steps is not None:
        payload[inputs.steps.field] = steps
    payload |= {field: params[name] for name, field in inputs.params.items() if name in params}
    payload |= _identity(inputs, request, prompt=payload[inputs.prompt_field])
    payload |= inputs.fixed
    return ModelCall(payload, size, steps)


def _identity(inputs: ModelInputs, request: GenerationRequest, *, prompt: str) -> dict[str, Any]:
    """The subject's identity as the model takes it (and the prompt with its trigger word)."""
    identity, declared = request.identity, inputs.identity
    if identity is None or declared is None:
        return {}
    if identity.mode == "reference" and declared.reference is not None:
        return reference_fields(declared.reference, identity, index=request.start_index)
    if identity.mode == "lora" and declared.lora is not None:
        return {**lora_fields(declared.lora, identity), inputs.prompt_field: prompted(declared.lora, identity, prompt=prompt)}
    return {}


def clip_input(inputs: ModelInputs, request: GenerationRequest, *, first_frame: str | None) -> "ClipCall":
    """What one call sends a video model for one clip of `request.video`; `first_frame` is the
    still it starts from as a data: URI (None: text-to-video)."""
    spec, shape = request.video, inputs.video
    assert spec is not None and shape is not None, "a clip needs a video request and a video model"
    seconds = shape.duration.seconds_for(spec.duration_s)
    if seconds is None:
        raise ValueError(f"the model makes no {spec.duration_s:g} s clips")
    fps = shape.fps.rate_for(spec.fps)
    payload: dict[str, Any] = {inputs.prompt_field: request.prompt,
                               shape.duration.field: shape.duration.value(seconds, fps)}
    if shape.fps.field:
        payload[shape.fps.field] = fps
    for choice, asked in ((shape.aspect_ratio, spec.aspect_ratio), (shape.resolution, spec.resolution)):
        if choice is not None and choice.field and asked in choice.values:
            payload[choice.field] = choice.values[asked]
    if shape.first_frame is not None and first_frame is not None:
        payload[shape.first_frame.field] = first_frame
    last = request.params.get("last_frame")
    if shape.last_frame is not None and isinstance(last, str):
        payload[shape.last_frame.field] = last
    if inputs.seed:
        payload[inputs.seed.field] = request.batch_seed % (inputs.seed.max + 1)
    negative = request.params.get("negative_prompt")
    if inputs.negative_prompt and negative:
        payload[inputs.negative_prompt.field] = negative
    payload |= {field: request.params[name] for name, field in inputs.params.items() if name in request.params}
    payload |= inputs.fixed
    return ClipCall(payload, spec.size(), seconds)


@dataclass(frozen=True, slots=True)
class ClipCall:
    """What one call sends a video model, the size its clip must have, and the seconds it is asked for."""

    payload: dict[str, Any]
    size: tuple[int, int]
    seconds: float


def _steps(inputs: ModelInputs, request: GenerationRequest) -> int | None:
    if inputs.steps is None:
        return None
    asked = request.params.get("steps")
    return min(int(asked), inputs.steps.max) if isinstance(asked, int) and asked > 0 else inputs.steps.default
