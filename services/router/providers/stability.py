"""Stability AI's Stable Image API, v2beta (its OpenAPI document, "Generate").

    POST {endpoint}/v2beta/stable-image/generate/{core | ultra | sd3}
        multipart/form-data: prompt, aspect_ratio, negative_prompt, seed, output_format, (model)
        accept: application/json → 200 {image: <base64>, finish_reason: SUCCESS | CONTENT_FILTERED, seed}
        accept: image/*          → 200 the image bytes, with `finish-reason` and `seed` headers
    authorization: Bearer <key>

A model's `remote_id` is the route's last part; SD3.5 models add their `model` as a fixed
input. Synchronous, one image a call, sized by aspect ratio (`1:1`, `16:9`, … at the area
the model renders). `CONTENT_FILTERED`, and a 403 whose `name` is `content_moderation`, are
refusals of the request's content, not credential errors; errors are {id, name, errors}.
A 429 locks the key out for 60 seconds ("… you have been timed out for 60 seconds", its
`rate_limit_exceeded` error): the router waits that long before calling it again.
"""

import re
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from services.router.providers.adapters import AdapterTraits, adapter, adapter_options
from services.router.providers.base import ProviderError
from services.router.providers.inputs import ModelInputs, NamedInput, SeedInput, SizeInput
from services.router.providers.payloads import decode_base64
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, json_body, json_object

# A key that passes Stability's rate limit is refused for this long (its 429's own words).
LOCKOUT_S = 60.0
_LOCKED_FOR = re.compile(r"timed out for (\d+(?:\.\d+)?) seconds", re.IGNORECASE)
RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")


class StabilityOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # How the image comes back: base64 in JSON, or the bytes themselves.
    accept: Literal["application/json", "image/*"] = "application/json"


@adapter("stability")
class StabilityProvider(RemoteProvider):
    traits = AdapterTraits(
        default_endpoint="https://api.stability.ai", options=StabilityOptions,
        default_inputs=ModelInputs(size=SizeInput(style="aspect_ratio", field="aspect_ratio", ratios=RATIOS,
                                                  area_megapixels=1.0, multiple_of=64),
                                   seed=SeedInput(max=4294967294), negative_prompt=NamedInput(field="negative_prompt")),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options: StabilityOptions = adapter_options(self.config)

    async def _submit(self, call: RemoteCall) -> RemoteOutput:
        # Parts without a file name are form fields: httpx sends them as multipart/form-data,
        # which the API requires.
        form = {name: (None, str(value)) for name, value in call.payload.items()}
        response = await self._send(ApiRequest(method="POST", url=self.url(f"/v2beta/stable-image/generate/{call.pin.remote}"),
                                               files=form, headers={"accept": self.options.accept},
                                               timeout_s=call.deadline_s), ok=(200,))
        # Read by what came back, whatever was asked for.
        if response.headers.get("content-type", "").startswith("image/"):
            return self._output(response.headers.get("finish-reason"), response.content, seed=response.headers.get("seed"))
        answer = json_object(response, self.name)
        return self._output(answer.get("finish_reason"), decode_base64(answer.get("image"), self.name),
                            seed=answer.get("seed"))

    def _output(self, finish_reason: object, image: bytes, *, seed: Any) -> RemoteOutput:
        if finish_reason == "CONTENT_FILTERED":
            raise ProviderError(kind="bad_request", message=f"{self.name}: the image was filtered as unsafe content")
        if finish_reason not in (None, "SUCCESS"):
            raise ProviderError(kind="server_error", message=f"{self.name}: finish reason {finish_reason!r}")
        return RemoteOutput(images=(OutputImage(data=image, seed=_int(seed)),))

    def _error(self, response: httpx.Response) -> ProviderError:
        error = super()._error(response)
        try:
            name = json_body(response, self.name).get("name")
        except (ProviderError, AttributeError):
            name = None
        if name == "content_moderation":
            return ProviderError(kind="bad_request", message=str(error))
        if error.kind == "rate_limited" and not response.headers.get("retry-after"):
            locked = _LOCKED_FOR.search(response.text)
            return ProviderError(kind="rate_limited", message=str(error), retry_after_s=float(locked[1]) if locked else LOCKOUT_S)
        return error


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
