"""Replicate-style predictions API.

    POST {endpoint}/v1/predictions  {version, input}   Prefer: wait=N   → prediction
    GET  {endpoint}/v1/predictions/{id}                                  → prediction
    POST {endpoint}/v1/predictions/{id}/cancel
    Authorization: Bearer <secret>

A prediction is {id, status: starting | processing | succeeded | failed | canceled,
output: [url, …], error, metrics: {predict_time}, urls: {get, cancel}}. `Prefer: wait`
holds the create call open up to N seconds (at most half the deadline, so the id comes
back in time to cancel), so short generations finish in one round trip; longer ones are
polled. A stage other than generate (`stages` in the provider's configuration) sends the
candidate's image as a data: URI in `input.{image_field}`. Replicate bills by predict_time, so that is the compute
time the price is taken from.
"""

from typing import Any

from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.registry import ModelPin
from services.router.providers.remote import RemoteOutput, RemoteProvider, json_body

# Replicate accepts waits of 1–60 s.
MAX_WAIT_S = 60


class ReplicateProvider(RemoteProvider):
    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}

    def _prompt_input(self, request: GenerationRequest, pin: ModelPin) -> dict[str, Any]:
        return replicate_input(request)

    async def _submit(self, request: GenerationRequest, pin: ModelPin, payload: dict[str, Any]) -> dict[str, Any]:
        # Wait at most half the deadline in the create call: we must learn the
        # prediction's id in time to cancel it if it runs over.
        wait_s = min(MAX_WAIT_S, int(self._overall_s(request) / 2))
        headers = {"Idempotency-Key": request.idempotency_key} | ({"Prefer": f"wait={wait_s}"} if wait_s >= 1 else {})
        response = await self._send(
            "POST", f"{self.config.endpoint}/v1/predictions",
            json={"version": pin.remote, "input": payload},
            headers=headers, timeout_s=self.config.timeouts.submit_s + wait_s,
        )
        prediction = json_body(response, self.name)
        if not prediction.get("id"):
            raise ProviderError("server_error", f"{self.name}: prediction has no id")
        return prediction

    async def _wait(self, handle: dict[str, Any]) -> RemoteOutput:
        # The create call may already have waited the prediction out.
        return replicate_output(handle, self.name) or await super()._wait(handle)

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        response = await self._send("GET", self._url(handle, "get"))
        return replicate_output(json_body(response, self.name), self.name)

    async def _cancel(self, handle: dict[str, Any]) -> None:
        await self._send("POST", self._url(handle, "cancel"))

    def _url(self, prediction: dict[str, Any], kind: str) -> str:
        urls = prediction.get("urls") or {}
        base = f"{self.config.endpoint}/v1/predictions/{prediction['id']}"
        return urls.get(kind) or (base if kind == "get" else f"{base}/{kind}")


def replicate_input(request: GenerationRequest) -> dict[str, Any]:
    return {"prompt": request.prompt, "width": request.width, "height": request.height,
            "num_outputs": request.count, "seed": request.seed_for(request.start_index)}


def replicate_output(prediction: dict[str, Any], provider: str) -> RemoteOutput | None:
    status = prediction.get("status")
    if status in ("starting", "processing"):
        return None
    if status == "failed":
        raise ProviderError("server_error", f"{provider}: prediction failed: {prediction.get('error')}")
    if status == "canceled":
        raise ProviderError("unavailable", f"{provider}: prediction was canceled")
    if status != "succeeded":
        raise ProviderError("server_error", f"{provider}: unknown prediction status {status!r}")
    output = prediction.get("output")
    urls = [output] if isinstance(output, str) else output
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ProviderError("server_error", f"{provider}: prediction output is not a list of URLs")
    predict_time = (prediction.get("metrics") or {}).get("predict_time")
    return RemoteOutput(image_urls=tuple(urls),
                        compute_s=float(predict_time) if isinstance(predict_time, (int, float)) else None)
