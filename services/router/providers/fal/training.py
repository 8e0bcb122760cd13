"""fal's queue trainers (`fal-ai/flux-lora-fast-training`, `fal-ai/flux-lora-portrait-trainer`):
a training is a queue request like any other (queue.py), its result the weights' file.

    POST {endpoint}/{trainer}[?fal_webhook=url]     {images_data_url, trigger_word, steps, …}
         X-Fal-Object-Lifecycle-Preference: {"expiration_duration_seconds": n}
    GET  {endpoint}/{app}/requests/{id}/status      202 IN_QUEUE | IN_PROGRESS, 200 COMPLETED (+ error)
    GET  {endpoint}/{app}/requests/{id}             {diffusers_lora_file: {url, content_type,
                                                     file_name, file_size}, config_file: {…}}
    PUT  {endpoint}/{app}/requests/{id}/cancel

(fal-ai/fal-js@5324132 `libs/client/src/types/training/types.gen.ts`, `zod.gen.ts`.) The photos'
zip is uploaded to fal's storage first (queue.py `FalStorage`, kept for the training's
`timeout_s`), and `images_data_url` is its URL (`images.via: presigned`: a presigned link to a
copy in the internal bucket instead). fal has no
API that deletes a file of its CDN: the training asks fal to delete its outputs after
`output_expiration_s` (fal's "media expiration" page), which is all `forget` can do; the
weights are copied into the internal bucket as soon as the training ends, so the router needs
none of fal's copy after that.
"""

import json
from typing import Any
from urllib.parse import urlencode

from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.fal.queue import (
    LIFECYCLE,
    STATUS_OK,
    FalOptions,
    FalStorage,
    app_id,
    finished,
    queue_error,
    result_error,
)
from services.router.providers.registry import ProviderConfig
from services.router.providers.trainers import (
    TrainingOutput,
    TrainingRequest,
    hosted_photos,
    output_at,
    safetensors_of,
    trainer,
    training_input,
)
from services.router.providers.training_config import TrainerConfig
from services.router.providers.transport import ApiRequest, ProviderHttp, json_object


@trainer("fal")
class FalTrainer:
    def __init__(self, config: ProviderConfig, context: ProviderContext, *, secret: str | None = None) -> None:
        assert config.trainer is not None and context.client is not None
        self.name, self.config = config.name, config
        capped = config.model_copy(update={"outputs": config.outputs.model_copy(
            update={"max_bytes": config.trainer.max_weights_bytes})})
        self.http = ProviderHttp(capped, context.client, auth_headers={"Authorization": f"Key {secret}"} if secret else {},
                                 outputs=context.outputs)
        self.options = FalOptions.model_validate(config.options)

    @property
    def training(self) -> TrainerConfig:
        assert self.config.trainer is not None
        return self.config.trainer

    async def submit(self, request: TrainingRequest) -> dict[str, Any]:
        model = self.training.model.remote
        url = f"{self.config.base_url}/{model}"
        if self.config.webhooks is not None:
            url += "?" + urlencode({"fal_webhook": f"{self.config.webhooks.url}/{self.name}"})
        images, _ = await hosted_photos(self.training, request, host=FalStorage(self.http, self.options))
        lifecycle = json.dumps({"expiration_duration_seconds": self.options.output_expiration_s})
        response = await self.http.request(ApiRequest(method="POST", url=url, json=training_input(
            self.training, request, images=images), headers={LIFECYCLE: lifecycle}))
        if response.status_code not in (200, 201, 202):
            raise queue_error(self.name, response)
        body = json_object(response, self.name)
        if not body.get("request_id"):
            raise ProviderError(kind="server_error", message=f"{self.name}: the training's submit answer has no request_id")
        base = f"{self.config.base_url}/{app_id(model)}/requests/{body['request_id']}"
        return {"id": body["request_id"], "status": self._own(body.get("status_url"), f"{base}/status"),
                "response": self._own(body.get("response_url"), base),
                "cancel": self._own(body.get("cancel_url"), f"{base}/cancel")}

    async def poll(self, handle: dict[str, Any]) -> TrainingOutput | None:
        response = await self.http.request(ApiRequest(method="GET", url=handle["status"]))
        if response.status_code not in STATUS_OK:
            raise queue_error(self.name, response)
        if not finished(json_object(response, self.name), provider=self.name, request_id=handle["id"]):
            return None
        result = await self.http.request(ApiRequest(method="GET", url=handle["response"]))
        if result.status_code != 200:
            raise result_error(self.name, result)
        url = output_at(json_object(result, self.name), self.training.weights)
        if not isinstance(url, str):
            raise ProviderError(kind="bad_output", message=f"{self.name}: the training's result has no {self.training.weights}",
                                terminal=True)
        return TrainingOutput(weights_url=url)

    async def cancel(self, handle: dict[str, Any]) -> None:
        await self.http.request(ApiRequest(method="PUT", url=handle["cancel"]))

    async def weights(self, output: TrainingOutput) -> bytes:
        assert output.weights_url is not None
        return safetensors_of((await self.http.download(output.weights_url)).data, self.name)

    async def forget(self, provider_version: str | None) -> None:
        """Nothing to delete: fal deletes the outputs itself after `output_expiration_s`."""

    async def discard_photos(self, handle: dict[str, Any]) -> None:
        """Nothing to delete: the photos uploaded expire at fal by the training's `timeout_s`."""

    def remote_id(self, handle: dict[str, Any]) -> str:
        return str(handle.get("id", ""))

    def _own(self, url: object, built: str) -> str:
        return url if isinstance(url, str) and self.config.may_receive_credentials(url) else built
