"""fal-style queue API.

    POST {endpoint}/{model_id}                       → {request_id, status_url, response_url, cancel_url}
    GET  {endpoint}/{app}/requests/{id}/status       → {status: IN_QUEUE | IN_PROGRESS | COMPLETED}
    GET  {endpoint}/{app}/requests/{id}              → {images: [{url, content_type}], seed, timings}
    PUT  {endpoint}/{app}/requests/{id}/cancel
    Authorization: Key <secret>

A stage other than generate (`stages` in the provider's configuration) posts the model's
input as configured, the candidate's image as a data: URI in its top-level `image_field`.

`{app}` is the model id without its sub-path (`fal-ai/flux` for `fal-ai/flux/dev`);
the URLs the submit answer returns are used when present, as fal's documentation advises.
"""

from dataclasses import dataclass
from typing import Any

from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.registry import ModelPin
from services.router.providers.remote import RemoteOutput, RemoteProvider, json_body


@dataclass(frozen=True, slots=True)
class FalRequest:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class FalProvider(RemoteProvider):
    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.secret}"} if self.secret else {}

    def _prompt_input(self, request: GenerationRequest, pin: ModelPin) -> dict[str, Any]:
        return fal_input(request)

    async def _submit(self, request: GenerationRequest, pin: ModelPin, payload: dict[str, Any]) -> FalRequest:
        response = await self._send("POST", f"{self.config.endpoint}/{pin.remote}", json=payload,
                                    headers={"Idempotency-Key": request.idempotency_key})
        body = json_body(response, self.name)
        request_id = body.get("request_id")
        if not request_id:
            raise ProviderError("server_error", f"{self.name}: submit answer has no request_id")
        base = f"{self.config.endpoint}/{app_id(pin.remote)}/requests/{request_id}"
        return FalRequest(request_id=request_id, status_url=body.get("status_url") or f"{base}/status",
                          response_url=body.get("response_url") or base,
                          cancel_url=body.get("cancel_url") or f"{base}/cancel")

    async def _poll(self, handle: FalRequest) -> RemoteOutput | None:
        status = json_body(await self._send("GET", handle.status_url), self.name).get("status")
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            return None
        if status != "COMPLETED":
            raise ProviderError("server_error", f"{self.name}: request {handle.request_id} ended {status}")
        return fal_output(json_body(await self._send("GET", handle.response_url), self.name), self.name)

    async def _cancel(self, handle: FalRequest) -> None:
        await self._send("PUT", handle.cancel_url)


def fal_input(request: GenerationRequest) -> dict[str, Any]:
    return {"prompt": request.prompt, "image_size": {"width": request.width, "height": request.height},
            "num_images": request.count, "seed": request.seed_for(request.start_index)}


def fal_output(body: dict[str, Any], provider: str) -> RemoteOutput:
    # Image-to-image models answer {image: {url}}, image-to-video ones {video: {url}}.
    single = body.get("image") or body.get("video")
    images = body.get("images") or ([single] if single else None)
    if not isinstance(images, list) or not all(isinstance(i, dict) and i.get("url") for i in images):
        raise ProviderError("server_error", f"{provider}: result has no image URLs")
    inference = (body.get("timings") or {}).get("inference")
    return RemoteOutput(image_urls=tuple(i["url"] for i in images),
                        compute_s=float(inference) if isinstance(inference, (int, float)) else None)


def app_id(model_id: str) -> str:
    """`fal-ai/flux/dev` → `fal-ai/flux`: status and results live under the app, not the sub-path."""
    return "/".join(model_id.split("/")[:2])
