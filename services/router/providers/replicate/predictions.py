"""Replicate's predictions API (https://api.replicate.com/openapi.json).

    POST {endpoint}/v1/predictions  {version, input}                 → 201/202 prediction
    POST {endpoint}/v1/models/{owner}/{name}/predictions  {input}    (official models)
    GET  {endpoint}/v1/predictions/{id}                              → prediction
    POST {endpoint}/v1/predictions/{id}/cancel                       → prediction
    Authorization: Bearer <token>;  Cancel-After: <seconds>s (at least 5 s)

A model's `remote_id` is a version id (64 hex), `owner/name:version`, or `owner/name` for
an official model. A prediction is {id, status, output, error, metrics: {predict_time},
urls: {get, cancel}}; status is starting | processing (running) or succeeded | failed |
canceled | aborted. `Cancel-After` is the provider-side deadline: a prediction still
running then is canceled by Replicate (`canceled`), one not started yet is `aborted`.
Outputs are URLs on replicate.delivery, which the documentation says to fetch with the
token; Replicate bills by predict_time. A 429 says in its body when to come back
("Expected available in N seconds"). Replicate's own clients retry polls on 429 and 5xx,
as `RemoteProvider` does. `Prefer: wait` is not used: the prediction's id must be written
down before it can run to completion unseen. A subject's photos go to reference models and
trainers as files uploaded through Replicate's files API (`ReplicateFiles`), never inline.
"""

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.router.providers.adapters import AdapterTraits, adapter
from services.router.providers.base import ProviderError
from services.router.providers.hosted_files import FileHost, HostedFile, Upload
from services.router.providers.inputs import CountInput, ModelInputs, SeedInput, SizeInput
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, ProviderHttp, json_object, object_at, status_error
from services.router.providers.webhooks import WebhookRejected, callback_json, verify_standard_webhook

_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
MIN_CANCEL_AFTER_S = 5
# How long Replicate keeps an uploaded file when its answer does not say (its client's fixture: an hour).
FILE_LIFE_S = 3600
RUNNING = frozenset({"starting", "processing"})


@dataclass(eq=False)
class ReplicateFiles:
    """Replicate's files API, as replicate-python uploads a model's input file
    (replicate/replicate-python@0110c2c `replicate/file.py`, `helpers.py` `encode_json`):
    `POST /v1/files`, the file as the multipart field `content`, answers 201 {id, urls: {get},
    expires_at}; a model takes `urls.get` as its input; `DELETE /v1/files/{id}` answers 204.
    Replicate sets the file's lifetime itself (an hour in the client's test fixture)."""

    http: ProviderHttp

    async def upload(self, upload: Upload) -> HostedFile:
        response = await self.http.request(ApiRequest(method="POST", url=f"{self.http.config.base_url}/v1/files",
                                                      files={"content": (upload.name, upload.data, upload.media_type)},
                                                      timeout_s=self.http.config.timeouts.overall_s))
        if response.status_code not in (200, 201):
            raise status_error(self.http.name, response)
        body = json_object(response, self.http.name)
        url, file_id = object_at(body, "urls").get("get"), body.get("id")
        if not (isinstance(url, str) and isinstance(file_id, str)):
            raise ProviderError(kind="server_error", message=f"{self.http.name}: the uploaded file has no id or urls.get")
        return HostedFile(url=url, id=file_id, expires_at=_epoch_s(body.get("expires_at")) or time.time() + FILE_LIFE_S)

    async def delete(self, file_id: str) -> None:
        """Delete an uploaded file; gone already is done."""
        url = f"{self.http.config.base_url}/v1/files/{file_id}"
        response = await self.http.request(ApiRequest(method="DELETE", url=url))
        if response.status_code not in (200, 202, 204, 404):
            raise status_error(self.http.name, response)


@adapter("replicate")
class ReplicateProvider(RemoteProvider):
    traits = AdapterTraits(
        runs_stages=True, makes_clips=True, trains=True, hosts_files=True, default_endpoint="https://api.replicate.com",
        credential_hosts=("replicate.delivery", "*.replicate.delivery"),
        default_inputs=ModelInputs(size=SizeInput(multiple_of=8), count=CountInput(field="num_outputs", max=4),
                                   seed=SeedInput()),
    )

    def _file_host(self) -> FileHost:
        return ReplicateFiles(self.http)

    async def _submit(self, call: RemoteCall) -> dict[str, Any]:
        body: dict[str, Any] = {"input": call.payload}
        path = _create_path(call.pin.remote, body)
        if self.config.webhooks is not None:
            body |= {"webhook": f"{self.config.webhooks.url}/{self.name}", "webhook_events_filter": ["completed"]}
        cancel_after = max(MIN_CANCEL_AFTER_S, self.provider_deadline_s(call))
        response = await self._send(ApiRequest(method="POST", url=self.url(path), json=body,
                                                headers={"Cancel-After": f"{cancel_after}s"}))
        prediction = json_object(response, self.name)
        if not prediction.get("id"):
            raise ProviderError(kind="server_error", message=f"{self.name}: the created prediction has no id")
        return self._handle(prediction)

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        prediction = json_object(await self._send(ApiRequest(method="GET", url=handle["get"])), self.name)
        return self._output(prediction)

    async def _cancel(self, handle: dict[str, Any]) -> None:
        await self._send(ApiRequest(method="POST", url=handle["cancel"]))

    def _handle(self, prediction: dict[str, Any]) -> dict[str, Any]:
        """The prediction's id and URLs: its own `urls` where they are Replicate's, else built."""
        base = self.url(f"/v1/predictions/{prediction['id']}")
        urls = object_at(prediction, "urls")
        get, cancel = urls.get("get"), urls.get("cancel")
        return {"id": prediction["id"],
                "get": get if isinstance(get, str) and self.config.may_receive_credentials(get) else base,
                "cancel": cancel if isinstance(cancel, str) and self.config.may_receive_credentials(cancel)
                else f"{base}/cancel"}

    def _output(self, prediction: dict[str, Any]) -> RemoteOutput | None:
        status, error = prediction.get("status"), prediction.get("error")
        if status in RUNNING:
            return None
        if status == "failed":
            raise ProviderError(kind="server_error", message=f"{self.name}: prediction failed: {error}", terminal=True)
        if status in ("canceled", "aborted"):
            # We cancel only jobs we stopped waiting for: this one met its Cancel-After deadline
            # (aborted: before it even started), or someone canceled it on Replicate.
            raise ProviderError(kind="timeout", message=f"{self.name}: prediction {status}", terminal=True)
        if status != "succeeded":
            raise ProviderError(kind="server_error", message=f"{self.name}: unknown prediction status {status!r}", terminal=True)
        urls = _output_urls(prediction.get("output"))
        if urls is None:
            raise ProviderError(kind="bad_output", message=f"{self.name}: prediction output is not image URLs", terminal=True)
        predict_time = (prediction.get("metrics") or {}).get("predict_time")
        return RemoteOutput(images=tuple(OutputImage(url=url) for url in urls),
                            compute_s=float(predict_time) if isinstance(predict_time, (int, float)) else None)

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> str:
        secret = self.context.secrets.get(self.config.webhooks.secret or "") if self.config.webhooks else None
        if not secret:
            raise WebhookRejected(f"{self.name} has no webhook signing secret configured")
        verify_standard_webhook(secret, headers, body=body)
        return str(callback_json(body).get("id", ""))


def _epoch_s(timestamp: object) -> float | None:
    """An ISO 8601 time (`2024-08-22T13:26:51.079Z`) as epoch seconds; None if it is not one."""
    try:
        return datetime.fromisoformat(str(timestamp)).timestamp() if timestamp else None
    except ValueError:
        return None


def _create_path(remote: str, body: dict[str, Any]) -> str:
    """Where to create a prediction of `remote`, adding its version to `body` where it takes one."""
    if _VERSION_ID.match(remote) or ":" in remote:
        body["version"] = remote
        return "/v1/predictions"
    return f"/v1/models/{remote}/predictions"


def _output_urls(output: object) -> list[str] | None:
    items = [output] if isinstance(output, str) else output
    if not isinstance(items, list) or not items or not all(isinstance(u, str) for u in items):
        return None
    return items

