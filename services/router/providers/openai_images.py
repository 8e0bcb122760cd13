"""OpenAI's Images API, and the servers that speak it (openai/openai-openapi, createImage).

    POST {endpoint}/v1/images/generations  {model, prompt, n, size, quality, …}
        → 200 {created, data: [{b64_json} | {url}], usage, size, quality, output_format}
    Authorization: Bearer <key>

Synchronous: the answer is the images, so there is no job to write down, poll or cancel;
the HTTP request's own timeout is the call's deadline. GPT image models always answer in
base64 (`b64_json`); DALL·E and many compatible servers answer with `url`s unless asked
for `response_format: b64_json`. No seed is reported. Errors are {error: {message, type,
code, param}}: a 429 whose code or type is `insufficient_quota` (and a 400
`billing_hard_limit_reached`) is being out of credit, not a rate limit; a refusal by the
safety system (`moderation_blocked`, `content_policy_violation`) is the request's. Waits
come in `retry-after-ms` or `Retry-After`.

`openai` is OpenAI's own service (gpt-image-1: `size` one of 1024x1024, 1536x1024,
1024x1536, priced per image by size and quality); `openai-compatible` is any server with
the same route (Together, Fireworks, a self-hosted one), whose models are described in
providers.yaml: Together's, for one, take `width`, `height`, `steps` and `seed`, and its
`response_format` is `base64` or `url` (not OpenAI's `b64_json`), so the compatible
adapter sends none unless the model's fixed inputs name one; either answer is read.

GPT image models report the job's token `usage` (`input_tokens_details`: `text_tokens`,
`image_tokens`; `output_tokens`), which is what OpenAI bills: with the entry's token
prices the usage is the job's cost (a long prompt costs more than the per-image table
says). Image URLs (DALL·E, compatible servers) last an hour: one already gone is a lost
output (`server_error`), as the API cannot give it again.
"""

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from services.router.providers.adapters import AdapterTraits, adapter, adapter_options
from services.router.providers.base import ProviderError
from services.router.providers.inputs import CountInput, ModelInputs, SizeInput
from services.router.providers.payloads import decode_base64
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, json_body, json_object, object_at

OUT_OF_CREDIT = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
REFUSED = frozenset({"moderation_blocked", "content_policy_violation"})


class ImagesOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The route, for servers that mount it elsewhere (Fireworks: /inference/v1/images/generations).
    path: str = "/v1/images/generations"


@adapter("openai")
class OpenAIImagesProvider(RemoteProvider):
    traits = AdapterTraits(
        default_endpoint="https://api.openai.com", options=ImagesOptions,
        default_inputs=ModelInputs(size=SizeInput(style="size", field="size",
                                                  sizes=("1024x1024", "1536x1024", "1024x1536")),
                                   count=CountInput(field="n", max=10)),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options: ImagesOptions = adapter_options(self.config)

    async def _submit(self, call: RemoteCall) -> RemoteOutput:
        body = {"model": call.pin.remote, **call.payload}
        response = await self._send(ApiRequest(method="POST", url=self._route(), json=body, timeout_s=call.deadline_s), ok=(200,))
        return self._output(json_object(response, self.name))

    def _route(self) -> str:
        # An endpoint written as OpenAI's clients take it (`…/v1`) does not repeat the `/v1`.
        base, path = self.config.base_url, self.options.path
        return base + path.removeprefix("/v1") if base.endswith("/v1") and path.startswith("/v1/") else base + path

    def _output(self, answer: dict[str, Any]) -> RemoteOutput:
        data = answer.get("data")
        if not isinstance(data, list) or not data:
            raise ProviderError(kind="bad_output", message=f"{self.name}: the answer has no images")
        images = tuple(self._output_image(item) for item in data)
        tokens = _token_usage(answer.get("usage"))
        price = self.config.price
        if tokens is None or not price.prices_tokens:
            return RemoteOutput(images=images)
        text_in, image_in, out = tokens
        billed = price.tokens_micro_usd(text_in, image_in, out=out)
        if price.per_output_token_micro_usd:
            return RemoteOutput(images=images, cost_micro_usd=billed)  # the usage is the whole bill
        return RemoteOutput(images=images, usage_micro_usd=billed)  # the prompt's tokens, beside the per-image price

    def _output_image(self, item: object) -> OutputImage:
        if isinstance(item, dict) and item.get("b64_json"):
            return OutputImage(data=decode_base64(item["b64_json"], self.name))
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            return OutputImage(url=item["url"])
        raise ProviderError(kind="bad_output", message=f"{self.name}: an image has neither b64_json nor url")

    def _error(self, response: httpx.Response) -> ProviderError:
        error = super()._error(response)
        code = _error_code(response)
        if code in OUT_OF_CREDIT:
            return ProviderError(kind="unavailable", message=str(error))
        if code in REFUSED:
            return ProviderError(kind="bad_request", message=str(error))
        return error


@adapter("openai-compatible")
class OpenAICompatibleProvider(OpenAIImagesProvider):
    """The same route on another server: an endpoint is required, a key is not (self-hosted)."""

    traits = AdapterTraits(
        needs_credentials=False, options=ImagesOptions,
        default_inputs=ModelInputs(size=SizeInput(style="size", field="size", multiple_of=8),
                                   count=CountInput(field="n", max=4)),
    )


def _token_usage(usage: object) -> tuple[int, int, int] | None:
    """(text input, image input, output) tokens of an answer's `usage`; None without one."""
    if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
        return None
    details = object_at(usage, "input_tokens_details")
    image_tokens = details.get("image_tokens")
    image_in = image_tokens if isinstance(image_tokens, int) else 0
    text_in = details.get("text_tokens")
    if not isinstance(text_in, int):
        total_in = usage.get("input_tokens")
        text_in = max(0, total_in - image_in) if isinstance(total_in, int) else 0
    output_tokens: int = usage["output_tokens"]
    return text_in, image_in, output_tokens


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = json_body(response, "")
    except ProviderError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    return next((str(error[k]) for k in ("code", "type") if error.get(k) in OUT_OF_CREDIT | REFUSED),
                str(error.get("code") or error.get("type") or ""))
