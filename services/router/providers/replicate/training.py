"""Replicate's trainings API (replicate/replicate-python@0110c2c `replicate/training.py`, its
recorded cassettes `tests/cassettes/trainings-*.yaml`):

    POST {endpoint}/v1/models/{owner}/{name}/versions/{version}/trainings
         {destination: "owner/name", input, webhook, webhook_events_filter}   → 201 training
    GET  {endpoint}/v1/trainings/{id}                                          → training
    POST {endpoint}/v1/trainings/{id}/cancel                                   → training
    DELETE {endpoint}/v1/models/{owner}/{name}/versions/{version_id}           → 204

A training is {id, status: starting | processing | succeeded | failed | canceled, output,
error, urls: {get, cancel}}; a succeeded one's `output` is {version: "owner/name:id", weights:
a URL of a tar on replicate.delivery holding one .safetensors} (`ostris/flux-dev-lora-trainer`).
The destination must exist (404 "The specified training destination does not exist"
otherwise: an operator's matter). The trainer's `model.remote_id` is `owner/name:version`.
The photos' zip is uploaded through Replicate's files API first (predictions.py
`ReplicateFiles`; its `urls.get` is `input_images`, as the recorded cassettes show a trainer's
input file hosted by Replicate), and deleted once the training ended (`discard_photos`).
`forget` deletes the version the training pushed (`replicate/version.py` `delete`: only the
owner's versions of a private model that nobody else ran; any other refusal is logged by the
caller and the copy in the internal bucket is deleted all the same).
"""

from typing import Any

from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.registry import ProviderConfig
from services.router.providers.replicate.predictions import ReplicateFiles
from services.router.providers.trainers import (
    TrainingOutput,
    TrainingRequest,
    hosted_photos,
    safetensors_of,
    trainer,
    training_input,
)
from services.router.providers.training_config import TrainerConfig
from services.router.providers.transport import ApiRequest, ProviderHttp, json_object, object_at, status_error

RUNNING = frozenset({"starting", "processing"})
DESTINATION_MISSING = "destination does not exist"


@trainer("replicate")
class ReplicateTrainer:
    def __init__(self, config: ProviderConfig, context: ProviderContext, *, secret: str | None = None) -> None:
        assert config.trainer is not None and context.client is not None
        self.name, self.config = config.name, config
        capped = config.model_copy(update={"outputs": config.outputs.model_copy(
            update={"max_bytes": config.trainer.max_weights_bytes})})
        self.http = ProviderHttp(capped, context.client, auth_headers={"Authorization": f"Bearer {secret}"} if secret else {},
                                 outputs=context.outputs)
        self.files = ReplicateFiles(self.http)

    @property
    def training(self) -> TrainerConfig:
        assert self.config.trainer is not None
        return self.config.trainer

    async def submit(self, request: TrainingRequest) -> dict[str, Any]:
        images, uploaded = await hosted_photos(self.training, request, host=self.files)
        photos = [file.id for file in uploaded if file.id]
        try:
            return self._handle(await self._created(training_input(self.training, request, images=images))) | {"photos": photos}
        except BaseException:
            await self.discard_photos({"photos": photos})  # nothing will read them
            raise

    async def _created(self, given: dict[str, Any]) -> dict[str, Any]:
        owner_name, _, version = self.training.model.remote.partition(":")
        body: dict[str, Any] = {"destination": self.training.destination, "input": given}
        if self.config.webhooks is not None:
            body |= {"webhook": f"{self.config.webhooks.url}/{self.name}", "webhook_events_filter": ["completed"]}
        url = f"{self.config.base_url}/v1/models/{owner_name}/versions/{version}/trainings"
        response = await self.http.request(ApiRequest(method="POST", url=url, json=body))
        if response.status_code == 404 and DESTINATION_MISSING in response.text:
            raise ProviderError(kind="unavailable", message=f"{self.name}: the training's destination {self.training.destination}"
                                               " does not exist: create the model at Replicate first")
        if response.status_code not in (200, 201):
            raise status_error(self.name, response)
        training = json_object(response, self.name)
        if not training.get("id"):
            raise ProviderError(kind="server_error", message=f"{self.name}: the created training has no id")
        return training

    def _handle(self, training: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.config.base_url}/v1/trainings/{training['id']}"
        urls = object_at(training, "urls")
        get, cancel = urls.get("get"), urls.get("cancel")
        # The cassettes show a new training's urls under /v1/predictions/: the training's own path is kept.
        own = isinstance(get, str) and "/v1/trainings/" in get and self.config.may_receive_credentials(get)
        return {"id": training["id"], "get": get if own else base,
                "cancel": cancel if own and isinstance(cancel, str) else f"{base}/cancel"}

    async def poll(self, handle: dict[str, Any]) -> TrainingOutput | None:
        response = await self.http.request(ApiRequest(method="GET", url=handle["get"]))
        if response.status_code != 200:
            raise status_error(self.name, response)
        training = json_object(response, self.name)
        status = training.get("status")
        if status in RUNNING:
            return None
        if status != "succeeded":
            raise ProviderError(kind="server_error", message=f"{self.name}: training {handle['id']} {status}:"
                                                f" {training.get('error')}", terminal=True)
        output = object_at(training, "output")
        weights, version = output.get("weights"), output.get("version")
        if not isinstance(weights, str):
            raise ProviderError(kind="bad_output", message=f"{self.name}: the training's output has no weights", terminal=True)
        predict_time = object_at(training, "metrics").get("predict_time")
        return TrainingOutput(weights_url=weights, provider_version=self._version(version),
                              compute_s=float(predict_time) if isinstance(predict_time, (int, float)) else None)

    def _version(self, version: object) -> str | None:
        """The version the training pushed, as Replicate names one (`owner/name:version`), also
        where the answer gives the version id alone."""
        if not isinstance(version, str) or not version:
            return None
        return version if ":" in version else f"{self.training.destination}:{version}"

    async def cancel(self, handle: dict[str, Any]) -> None:
        await self.http.request(ApiRequest(method="POST", url=handle["cancel"]))

    async def weights(self, output: TrainingOutput) -> bytes:
        assert output.weights_url is not None
        return safetensors_of((await self.http.download(output.weights_url)).data, self.name)

    async def forget(self, provider_version: str | None) -> None:
        """Delete the model version the training pushed; gone already is done."""
        if not provider_version or ":" not in provider_version:
            return
        owner_name, _, version = provider_version.partition(":")
        url = f"{self.config.base_url}/v1/models/{owner_name}/versions/{version}"
        response = await self.http.request(ApiRequest(method="DELETE", url=url))
        if response.status_code not in (200, 202, 204, 404):
            raise status_error(self.name, response)

    async def discard_photos(self, handle: dict[str, Any]) -> None:
        """Delete the photos uploaded for the training (Replicate's files API), once it ended."""
        for file_id in handle.get("photos") or []:
            await self.files.delete(str(file_id))

    def remote_id(self, handle: dict[str, Any]) -> str:
        return str(handle.get("id", ""))
