"""Images in JSON bodies: a hosted stage's input, with the candidate's image as a data: URI,
and an output's image given as a data: URI or as bare base64."""

import base64
import io
from typing import Any

from PIL import Image

from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.entry_parts import HostedStage


def stage_input(request: GenerationRequest, stage: HostedStage) -> dict[str, Any]:
    """A stage model's input: the candidate's image as a data: URI, the prompt and parameters
    where the stage's configuration puts them."""
    image = request.input_for(request.start_index)
    if image is None:
        raise ProviderError(kind="bad_request", message=f"candidate {request.start_index} has no image for {request.capability}")
    payload = {field: request.params[name] for name, field in stage.param_fields.items() if name in request.params}
    payload |= stage.params | {stage.image_field: data_uri(image)}
    if stage.prompt_field:
        payload[stage.prompt_field] = request.prompt
    return payload


def data_uri(image: bytes) -> str:
    try:
        media_type = Image.open(io.BytesIO(image)).get_format_mimetype() or "application/octet-stream"
    except (OSError, ValueError):
        raise ProviderError(kind="bad_request", message="the stage's input is not an image") from None
    return f"data:{media_type};base64,{base64.b64encode(image).decode('ascii')}"


def decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    try:
        return base64.b64decode(payload, validate=True) if ";base64" in header else payload.encode()
    except ValueError:
        raise ProviderError(kind="bad_output", message="an output data: URI is not base64") from None


def decode_base64(text: object, provider: str) -> bytes:
    if not isinstance(text, str):
        raise ProviderError(kind="bad_output", message=f"{provider}: an output has no base64 image")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ProviderError(kind="bad_output", message=f"{provider}: an output's base64 does not decode") from None
